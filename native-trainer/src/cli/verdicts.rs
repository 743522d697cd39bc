//! What a model says about photos: `evaluate` (accuracy, log loss, confusion, mistakes),
//! `predict`, `explain` (the Grad-CAM heatmap) and `submission` (Kaggle's CSV).

use std::path::PathBuf;

use catdog_model::Backend;
use clap::Args;

use super::{Common, Error, parse_backend};
use crate::evaluate;

#[derive(Args)]
pub struct EvaluateArgs {
    #[arg(long)]
    model: PathBuf,
    /// Labelled photos (folder or zip).
    #[arg(long, required_unless_present = "run", conflicts_with = "run")]
    data: Option<PathBuf>,
    /// Instead of --data: a training run's folder, whose photos, seed and split are used
    /// (with --split), seen as the model file sees them (its input size and crop): how a file
    /// exported from a run is measured on the photos no training saw.
    #[arg(long, requires = "split")]
    run: Option<PathBuf>,
    /// Which of the run's held-out splits: validation (for decisions) or test (measured once).
    #[arg(long, value_enum, requires = "run")]
    split: Option<evaluate::HeldOut>,
    /// Where confusion.png and mistakes.png go.
    #[arg(long, default_value = "evaluation")]
    report: PathBuf,
    #[command(flatten)]
    common: Common,
    /// End with one line of JSON.
    #[arg(long)]
    json: bool,
}

pub fn evaluate(args: EvaluateArgs) -> Result<(), Error> {
    let EvaluateArgs {
        model,
        data,
        run,
        split,
        report,
        common,
        json,
    } = args;
    let photos = match (&data, &run, split) {
        (_, Some(run), Some(split)) => evaluate::Photos::Held { run, split },
        (Some(data), ..) => evaluate::Photos::All(data),
        _ => unreachable!("clap requires --data, or --run with --split"),
    };
    let classifier = evaluate::load_model(&model, common.backend)?;
    let result = evaluate::evaluate(&classifier, photos, &report, common.cache())?;
    // With a run's split, the unusable files are in no split: say so rather than count them
    // against the split's photos.
    let scored = match result.split {
        None => format!("{} photos ({} skipped)", result.n, result.skipped),
        Some(split) => format!(
            "{} {split} photos of the run ({} files in its data folder skipped, in no split)",
            result.n, result.skipped
        ),
    };
    println!(
        "{scored}: accuracy {:.2}%, log loss {:.4}",
        result.accuracy * 100.0,
        result.log_loss
    );
    if result.skipped > 0 {
        println!(
            "unusable files and why: {}",
            result.skipped_report.display()
        );
    }
    for class in &result.classes {
        println!(
            "{:>4}: {} photos, precision {:.2}%, recall {:.2}%",
            class.class,
            class.photos,
            class.precision * 100.0,
            class.recall * 100.0
        );
    }
    let [[cc, cd], [dc, dd]] = result.confusion;
    println!("confusion (rows actual, columns predicted cat/dog): cat {cc} {cd}, dog {dc} {dd}");
    println!(
        "pictures: {}, {}",
        result.confusion_png.display(),
        result.mistakes_png.display()
    );
    if json {
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}

#[derive(Args)]
pub struct PredictArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long, value_parser = parse_backend)]
    backend: Option<Backend>,
    #[arg(long)]
    json: bool,
}

pub fn predict(args: PredictArgs) -> Result<(), Error> {
    let PredictArgs {
        model,
        paths,
        backend,
        json,
    } = args;
    let classifier = evaluate::load_model(&model, backend)?;
    let predictions = evaluate::predict(&classifier, &paths)?;
    if json {
        println!("{}", serde_json::to_string(&predictions)?);
    } else {
        for p in &predictions {
            match (&p.label, p.cat, p.dog, &p.error) {
                (Some(label), Some(cat), Some(dog), _) => println!(
                    "{}\t{label}\tcat {:.1}%\tdog {:.1}%",
                    p.path,
                    cat * 100.0,
                    dog * 100.0
                ),
                (_, _, _, error) => {
                    println!("{}\terror: {}", p.path, error.as_deref().unwrap_or("?"))
                }
            }
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct ExplainArgs {
    #[arg(long)]
    model: PathBuf,
    photo: PathBuf,
    /// The picture to write (PNG).
    #[arg(short, long, default_value = "heat.png")]
    out: PathBuf,
    #[arg(long, value_parser = parse_backend)]
    backend: Option<Backend>,
}

pub fn explain(args: ExplainArgs) -> Result<(), Error> {
    let ExplainArgs {
        model,
        photo,
        out,
        backend,
    } = args;
    let classifier = evaluate::load_model(&model, backend)?;
    let explanation = evaluate::explain(&classifier, &photo, &out)?;
    let prediction = explanation.prediction;
    let label = prediction.label.name();
    let confidence = prediction.confidence() * 100.0;
    let verdict = match explanation.pet {
        Some(pet) if !pet.is_pet() => format!(
            "neither a cat nor a dog (pet classes {:.1} %, under {:.1} %; if one, a {label} at {confidence:.1} %)",
            pet.probability * 100.0,
            pet.threshold * 100.0
        ),
        _ => format!("{label} ({confidence:.1} %)"),
    };
    println!(
        "{}: {verdict}; heatmap over the photo written to {}",
        photo.display(),
        out.display()
    );
    Ok(())
}

#[derive(Args)]
pub struct SubmissionArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value = "submission.csv")]
    out: PathBuf,
    #[arg(long, value_parser = parse_backend)]
    backend: Option<Backend>,
}

pub fn submission(args: SubmissionArgs) -> Result<(), Error> {
    let SubmissionArgs {
        model,
        data,
        out,
        backend,
    } = args;
    let classifier = evaluate::load_model(&model, backend)?;
    let written = evaluate::submission(&classifier, &data, &out)?;
    for line in &written.unreadable {
        eprintln!("unreadable (submitted as 0.5): {line}");
    }
    println!("wrote {} ({} rows)", out.display(), written.rows);
    Ok(())
}

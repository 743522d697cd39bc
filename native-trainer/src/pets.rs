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
//!
//! `--rank R` stores the classifier as two factors through R dimensions, its truncated
//! singular value decomposition (1280 x R and R x 1000 instead of 1280 x 1000: at R = 128 a
//! quarter of the parameters, the part of the page's download the check costs); the whole
//! classifier is then measured on the same photos beside it, with how often the two agree.

use std::path::PathBuf;

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::Tensor;
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
    /// Store the ImageNet classifier as two factors through this many dimensions.
    pub rank: Option<usize>,
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

/// A classifier's threshold and how many of the measured photos pass it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rates {
    /// The least ImageNet probability of the pet classes a photo needs.
    pub threshold: f32,
    pub validation: PassRate,
    pub test: PassRate,
    /// Photos with no cat or dog: `passed` are the ones wrongly taken for pets.
    pub non_pets: Option<PassRate>,
}

/// What `pet-filter` chose and measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PetFilterReport {
    #[serde(flatten)]
    pub rates: Rates,
    pub keep: f64,
    pub calibration: PassRate,
    /// The dimensions of the stored classifier's factors, when it is factored.
    pub rank: Option<usize>,
    /// With a rank: the whole classifier measured the same way on the same photos.
    pub whole: Option<WholeClassifier>,
}

/// The whole ImageNet classifier beside a factored one: its own threshold (chosen the same
/// way) and rates, and the share of the measured photos (validation, test, non-pets) on which
/// the two give the same answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WholeClassifier {
    #[serde(flatten)]
    pub rates: Rates,
    pub agreement: f64,
}

/// Each photo's ImageNet pet probability through the stored classifier and, when that one is
/// factored, through the whole one.
#[derive(Debug, Default)]
struct Probabilities {
    stored: Vec<f32>,
    whole: Vec<f32>,
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
    let whole = ImagenetNetwork::load(&pretrained, variant, &device)?.into_classifier();
    let head = network.head.clone();
    let whole_head = head.clone().with_pet_classifier(None, whole.clone());
    network.head = match config.rank {
        Some(rank) => {
            let (basis, factor) = factorise(whole, rank);
            head.with_pet_classifier(Some(basis), factor)
        }
        None => whole_head.clone(),
    };
    let compare = config.rank.map(|_| whole_head);
    let network = Network::EfficientNet(network);
    // Folded for speed: only its probabilities are used here; the unfolded one is stored.
    let Network::EfficientNet(folded) = network.clone().fold_batch_norms() else {
        unreachable!("folding keeps the architecture");
    };
    let preprocess = file.header.preprocess;
    let read = |pets: Option<Tensor<1>>| {
        let pets = pets.expect("the head has its pet classifier");
        pets.into_data().try_to_vec::<f32>().expect("probabilities")
    };
    let probabilities = |packed: &PackedPhotos, indices: &[usize], what: &str| {
        let bar = progress_bar(indices.len() as u64, what);
        let mut out = Probabilities::default();
        for chunk in indices.chunks(16) {
            let images = packed.batch(chunk, &preprocess.normalization, &device);
            let features = folded.backbone.features(images);
            if let Some(whole) = &compare {
                out.whole
                    .extend(read(whole.pet_probability(features.clone())));
            }
            out.stored
                .extend(read(folded.head.pet_probability(features)));
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
    let calibration = probabilities(&packed, &calibration, "choosing the threshold");
    let validation = probabilities(&packed, &split.validation, "validation photos");
    let test = probabilities(&packed, &split.test, "test photos");
    let non_pets = match &config.non_pets {
        Some(folder) => {
            let set = PhotoSet::open(folder).map_err(DatasetError::from)?;
            let photos = PackedPhotos::load(&set, &preprocess, None)?;
            for skipped in &photos.skipped {
                eprintln!("skipped {}: {}", skipped.path, skipped.reason);
            }
            let all: Vec<usize> = (0..photos.len()).collect();
            Some(probabilities(&photos, &all, "non-pet photos"))
        }
        None => None,
    };
    // One classifier's probabilities (the stored one's or the whole one's) at its threshold.
    let rates = |of: fn(&Probabilities) -> &[f32], threshold| Rates {
        threshold,
        validation: PassRate::of(of(&validation), threshold),
        test: PassRate::of(of(&test), threshold),
        non_pets: non_pets
            .as_ref()
            .map(|set| PassRate::of(of(set), threshold)),
    };
    let keep = 1.0 - config.keep;
    let threshold = lower_quantile(&calibration.stored, keep);
    let whole = config.rank.map(|_| {
        let whole_threshold = lower_quantile(&calibration.whole, keep);
        let measured = [Some(&validation), Some(&test), non_pets.as_ref()];
        let (mut same, mut photos) = (0, 0);
        for set in measured.into_iter().flatten() {
            photos += set.stored.len();
            same += set
                .stored
                .iter()
                .zip(&set.whole)
                // Each classifier at its own threshold, as each would be shipped.
                .filter(|&(&stored, &whole)| (stored >= threshold) == (whole >= whole_threshold))
                .count();
        }
        WholeClassifier {
            rates: rates(|set| &set.whole, whole_threshold),
            agreement: same as f64 / photos.max(1) as f64,
        }
    });

    let mut header = file.header.clone();
    if let Some(head) = header.architecture.head_mut() {
        head.pet_filter = Some(PetFilter {
            threshold,
            rank: config.rank,
        });
    }
    let out = ModelFile::from_network(header, &network)
        .map_err(|error| refused(error.to_string()))?
        .to_bytes();
    write_atomic(&config.out, &out).map_err(|source| PetFilterError::Io {
        path: config.out.clone(),
        source,
    })?;
    Ok(PetFilterReport {
        keep: config.keep,
        rates: rates(|set| &set.stored, threshold),
        calibration: PassRate::of(&calibration.stored, threshold),
        rank: config.rank,
        whole,
    })
}

/// The dense layer `imagenet` (features to classes) as two, through `rank` dimensions: the
/// best such approximation of its weights (truncated SVD, W ~ U_r S_r V_r'), the singular
/// values split evenly between the factors so both have values of like size for int8.
pub fn factorise(imagenet: Linear, rank: usize) -> (Linear, Linear) {
    let weight = imagenet.weight.val();
    let [features, classes] = weight.dims();
    let device = weight.device();
    let (u, s, vt) = burn::linalg::svd::<2, 1>(weight, 64);
    let scale = s.narrow(0, 0, rank).sqrt();
    let basis_weight = u.narrow(1, 0, rank) * scale.clone().unsqueeze_dim::<2>(0);
    let factor_weight = vt.narrow(0, 0, rank) * scale.unsqueeze_dim::<2>(1);
    let basis = with_weight(
        LinearConfig::new(features, rank)
            .with_bias(false)
            .init(&device),
        basis_weight,
    );
    let mut factor = with_weight(
        LinearConfig::new(rank, classes).init(&device),
        factor_weight,
    );
    factor.bias = imagenet.bias;
    (basis, factor)
}

fn with_weight(mut layer: Linear, weight: Tensor<2>) -> Linear {
    layer.weight = Param::from_tensor(weight);
    layer
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
    use burn::tensor::Device;

    /// A random layer factored at full rank computes what it did; at lower ranks the error
    /// grows as the rank falls.
    #[test]
    fn factorising_keeps_the_layer_up_to_its_rank() {
        let device: Device = Backend::DEFAULT_CPU.device().unwrap();
        let layer = LinearConfig::new(48, 40).init(&device);
        let features = Tensor::<2>::random(
            [8, 48],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let expected = layer.forward(features.clone());
        let error = |rank: usize| {
            let (basis, factor) = factorise(layer.clone(), rank);
            let got = factor.forward(basis.forward(features.clone()));
            let diff: f32 = (got - expected.clone()).abs().max().into_scalar();
            diff
        };
        assert!(error(40) < 1e-4, "{}", error(40));
        let (e8, e24) = (error(8), error(24));
        assert!(e8 > e24 && e24 > error(40), "{e8} {e24}");
    }

    #[test]
    fn the_threshold_keeps_the_asked_share() {
        let values: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let threshold = lower_quantile(&values, 0.01);
        assert_eq!(threshold, 0.01);
        assert_eq!(PassRate::of(&values, threshold).passed, 990);
        assert_eq!(lower_quantile(&values, 0.0), 0.0);
    }
}

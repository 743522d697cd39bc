//! `export`: a model file rewritten as the web weight file, in the smallest form that keeps
//! its accuracy (f16 storage by default: half the bytes, logits change by about 3e-5).

use std::path::{Path, PathBuf};

use catdog_model::weights::WeightsDtype;
use catdog_model::{Backend, Classifier, Geometry, ModelFile, WeightsError};

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
    #[error(
        "{path}: the network sees the whole photo ({trained:?}): it has no crop to take from \
         the photo or from the photo squashed"
    )]
    NoCrop { path: PathBuf, trained: Geometry },
    #[error("{path}: the weights could not be written as safetensors: {reason}")]
    Safetensors { path: PathBuf, reason: String },
}

/// Where a cropping model's centred crop is taken: the same pixels on square photos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Crop {
    /// From the photo as it is: a centred square of its shorter side.
    Crop,
    /// From the photo squashed to a square: the centred part of its width and of its height.
    SquashCrop,
}

/// The written file.
#[derive(Debug, Clone)]
pub struct Exported {
    pub bytes: Vec<u8>,
    /// The largest difference between the input's and the output's logits on a test input.
    pub max_logit_change: f32,
}

/// What `export` may change in a file's header besides how its weights are stored: how the
/// network sees a photo, never what it learned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Viewing {
    /// Where a cropping model's centred crop is taken (the same pixels on square photos), so
    /// a model trained on photos squashed to squares (Kaggle's 200 x 200 set) can be told to
    /// squash a full-size photo first, as its photos were.
    pub crop: Option<Crop>,
    /// The input size, the weights unchanged: both networks end in global average pooling,
    /// so they take any size, and a network evaluated somewhat larger than it was trained
    /// sees the pet at the size its ImageNet training crops showed it (measured in the
    /// README, on validation, before it is used).
    pub input_size: Option<u32>,
}

/// Reads the model file `from`, stores its weights as `dtype`, checks that the result loads
/// and predicts like the original, and writes it atomically to `to`. The header (with the
/// training summary) is kept, but for what `viewing` changes.
pub fn export(
    from: &Path,
    to: &Path,
    dtype: WeightsDtype,
    viewing: Viewing,
) -> Result<Exported, ExportError> {
    let weights = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Weights { path, source }
    };
    let bytes = std::fs::read(from).map_err(|source| ExportError::Io {
        path: from.to_path_buf(),
        source,
    })?;
    let mut file = ModelFile::parse(&bytes).map_err(weights(from))?;
    // The header first: a crop that cannot be moved, or a size no page would load, is
    // refused before the network loads.
    if let Some(crop) = viewing.crop {
        let trained = file.header.preprocess.geometry;
        let fraction = trained.fraction().ok_or_else(|| ExportError::NoCrop {
            path: from.to_path_buf(),
            trained,
        })?;
        file.header.preprocess.geometry = match crop {
            Crop::Crop => Geometry::CentreCrop { fraction },
            Crop::SquashCrop => Geometry::SquashThenCrop { fraction },
        };
    }
    if let Some(size) = viewing.input_size {
        file.header.preprocess.input_size = size;
        catdog_model::limits::check(&file.header).map_err(weights(from))?;
    }
    let mut header = file.header.clone();
    header.weights_dtype = dtype;
    let device = Backend::DEFAULT_CPU.device()?;
    let original = Classifier::from_file(&file, &device).map_err(weights(from))?;
    let network = file.load_network(&device).map_err(weights(from))?;
    let out = ModelFile::from_network(header, &network)
        .map_err(weights(from))?
        .to_bytes();
    // Read it back as the page will, and compare predictions on a fixed input, both seeing
    // it the new way: what changes is the storage alone.
    let exported = Classifier::load(&out, &device).map_err(weights(to))?;
    let probe = probe_input(file.header.preprocess.input_size);
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

/// Writes a model file's weights as safetensors in PyTorch's conventions (dense weights
/// transposed, norms' `weight`/`bias`/`running_mean`/`running_var`), with the file's header
/// (architecture, input size, normalisation) as the `catdog_header` metadata: how the network
/// reaches PyTorch and ONNX tooling (`bench/onnx_export.py`). Returns the number of tensors.
pub fn export_safetensors(from: &Path, to: &Path) -> Result<usize, ExportError> {
    use burn::module::Module;
    use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};

    let bytes = std::fs::read(from).map_err(|source| ExportError::Io {
        path: from.to_path_buf(),
        source,
    })?;
    let weights = |source| ExportError::Weights {
        path: from.to_path_buf(),
        source,
    };
    let file = ModelFile::parse(&bytes).map_err(weights)?;
    let device = Backend::DEFAULT_CPU.device()?;
    let network = file.load_network(&device).map_err(weights)?;
    let failed = |reason: String| ExportError::Safetensors {
        path: to.to_path_buf(),
        reason,
    };
    let header = serde_json::to_string(&file.header).map_err(|error| failed(error.to_string()))?;
    // Written beside the target and renamed into place, so a failure leaves no half file.
    let partial = to.with_extension("safetensors.partial");
    let mut store = SafetensorsStore::from_file(&partial)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata("catdog_header", header);
    // The variant's module itself, so tensor paths do not name the enum's variant.
    let (saved, tensors) = match &network {
        catdog_model::Network::Cnn(cnn) => (cnn.save_into(&mut store), cnn.num_params()),
        catdog_model::Network::EfficientNet(classifier) => {
            (classifier.save_into(&mut store), classifier.num_params())
        }
    };
    saved.map_err(|error| failed(format!("{error:?}")))?;
    std::fs::rename(&partial, to).map_err(|source| ExportError::Io {
        path: to.to_path_buf(),
        source,
    })?;
    Ok(tensors)
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

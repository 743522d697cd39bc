//! The network: its architecture description (stored in the weight file) and the Burn module.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

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
}

impl Architecture {
    /// The names of the architectures this build can load.
    pub const KNOWN: &'static [&'static str] = &["cnn"];

    /// The architecture's `kind` as written in the weight file.
    pub fn kind(&self) -> &'static str {
        match self {
            Architecture::Cnn(_) => "cnn",
        }
    }

    /// Builds the network with freshly initialised weights.
    pub fn init(&self, device: &Device) -> Network {
        match self {
            Architecture::Cnn(config) => config.init(device),
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
    pub fn init(&self, device: &Device) -> Network {
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
        Network {
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

/// The classifier network. Input: `[batch, 3, size, size]` normalised photos; output:
/// `[batch, 2]` logits (cat, dog).
#[derive(Module, Debug)]
pub struct Network {
    blocks: Vec<ConvBlock>,
    pool: AdaptiveAvgPool2d,
    dropout: Dropout,
    head: Linear,
}

impl Network {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let features = self.blocks.iter().fold(images, |x, block| block.forward(x));
        let features: Tensor<2> = self.pool.forward(features).flatten(1, 3);
        self.head.forward(self.dropout.forward(features))
    }
}

//! EfficientNet-Lite, the ImageNet backbones the accurate model is fine-tuned from, exactly as
//! `shared/weights/README.md` describes the pretrained files: a 3x3 stride-2 stem of 32
//! channels, inverted-residual (MBConv) blocks in seven stages, a 1x1 head to 1280 channels,
//! ReLU6 everywhere, no squeeze-and-excitation, TensorFlow "SAME" padding and batch-norm
//! epsilon 1e-3. The family's members ([`Variant`]) differ in how many blocks each stage has,
//! their channels and their input size; the stem and the head are the same in all.
//!
//! Burn's `PaddingConfig2d::Same` pads `floor(total / 2)` before and the rest after, which is
//! TensorFlow's rule, so the stride-2 layers get the same asymmetric padding the weights were
//! trained with.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu6;
use burn::tensor::{Device, Tensor};

use crate::fold;
use crate::limits::Footprint;
use crate::network::{batch_norm_parameters, conv_parameters};
use crate::preprocess::{Geometry, Normalization, Preprocess, Resample};

/// Channels of the stem.
pub const STEM_CHANNELS: usize = 32;
/// Length of the pooled feature vector the head produces.
pub const FEATURES: usize = 1280;
/// Classes of the ImageNet classifier the pretrained files end with.
pub const IMAGENET_CLASSES: usize = 1000;
/// The ImageNet classes of pets and their wild kin: the dog breeds (151-268), wolves, wild dogs
/// and foxes (269-280), domestic cats (281-285) and wild cats (286-293). ImageNet's classifier
/// puts most of a cat's or a dog's probability here, often part of it on the wild kin, and
/// little of anything else's: the "neither cat nor dog" check ([`PetFilter`]).
///
/// [`PetFilter`]: crate::network::PetFilter
pub const PET_CLASSES: std::ops::Range<usize> = 151..294;
/// Blocks in the tail: the part after the trunk, which fine-tuning may unfreeze.
pub const TAIL_BLOCKS: usize = 1;

/// The batch-norm epsilon of the TensorFlow original (PyTorch's default is 1e-5).
const BATCH_NORM_EPSILON: f64 = 1e-3;

/// A member of the EfficientNet-Lite family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// 4.65 M parameters, 224 px, 16 blocks.
    Lite0,
    /// 5.47 M parameters, 240 px, 21 blocks (deeper stages, the same channels as Lite0).
    Lite1,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Lite0, Variant::Lite1];

    /// The name of the variant as the pretrained files and the trainer's options spell it.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Lite0 => "efficientnet-lite0",
            Variant::Lite1 => "efficientnet-lite1",
        }
    }

    /// The input size the backbone was trained and evaluated at.
    pub fn input_size(self) -> u32 {
        match self {
            Variant::Lite0 => 224,
            Variant::Lite1 => 240,
        }
    }

    /// The blocks of each of the seven stages: Lite0's 1/2/2/3/3/4/1, and deeper members
    /// scale the five middle stages (the first and last stay one block in the Lite family).
    fn stage_blocks(self) -> [usize; 7] {
        match self {
            Variant::Lite0 => [1, 2, 2, 3, 3, 4, 1],
            Variant::Lite1 => [1, 3, 3, 4, 4, 5, 1],
        }
    }

    /// MBConv blocks in the backbone.
    pub fn blocks(self) -> usize {
        self.stage_blocks().iter().sum()
    }

    /// How a photo becomes this backbone's input: the way its weights were trained and
    /// evaluated, a centred crop of `size / (size + 32)` of the shorter side (TensorFlow's
    /// EfficientNet evaluation), bicubic resampling and `(x - 127) / 128`.
    pub fn preprocess(self) -> Preprocess {
        let size = self.input_size();
        Preprocess {
            input_size: size,
            normalization: Normalization::SYMMETRIC,
            resample: Resample::Bicubic,
            geometry: Geometry::CentreCrop {
                fraction: size as f32 / (size + 32) as f32,
            },
        }
    }

    /// The backbone's parameters and largest activations for one photo of `input_size`
    /// pixels, walked layer by layer as [`EfficientNetLite::new`] builds them.
    pub fn footprint(self, input_size: u32) -> Footprint {
        let conv_norm = |inputs: u64, outputs: u64, kernel: u64, groups: u64| {
            conv_parameters(inputs, outputs, kernel, groups) + batch_norm_parameters(outputs)
        };
        let input = u64::from(input_size);
        let mut side = input.div_ceil(2);
        let mut footprint = Footprint {
            parameters: conv_norm(3, STEM_CHANNELS as u64, 3, 1),
            activations: 3 * input * input + STEM_CHANNELS as u64 * side * side,
        };
        let mut in_channels = STEM_CHANNELS as u64;
        for (stage, count) in STAGES.iter().zip(self.stage_blocks()) {
            for index in 0..count {
                let stride = if index == 0 { stage.stride } else { 1 } as u64;
                let (out, hidden) = (
                    stage.out_channels as u64,
                    in_channels * stage.expansion as u64,
                );
                let expand = if stage.expansion == 1 {
                    0
                } else {
                    conv_norm(in_channels, hidden, 1, 1)
                };
                let next = side.div_ceil(stride);
                // The block's input, the expansion's output and the depthwise output.
                footprint = footprint.then(Footprint {
                    parameters: expand
                        + conv_norm(hidden, hidden, stage.kernel as u64, hidden)
                        + conv_norm(hidden, out, 1, 1),
                    activations: (in_channels + hidden) * side * side + hidden * next * next,
                });
                (in_channels, side) = (out, next);
            }
        }
        footprint.then(Footprint {
            parameters: conv_norm(in_channels, FEATURES as u64, 1, 1),
            activations: (in_channels + FEATURES as u64) * side * side,
        })
    }

    /// Channels and spatial size of the trunk's output (the input of the last block) for a
    /// square input of `input_size` pixels: five stride-2 layers with "SAME" padding.
    pub fn trunk_shape(self, input_size: u32) -> [usize; 3] {
        let side = (0..5).fold(input_size as usize, |side, _| side.div_ceil(2));
        [STAGES[5].out_channels, side, side]
    }
}

/// One stage of blocks; how many depends on the [`Variant`].
struct Stage {
    kernel: usize,
    /// Stride of the stage's first block; the others have stride 1.
    stride: usize,
    expansion: usize,
    out_channels: usize,
}

const STAGES: [Stage; 7] = [
    stage(3, 1, 1, 16),
    stage(3, 2, 6, 24),
    stage(5, 2, 6, 40),
    stage(3, 2, 6, 80),
    stage(5, 1, 6, 112),
    stage(5, 2, 6, 192),
    stage(3, 1, 6, 320),
];

const fn stage(kernel: usize, stride: usize, expansion: usize, out_channels: usize) -> Stage {
    Stage {
        kernel,
        stride,
        expansion,
        out_channels,
    }
}

/// A bias-free convolution and its batch-norm, optionally followed by ReLU6.
#[derive(Module, Debug)]
pub struct ConvNorm {
    conv: Conv2d,
    norm: BatchNorm,
    /// Whether `norm` has been merged into `conv` for inference.
    #[module(skip)]
    folded: bool,
}

impl ConvNorm {
    fn new(
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        groups: usize,
        device: &Device,
    ) -> Self {
        Self {
            conv: Conv2dConfig::new(channels, [kernel, kernel])
                .with_stride([stride, stride])
                .with_groups(groups)
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(device),
            norm: BatchNormConfig::new(channels[1])
                .with_epsilon(BATCH_NORM_EPSILON)
                .init(device),
            folded: false,
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        fold::conv_norm(&self.conv, &self.norm, self.folded, input)
    }

    fn fold(mut self) -> Self {
        fold::fold(&mut self.conv, &self.norm, &mut self.folded);
        self
    }

    fn forward_relu6(&self, input: Tensor<4>) -> Tensor<4> {
        relu6(self.forward(input))
    }
}

/// Inverted residual block: 1x1 expansion (absent when the expansion is 1), depthwise
/// convolution, 1x1 linear projection, and a skip connection when the shape is unchanged.
#[derive(Module, Debug)]
pub struct MbConv {
    expand: Option<ConvNorm>,
    depthwise: ConvNorm,
    project: ConvNorm,
    residual: bool,
}

impl MbConv {
    fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        expansion: usize,
        device: &Device,
    ) -> Self {
        let hidden = in_channels * expansion;
        Self {
            expand: (expansion != 1).then(|| ConvNorm::new([in_channels, hidden], 1, 1, 1, device)),
            depthwise: ConvNorm::new([hidden, hidden], kernel, stride, hidden, device),
            project: ConvNorm::new([hidden, out_channels], 1, 1, 1, device),
            residual: stride == 1 && in_channels == out_channels,
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let x = match &self.expand {
            Some(expand) => expand.forward_relu6(input.clone()),
            None => input.clone(),
        };
        let x = self.project.forward(self.depthwise.forward_relu6(x));
        if self.residual { x + input } else { x }
    }

    fn fold(self) -> Self {
        Self {
            expand: self.expand.map(ConvNorm::fold),
            depthwise: self.depthwise.fold(),
            project: self.project.fold(),
            residual: self.residual,
        }
    }
}

/// The backbone without its ImageNet classifier: photos in, 1280 pooled features out.
#[derive(Module, Debug)]
pub struct EfficientNetLite {
    stem: ConvNorm,
    blocks: Vec<MbConv>,
    head: ConvNorm,
    pool: AdaptiveAvgPool2d,
}

impl EfficientNetLite {
    pub fn new(variant: Variant, device: &Device) -> Self {
        let mut in_channels = STEM_CHANNELS;
        let mut blocks = Vec::new();
        for (stage, count) in STAGES.iter().zip(variant.stage_blocks()) {
            for index in 0..count {
                let stride = if index == 0 { stage.stride } else { 1 };
                blocks.push(MbConv::new(
                    in_channels,
                    stage.out_channels,
                    stage.kernel,
                    stride,
                    stage.expansion,
                    device,
                ));
                in_channels = stage.out_channels;
            }
        }
        Self {
            stem: ConvNorm::new([3, STEM_CHANNELS], 3, 2, 1, device),
            blocks,
            head: ConvNorm::new([in_channels, FEATURES], 1, 1, 1, device),
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
        }
    }

    /// The same backbone with every batch-norm merged into its convolution, for inference.
    pub fn fold_batch_norms(self) -> Self {
        Self {
            stem: self.stem.fold(),
            blocks: self.blocks.into_iter().map(MbConv::fold).collect(),
            head: self.head.fold(),
            pool: self.pool,
        }
    }

    pub fn is_folded(&self) -> bool {
        self.stem.folded
    }

    /// `[batch, 3, h, w]` normalised photos to `[batch, 1280]` features.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.tail(self.trunk(images))
    }

    /// The stem and every block but the last [`TAIL_BLOCKS`]: what fine-tuning on a CPU keeps
    /// frozen, so its output can be computed once per photo and cached.
    pub fn trunk(&self, images: Tensor<4>) -> Tensor<4> {
        let trunk = self.blocks.len() - TAIL_BLOCKS;
        self.blocks[..trunk]
            .iter()
            .fold(self.stem.forward_relu6(images), |x, block| block.forward(x))
    }

    /// The last blocks, the 1x1 head and the pooling: trunk output to `[batch, 1280]`.
    pub fn tail(&self, trunk: Tensor<4>) -> Tensor<2> {
        self.pool_features(self.tail_activations(trunk))
    }

    /// The activations of the last convolutional block (the 1x1 head, after its ReLU6),
    /// `[batch, 1280, h / 32, w / 32]`: what Grad-CAM explains a verdict with.
    pub fn last_activations(&self, images: Tensor<4>) -> Tensor<4> {
        self.tail_activations(self.trunk(images))
    }

    /// Global average pooling of [`last_activations`](Self::last_activations) to the
    /// `[batch, 1280]` features.
    pub fn pool_features(&self, activations: Tensor<4>) -> Tensor<2> {
        self.pool.forward(activations).flatten(1, 3)
    }

    fn tail_activations(&self, trunk: Tensor<4>) -> Tensor<4> {
        let first = self.blocks.len() - TAIL_BLOCKS;
        let x = self.blocks[first..]
            .iter()
            .fold(trunk, |x, block| block.forward(x));
        self.head.forward_relu6(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_architecture_has_the_pretrained_files_shape() {
        let device = Device::flex();
        let backbone = EfficientNetLite::new(Variant::Lite0, &device);
        assert_eq!(backbone.blocks.len(), Variant::Lite0.blocks());
        // 4.65 M parameters with the 1.28 M of the ImageNet classifier (1280 x 1000 + 1000);
        // Burn also counts the batch-norm running means and variances (42,016 values).
        let classifier = FEATURES * IMAGENET_CLASSES + IMAGENET_CLASSES;
        let running_statistics = 42_016;
        assert_eq!(
            backbone.num_params() + classifier,
            4_652_008 + running_statistics
        );
        let trunk = backbone.trunk(Tensor::zeros([2, 3, 224, 224], &device));
        assert_eq!(trunk.dims()[1..], Variant::Lite0.trunk_shape(224));
        assert_eq!(Variant::Lite0.trunk_shape(224), [192, 7, 7]);
        assert_eq!(backbone.tail(trunk).dims(), [2, FEATURES]);
    }

    #[test]
    fn the_footprint_counts_the_parameters_burn_builds() {
        let device = Device::flex();
        for variant in Variant::ALL {
            let backbone = EfficientNetLite::new(variant, &device);
            assert_eq!(
                variant.footprint(224).parameters,
                backbone.num_params() as u64,
                "{variant:?}"
            );
        }
        // Lite0 at 224 px: the largest layer is the first block of the second stage (16
        // channels in, 96 expanded at 112 px, 96 at 56 px after its stride).
        assert_eq!(
            Variant::Lite0.footprint(224).activations,
            (16 + 96) * 112 * 112 + 96 * 56 * 56
        );
    }

    #[test]
    fn lite1_is_deeper_with_the_same_channels() {
        let device = Device::flex();
        let backbone = EfficientNetLite::new(Variant::Lite1, &device);
        assert_eq!(backbone.blocks.len(), 21);
        // That every tensor of the pretrained Lite1 file fits is the trainer's import test.
        // 240 px: 120, 60, 30, 15, then 8 with "SAME" padding.
        let trunk = backbone.trunk(Tensor::zeros([1, 3, 240, 240], &device));
        assert_eq!(trunk.dims()[1..], [192, 8, 8]);
        assert_eq!(Variant::Lite1.trunk_shape(240), [192, 8, 8]);
    }
}

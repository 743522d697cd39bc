//! EfficientNet-Lite, the ImageNet backbones the accurate model is fine-tuned from, exactly as
//! `shared/weights/README.md` describes the pretrained files: a 3x3 stride-2 stem of 32
//! channels, inverted-residual (MBConv) blocks in seven stages, a 1x1 head to 1280 channels,
//! ReLU6 everywhere, no squeeze-and-excitation, TensorFlow "SAME" padding and batch-norm
//! epsilon 1e-3. The family's members ([`Variant`]) differ in how many blocks each stage has,
//! their channels and their input size; the stem and the head are the same in all.
//!
//! A backbone may also end early, after one of its first six stages ([`Depth`]): the pooled
//! output of that stage is what the cat/dog head reads, and the later stages and the 1x1 head
//! convolution are left out. Most of the parameters (and, at small inputs, much of the time)
//! are in the last stages, so this is how a small, fast model keeps pretrained features.
//!
//! Burn's `PaddingConfig2d::Same` pads `floor(total / 2)` before and the rest after, which is
//! TensorFlow's rule, so the stride-2 layers get the same asymmetric padding the weights were
//! trained with.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
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
/// Stages in every member of the family.
pub const STAGE_COUNT: usize = 7;

/// Where a backbone ends: after all seven stages and the 1x1 head convolution to
/// [`FEATURES`] channels, as pretrained (`None`), or after stage `n` of 1 to 6 (`Some(n)`),
/// whose output channels are then the features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Depth(pub Option<usize>);

impl Depth {
    /// The whole pretrained backbone.
    pub const WHOLE: Depth = Depth(None);
    /// The stages a backbone may end after, when it ends early.
    pub const EARLY_STAGES: std::ops::RangeInclusive<usize> = 1..=STAGE_COUNT - 1;

    /// Stages that run.
    fn stages(self) -> usize {
        self.0.unwrap_or(STAGE_COUNT)
    }

    /// Whether the 1x1 head convolution to [`FEATURES`] channels runs.
    pub fn is_whole(self) -> bool {
        self.0.is_none()
    }

    /// Length of the pooled feature vector the backbone ends with.
    pub fn features(self) -> usize {
        match self.0 {
            None => FEATURES,
            Some(stage) => STAGES[stage - 1].out_channels,
        }
    }
}

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

    /// The MBConv blocks of the backbone's first stages, in order: the one description that
    /// building the network, counting its footprint and sizing its trunk all walk.
    fn block_plan(self, depth: Depth) -> Vec<BlockPlan> {
        let mut plan = Vec::new();
        let mut in_channels = STEM_CHANNELS;
        let stages = STAGES.iter().zip(self.stage_blocks()).take(depth.stages());
        for (stage, count) in stages {
            for index in 0..count {
                plan.push(BlockPlan {
                    in_channels,
                    out_channels: stage.out_channels,
                    kernel: stage.kernel,
                    stride: if index == 0 { stage.stride } else { 1 },
                    expansion: stage.expansion,
                });
                in_channels = stage.out_channels;
            }
        }
        plan
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
    pub fn footprint(self, input_size: u32, depth: Depth) -> Footprint {
        let conv_norm = |inputs: u64, outputs: u64, kernel: u64, groups: u64| {
            conv_parameters(inputs, outputs, kernel, groups) + batch_norm_parameters(outputs)
        };
        let input = u64::from(input_size);
        let mut side = input.div_ceil(2);
        let mut footprint = Footprint {
            parameters: conv_norm(3, STEM_CHANNELS as u64, 3, 1),
            activations: 3 * input * input + STEM_CHANNELS as u64 * side * side,
        };
        for block in self.block_plan(depth) {
            let (input, out) = (block.in_channels as u64, block.out_channels as u64);
            let hidden = block.hidden() as u64;
            let expand = if block.expansion == 1 {
                0
            } else {
                conv_norm(input, hidden, 1, 1)
            };
            let next = side.div_ceil(block.stride as u64);
            // The block's input, the expansion's output and the depthwise output.
            footprint = footprint.then(Footprint {
                parameters: expand
                    + conv_norm(hidden, hidden, block.kernel as u64, hidden)
                    + conv_norm(hidden, out, 1, 1),
                activations: (input + hidden) * side * side + hidden * next * next,
            });
            side = next;
        }
        if !depth.is_whole() {
            return footprint;
        }
        let last = STAGES[STAGE_COUNT - 1].out_channels as u64;
        footprint.then(Footprint {
            parameters: conv_norm(last, FEATURES as u64, 1, 1),
            activations: (last + FEATURES as u64) * side * side,
        })
    }

    /// Channels and spatial size of the trunk's output (the input of the last block) for a
    /// square input of `input_size` pixels ("SAME" padding rounds each stride's output up).
    pub fn trunk_shape(self, input_size: u32, depth: Depth) -> [usize; 3] {
        let plan = self.block_plan(depth);
        let trunk = &plan[..plan.len() - TAIL_BLOCKS];
        let side = trunk
            .iter()
            .fold((input_size as usize).div_ceil(2), |side, block| {
                side.div_ceil(block.stride)
            });
        let channels = trunk
            .last()
            .map_or(STEM_CHANNELS, |block| block.out_channels);
        [channels, side, side]
    }
}

/// One MBConv block of a backbone, before it is built.
#[derive(Clone, Copy)]
struct BlockPlan {
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    expansion: usize,
}

impl BlockPlan {
    /// Channels between the expansion and the projection.
    fn hidden(&self) -> usize {
        self.in_channels * self.expansion
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
        fold::conv_norm_relu6(&self.conv, &self.norm, self.folded, input)
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
    fn new(plan: &BlockPlan, device: &Device) -> Self {
        let hidden = plan.hidden();
        let BlockPlan {
            in_channels,
            out_channels,
            kernel,
            stride,
            expansion,
        } = *plan;
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

/// The backbone without its ImageNet classifier: photos in, pooled features out (1280 for the
/// whole backbone, the last stage's channels for one that ends early, see [`Depth`]).
#[derive(Module, Debug)]
pub struct EfficientNetLite {
    stem: ConvNorm,
    blocks: Vec<MbConv>,
    /// The 1x1 convolution to 1280 channels; `None` when the backbone ends early.
    head: Option<ConvNorm>,
    pool: AdaptiveAvgPool2d,
}

impl EfficientNetLite {
    pub fn new(variant: Variant, depth: Depth, device: &Device) -> Self {
        let plan = variant.block_plan(depth);
        let last = STAGES[STAGE_COUNT - 1].out_channels;
        Self {
            stem: ConvNorm::new([3, STEM_CHANNELS], 3, 2, 1, device),
            blocks: plan
                .iter()
                .map(|block| MbConv::new(block, device))
                .collect(),
            head: depth
                .is_whole()
                .then(|| ConvNorm::new([last, FEATURES], 1, 1, 1, device)),
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
        }
    }

    /// The same (pretrained) backbone ending at `depth`: its first blocks, without the head
    /// convolution when it ends early.
    pub fn truncate(self, variant: Variant, depth: Depth) -> Self {
        let blocks = variant.block_plan(depth).len();
        Self {
            blocks: self.blocks.into_iter().take(blocks).collect(),
            head: if depth.is_whole() { self.head } else { None },
            ..self
        }
    }

    /// The same backbone with every batch-norm merged into its convolution, for inference.
    pub fn fold_batch_norms(self) -> Self {
        Self {
            stem: self.stem.fold(),
            blocks: self.blocks.into_iter().map(MbConv::fold).collect(),
            head: self.head.map(ConvNorm::fold),
            pool: self.pool,
        }
    }

    pub fn is_folded(&self) -> bool {
        self.stem.folded
    }

    /// `[batch, 3, h, w]` normalised photos to `[batch, features]`.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.tail(self.trunk(images))
    }

    /// Blocks in [`trunk`](Self::trunk).
    pub fn trunk_blocks(&self) -> usize {
        self.blocks.len() - TAIL_BLOCKS
    }

    /// The stem and every block but the last [`TAIL_BLOCKS`]: what fine-tuning on a CPU keeps
    /// frozen, so its output can be computed once per photo and cached.
    pub fn trunk(&self, images: Tensor<4>) -> Tensor<4> {
        self.blocks[..self.trunk_blocks()]
            .iter()
            .fold(self.stem.forward_relu6(images), |x, block| block.forward(x))
    }

    /// The last blocks, the 1x1 head and the pooling: trunk output to `[batch, features]`.
    pub fn tail(&self, trunk: Tensor<4>) -> Tensor<2> {
        self.pool_features(self.tail_activations(trunk))
    }

    /// The activations of the last convolutional block (the 1x1 head after its ReLU6,
    /// `[batch, 1280, h / 32, w / 32]`, or the last block's output when the backbone ends
    /// early): what Grad-CAM explains a verdict with.
    pub fn last_activations(&self, images: Tensor<4>) -> Tensor<4> {
        self.tail_activations(self.trunk(images))
    }

    /// Global average pooling of [`last_activations`](Self::last_activations) to the
    /// `[batch, features]`.
    pub fn pool_features(&self, activations: Tensor<4>) -> Tensor<2> {
        self.pool.forward(activations).flatten(1, 3)
    }

    fn tail_activations(&self, trunk: Tensor<4>) -> Tensor<4> {
        let x = self.blocks[self.trunk_blocks()..]
            .iter()
            .fold(trunk, |x, block| block.forward(x));
        match &self.head {
            Some(head) => head.forward_relu6(x),
            None => x,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_architecture_has_the_pretrained_files_shape() {
        let device = Device::flex();
        let backbone = EfficientNetLite::new(Variant::Lite0, Depth::WHOLE, &device);
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
        assert_eq!(
            trunk.dims()[1..],
            Variant::Lite0.trunk_shape(224, Depth::WHOLE)
        );
        assert_eq!(Variant::Lite0.trunk_shape(224, Depth::WHOLE), [192, 7, 7]);
        assert_eq!(backbone.tail(trunk).dims(), [2, FEATURES]);
    }

    #[test]
    fn the_footprint_counts_the_parameters_burn_builds() {
        let device = Device::flex();
        let depths =
            std::iter::once(Depth::WHOLE).chain(Depth::EARLY_STAGES.map(|s| Depth(Some(s))));
        for variant in Variant::ALL {
            for depth in depths.clone() {
                let backbone = EfficientNetLite::new(variant, depth, &device);
                assert_eq!(
                    variant.footprint(224, depth).parameters,
                    backbone.num_params() as u64,
                    "{variant:?} {depth:?}"
                );
            }
        }
        // Lite0 at 224 px: the largest layer is the first block of the second stage (16
        // channels in, 96 expanded at 112 px, 96 at 56 px after its stride).
        assert_eq!(
            Variant::Lite0.footprint(224, Depth::WHOLE).activations,
            (16 + 96) * 112 * 112 + 96 * 56 * 56
        );
    }

    #[test]
    fn lite1_is_deeper_with_the_same_channels() {
        let device = Device::flex();
        let backbone = EfficientNetLite::new(Variant::Lite1, Depth::WHOLE, &device);
        assert_eq!(backbone.blocks.len(), 21);
        // That every tensor of the pretrained Lite1 file fits is the trainer's import test.
        // 240 px: 120, 60, 30, 15, then 8 with "SAME" padding.
        let trunk = backbone.trunk(Tensor::zeros([1, 3, 240, 240], &device));
        assert_eq!(trunk.dims()[1..], [192, 8, 8]);
        assert_eq!(Variant::Lite1.trunk_shape(240, Depth::WHOLE), [192, 8, 8]);
    }

    #[test]
    fn a_backbone_ending_early_is_the_whole_ones_first_blocks() {
        let device = Device::flex();
        let whole = EfficientNetLite::new(Variant::Lite0, Depth::WHOLE, &device);
        let images = Tensor::<4>::random(
            [1, 3, 112, 112],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        // Stage 6 (4 blocks of 192 channels, stride 2 first): 112 -> 56, 28, 14, 7, then 4.
        let depth = Depth(Some(6));
        let early = whole.clone().truncate(Variant::Lite0, depth);
        assert_eq!(early.blocks.len(), 1 + 2 + 2 + 3 + 3 + 4);
        assert!(early.head.is_none());
        assert_eq!(depth.features(), 192);
        assert_eq!(
            early.num_params(),
            EfficientNetLite::new(Variant::Lite0, depth, &device).num_params()
        );
        let trunk = early.trunk(images.clone());
        assert_eq!(trunk.dims()[1..], Variant::Lite0.trunk_shape(112, depth));
        assert_eq!(Variant::Lite0.trunk_shape(112, depth), [192, 4, 4]);
        // Its features are the whole backbone's stage-6 output, pooled.
        let stage6 = whole.blocks[..early.blocks.len()]
            .iter()
            .fold(whole.stem.forward_relu6(images.clone()), |x, block| {
                block.forward(x)
            });
        let expected = whole.pool_features(stage6);
        let features = early.features(images);
        assert_eq!(features.dims(), [1, 192]);
        features
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), burn::tensor::Tolerance::default());
        // Stage 1 alone: the trunk is the stem (one block, which is the tail).
        assert_eq!(
            Variant::Lite1.trunk_shape(64, Depth(Some(1))),
            [STEM_CHANNELS, 32, 32]
        );
    }
}

//! The network: its architecture description (stored in the weight file) and the Burn module,
//! either the from-scratch CNN or an EfficientNet-Lite backbone with a cat/dog head.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::store::{ModuleRecord, RecordError};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::efficientnet::{self, Depth, EfficientNetLite, Variant};
use crate::fold;
use crate::limits::Footprint;

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
    /// The ImageNet-pretrained EfficientNet-Lite1 backbone with a cat/dog head.
    EfficientnetLite1(HeadConfig),
}

impl Architecture {
    /// The names of the architectures this build can load.
    pub const KNOWN: &'static [&'static str] = &["cnn", "efficientnet_lite0", "efficientnet_lite1"];

    /// A pretrained backbone of `variant` with a cat/dog head.
    pub fn efficientnet(variant: Variant, head: HeadConfig) -> Self {
        match variant {
            Variant::Lite0 => Architecture::EfficientnetLite0(head),
            Variant::Lite1 => Architecture::EfficientnetLite1(head),
        }
    }

    /// The architecture's `kind` as written in the weight file.
    pub fn kind(&self) -> &'static str {
        match self {
            Architecture::Cnn(_) => "cnn",
            Architecture::EfficientnetLite0(_) => "efficientnet_lite0",
            Architecture::EfficientnetLite1(_) => "efficientnet_lite1",
        }
    }

    /// The pretrained backbone and the head on it; `None` for the CNN.
    pub fn backbone(&self) -> Option<(Variant, &HeadConfig)> {
        match self {
            Architecture::Cnn(_) => None,
            Architecture::EfficientnetLite0(head) => Some((Variant::Lite0, head)),
            Architecture::EfficientnetLite1(head) => Some((Variant::Lite1, head)),
        }
    }

    /// The head on the pretrained backbone, to change it; `None` for the CNN.
    pub fn head_mut(&mut self) -> Option<&mut HeadConfig> {
        match self {
            Architecture::Cnn(_) => None,
            Architecture::EfficientnetLite0(head) | Architecture::EfficientnetLite1(head) => {
                Some(head)
            }
        }
    }

    /// The declared network's parameters and largest activations for one photo of
    /// `input_size` pixels, counted from the configuration without building anything, so a
    /// file can be refused before its network is allocated ([`limits`](crate::limits)).
    pub fn footprint(&self, input_size: u32) -> Footprint {
        match (self, self.backbone()) {
            (Architecture::Cnn(config), _) => config.footprint(input_size),
            (_, Some((variant, head))) => variant
                .footprint(input_size, head.depth())
                .then(head.footprint(head.depth().features())),
            (_, None) => unreachable!("only the CNN has no backbone"),
        }
    }

    /// The smallest square input whose last feature map is one pixel: each CNN block halves
    /// the side (2x2 max-pooling), and the EfficientNet-Lite backbones take at most 32 times
    /// (fewer when they end early).
    pub fn smallest_input(&self) -> u32 {
        match self {
            Architecture::Cnn(config) => 1u32
                .checked_shl(config.channels.len() as u32)
                .unwrap_or(u32::MAX),
            Architecture::EfficientnetLite0(_) | Architecture::EfficientnetLite1(_) => 32,
        }
    }

    /// Builds the network with freshly initialised weights.
    pub fn init(&self, device: &Device) -> Network {
        match (self, self.backbone()) {
            (Architecture::Cnn(config), _) => Network::Cnn(config.init(device)),
            (_, Some((variant, head))) => Network::EfficientNet(EfficientNetClassifier {
                backbone: EfficientNetLite::new(variant, head.depth(), device),
                head: head.init(head.depth().features(), device),
            }),
            (_, None) => unreachable!("only the CNN has no backbone"),
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
    fn footprint(&self, input_size: u32) -> Footprint {
        let mut side = u64::from(input_size);
        let mut in_channels = 3u64;
        let mut footprint = Footprint::default();
        for &out in &self.channels {
            let out = out as u64;
            // The input, the convolution's output and the batch-norm's (ReLU in place).
            let activations = in_channels
                .saturating_add(out.saturating_mul(2))
                .saturating_mul(side.saturating_mul(side));
            footprint = footprint.then(Footprint {
                parameters: conv_parameters(in_channels, out, 3, 1)
                    .saturating_add(batch_norm_parameters(out)),
                activations,
            });
            in_channels = out;
            side /= 2;
        }
        footprint.then(Footprint {
            parameters: linear_parameters(in_channels, NUM_CLASSES as u64),
            activations: 0,
        })
    }

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
    /// Whether `norm` has been merged into `conv` for inference.
    #[module(skip)]
    folded: bool,
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
            folded: false,
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.pool.forward(relu(fold::conv_norm(
            &self.conv,
            &self.norm,
            self.folded,
            input,
        )))
    }

    fn fold(mut self) -> Self {
        fold::fold(&mut self.conv, &self.norm, &mut self.folded);
        self
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
        self.head.forward(
            self.dropout
                .forward(self.pool_features(self.last_activations(images))),
        )
    }

    /// The last convolutional block's output, `[batch, channels, h, w]`.
    fn last_activations(&self, images: Tensor<4>) -> Tensor<4> {
        self.blocks.iter().fold(images, |x, block| block.forward(x))
    }

    fn pool_features(&self, activations: Tensor<4>) -> Tensor<2> {
        self.pool.forward(activations).flatten(1, 3)
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
    /// The "neither cat nor dog" check, when the model carries one (`native-trainer
    /// pet-filter` adds it; files from before it existed have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pet_filter: Option<PetFilter>,
    /// The backbone's stage (1 to 6) whose pooled output the head reads, the backbone ending
    /// there: a smaller, faster network ([`Depth`]). `None` (and every file from before
    /// backbones could end early): the whole backbone's 1280 features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_stage: Option<usize>,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            hidden: 0,
            dropout: 0.2,
            pet_filter: None,
            last_stage: None,
        }
    }
}

/// The "neither cat nor dog" check: the backbone's own ImageNet classifier is kept beside the
/// head, and a photo whose ImageNet probability of the pet classes
/// ([`efficientnet::PET_CLASSES`]) is below `threshold` is neither.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PetFilter {
    /// Chosen on the model's training photos so that a set share of them pass.
    pub threshold: f32,
    /// The ImageNet classifier stored as two factors through this many dimensions (its
    /// truncated singular value decomposition: features to `rank`, then `rank` to the 1000
    /// classes), a fraction of the whole 1280 x 1000 one; `None` (and every file from before):
    /// stored whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<usize>,
}

impl HeadConfig {
    /// Where the backbone under this head ends.
    pub fn depth(&self) -> Depth {
        Depth(self.last_stage)
    }

    fn footprint(&self, features: usize) -> Footprint {
        let features = features as u64;
        let hidden = self.hidden as u64;
        let dense = if hidden > 0 {
            linear_parameters(features, hidden)
                .saturating_add(linear_parameters(hidden, NUM_CLASSES as u64))
        } else {
            linear_parameters(features, NUM_CLASSES as u64)
        };
        let classes = efficientnet::IMAGENET_CLASSES as u64;
        let imagenet = match self.pet_filter {
            Some(PetFilter {
                rank: Some(rank), ..
            }) => {
                let rank = rank as u64;
                features
                    .saturating_mul(rank)
                    .saturating_add(linear_parameters(rank, classes))
            }
            Some(PetFilter { rank: None, .. }) => linear_parameters(features, classes),
            None => 0,
        };
        Footprint {
            parameters: dense.saturating_add(imagenet),
            activations: features.saturating_add(hidden),
        }
    }

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
            imagenet_basis: self.pet_filter.and_then(|filter| filter.rank).map(|rank| {
                LinearConfig::new(features, rank)
                    .with_bias(false)
                    .init(device)
            }),
            imagenet: self.pet_filter.map(|filter| {
                LinearConfig::new(
                    filter.rank.unwrap_or(features),
                    efficientnet::IMAGENET_CLASSES,
                )
                .init(device)
            }),
        }
    }
}

/// See [`HeadConfig`].
#[derive(Module, Debug)]
pub struct Head {
    dropout: Dropout,
    hidden: Option<Linear>,
    out: Linear,
    /// The backbone's ImageNet classifier, for the "neither" check ([`PetFilter`]); with a
    /// `rank`, its second factor (`rank` to the 1000 classes).
    imagenet: Option<Linear>,
    /// With a `rank`, the ImageNet classifier's first factor (features to `rank`).
    imagenet_basis: Option<Linear>,
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

    /// The input of the output layer for each photo's features, `[batch, inputs]` (as at
    /// inference: no dropout): what fine-tuning the last layer learns from.
    fn last_layer_inputs(&self, features: Tensor<2>) -> Tensor<2> {
        match &self.hidden {
            Some(hidden) => relu(hidden.forward(features)),
            None => features,
        }
    }

    /// The same head with the backbone's ImageNet classifier beside it, for the "neither"
    /// check ([`PetFilter`]): whole (`basis` `None`), or as two factors, `basis` (features to
    /// the rank, no bias) then `imagenet` (the rank to the 1000 classes).
    pub fn with_pet_classifier(self, basis: Option<Linear>, imagenet: Linear) -> Self {
        Self {
            imagenet: Some(imagenet),
            imagenet_basis: basis,
            ..self
        }
    }

    /// The ImageNet probability of the pet classes for each photo's features, `[batch]`;
    /// `None` without the ImageNet classifier.
    pub fn pet_probability(&self, features: Tensor<2>) -> Option<Tensor<1>> {
        let imagenet = self.imagenet.as_ref()?;
        let classes = efficientnet::PET_CLASSES;
        let features = match &self.imagenet_basis {
            Some(basis) => basis.forward(features),
            None => features,
        };
        let probabilities = softmax(imagenet.forward(features), 1);
        Some(
            probabilities
                .narrow(1, classes.start, classes.len())
                .sum_dim(1)
                .flatten(0, 1),
        )
    }

    /// The gradient of the dog logit minus the cat logit with respect to the head's input
    /// features, `[batch, features]`, in closed form (the head is at most two dense layers and
    /// a ReLU), so Grad-CAM runs wherever inference does, without autodiff.
    pub fn log_odds_gradient(&self, features: Tensor<2>) -> Tensor<2> {
        let dog_minus_cat = log_odds_weights(&self.out);
        match &self.hidden {
            None => dog_minus_cat,
            Some(hidden) => {
                // Through the ReLU only where the hidden unit is active, then back through
                // the hidden layer's weights (`[features, hidden]`).
                let active = hidden.forward(features).greater_elem(0.0).float();
                (active * dog_minus_cat).matmul(hidden.weight.val().transpose())
            }
        }
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

/// Weights of a bias-free convolution of `groups` groups.
pub(crate) fn conv_parameters(inputs: u64, outputs: u64, kernel: u64, groups: u64) -> u64 {
    (inputs / groups)
        .saturating_mul(outputs)
        .saturating_mul(kernel * kernel)
}

/// Scale, shift and the running mean and variance, which Burn counts as parameters.
pub(crate) fn batch_norm_parameters(channels: u64) -> u64 {
    channels.saturating_mul(4)
}

/// Weights and biases of a dense layer.
fn linear_parameters(inputs: u64, outputs: u64) -> u64 {
    inputs.saturating_mul(outputs).saturating_add(outputs)
}

/// Row `[1, inputs]` of a dense layer's dog-output weights minus its cat-output weights: the
/// gradient of the dog-minus-cat logit with respect to its input.
fn log_odds_weights(layer: &Linear) -> Tensor<2> {
    let weight = layer.weight.val();
    let [inputs, _] = weight.dims();
    let cat = weight.clone().slice([0..inputs, 0..1]);
    let dog = weight.slice([0..inputs, 1..2]);
    (dog - cat).reshape([1, inputs])
}

/// An EfficientNet-Lite backbone and its cat/dog head.
#[derive(Module, Debug)]
pub struct EfficientNetClassifier {
    pub backbone: EfficientNetLite,
    pub head: Head,
}

impl EfficientNetClassifier {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.backbone.features(images))
    }

    /// Logits from the backbone's trunk output (see [`EfficientNetLite::trunk`]): how the
    /// trainer fine-tunes the tail on cached trunk outputs.
    pub fn forward_from_trunk(&self, trunk: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.backbone.tail(trunk))
    }
}

/// What [`Network::forward_explained`] computes.
pub struct Explained {
    /// `[batch, 2]` (cat, dog).
    pub logits: Tensor<2>,
    /// `[batch, h, w]` dog-minus-cat Grad-CAM maps.
    pub maps: Tensor<3>,
    /// `[batch]` ImageNet probabilities of the pet classes, with the "neither" check.
    pub pets: Option<Tensor<1>>,
}

/// The classifier network. Input: `[batch, 3, size, size]` normalised photos; output:
/// `[batch, 2]` logits (cat, dog).
// One network per loaded model: the variants' size difference costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Network {
    Cnn(Cnn),
    EfficientNet(EfficientNetClassifier),
}

impl Network {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Network::Cnn(cnn) => cnn.forward(images),
            Network::EfficientNet(network) => network.forward(images),
        }
    }

    /// The ImageNet probability of the pet classes for each photo, `[batch]`, for a network
    /// that carries the "neither" check ([`PetFilter`]).
    pub fn pet_probability(&self, images: Tensor<4>) -> Option<Tensor<1>> {
        match self {
            Network::Cnn(_) => None,
            Network::EfficientNet(network) => network
                .head
                .pet_probability(network.backbone.features(images)),
        }
    }

    /// Everything a verdict shows, in one pass: the logits, the pet probability where the
    /// network has the "neither" check, and each photo's Grad-CAM map before the ReLU: the
    /// last convolutional block's activations weighted by the mean gradient of the
    /// dog-minus-cat logit over each channel, `[batch, h, w]`. Positive where the photo looks
    /// like a dog, negative where it looks like a cat; [`Heatmap`](crate::explain::Heatmap)
    /// keeps the predicted side.
    pub fn forward_explained(&self, images: Tensor<4>) -> Explained {
        let (activations, logits, gradient, pets) = match self {
            Network::Cnn(cnn) => {
                let activations = cnn.last_activations(images);
                let logits = cnn.head.forward(cnn.pool_features(activations.clone()));
                (activations, logits, log_odds_weights(&cnn.head), None)
            }
            Network::EfficientNet(network) => {
                let activations = network.backbone.last_activations(images);
                let features = network.backbone.pool_features(activations.clone());
                let gradient = network.head.log_odds_gradient(features.clone());
                let pets = network.head.pet_probability(features.clone());
                (activations, network.head.forward(features), gradient, pets)
            }
        };
        // Average pooling spreads each feature's gradient evenly over the map, so the mean
        // gradient over a channel is the feature's gradient over h * w: a constant factor
        // that normalising the heatmap removes.
        let [batch, channels, height, width] = activations.dims();
        let weights = gradient.reshape([-1, channels as i32, 1, 1]);
        let maps = (activations * weights)
            .sum_dim(1)
            .reshape([batch, height, width]);
        Explained { logits, maps, pets }
    }

    /// The same network with every batch-norm merged into the convolution before it: the
    /// same logits (to float rounding) for fewer passes over the activations. For inference
    /// only: training needs the batch-norms, and [`ModelFile::from_network`] refuses a folded
    /// network rather than store weights that no longer match their file layout.
    ///
    /// [`ModelFile::from_network`]: crate::ModelFile::from_network
    pub fn fold_batch_norms(self) -> Self {
        match self {
            Network::Cnn(cnn) => Network::Cnn(Cnn {
                blocks: cnn.blocks.into_iter().map(ConvBlock::fold).collect(),
                ..cnn
            }),
            Network::EfficientNet(network) => Network::EfficientNet(EfficientNetClassifier {
                backbone: network.backbone.fold_batch_norms(),
                head: network.head,
            }),
        }
    }

    /// The input of the last dense layer for each photo, `[batch, inputs]`, as at inference:
    /// the last layer maps it to the logits. Fine-tuning in the page
    /// ([`learn`](crate::learn)) trains that layer alone on these.
    pub fn last_layer_inputs(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Network::Cnn(cnn) => cnn.pool_features(cnn.last_activations(images)),
            Network::EfficientNet(network) => network
                .head
                .last_layer_inputs(network.backbone.features(images)),
        }
    }

    /// The last dense layer: `[batch, inputs]` to the `[batch, 2]` logits.
    pub fn last_layer(&self) -> &Linear {
        match self {
            Network::Cnn(cnn) => &cnn.head,
            Network::EfficientNet(network) => &network.head.out,
        }
    }

    /// The same network with another last dense layer of the same shape.
    pub fn with_last_layer(self, layer: Linear) -> Self {
        match self {
            Network::Cnn(cnn) => Network::Cnn(Cnn { head: layer, ..cnn }),
            Network::EfficientNet(network) => Network::EfficientNet(EfficientNetClassifier {
                head: Head {
                    out: layer,
                    ..network.head
                },
                ..network
            }),
        }
    }

    /// Whether [`fold_batch_norms`](Self::fold_batch_norms) made this network.
    pub fn is_folded(&self) -> bool {
        match self {
            Network::Cnn(cnn) => cnn.blocks.iter().any(|block| block.folded),
            Network::EfficientNet(network) => network.backbone.is_folded(),
        }
    }

    /// The weights, with tensor paths that do not name the variant: the file's header already
    /// says which network it holds, and a CNN file stays what it was before there were two.
    pub fn into_weights(self) -> ModuleRecord {
        match self {
            Network::Cnn(cnn) => cnn.into_record(),
            Network::EfficientNet(network) => network.into_record(),
        }
    }

    /// Loads weights taken with [`into_weights`](Self::into_weights).
    pub fn try_load_weights(self, weights: ModuleRecord) -> Result<Self, RecordError> {
        Ok(match self {
            Network::Cnn(cnn) => Network::Cnn(cnn.try_load_record(weights)?),
            Network::EfficientNet(network) => {
                Network::EfficientNet(network.try_load_record(weights)?)
            }
        })
    }
}

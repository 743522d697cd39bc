//! Teaching a model the user's own photos: fine-tuning its last dense layer on a few labelled
//! photos with Burn's autodiff, on whatever device the model runs on (WebGPU or the CPU in the
//! page), and storing the result as an ordinary weight file.
//!
//! Only the last layer learns. Everything before it saw thousands of photos; a handful of the
//! user's cannot improve it, only unsettle it. Even the last layer must not simply learn
//! "everything is a cat" from one cat: every photo's features are positive, so the cheapest
//! way to make one photo more of a cat is to make all of them so. Two things hold it back:
//! the model's own verdicts on other photos the user gave, which the lesson keeps
//! ("learning without forgetting", Li and Hoiem 2016), and a pull towards the starting weights
//! ([`Lesson::anchor`]), so that the layer moves only as far as the labelled photos need.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::classifier::{Classifier, ClassifyError, Label, floats, read};
use crate::preprocess::InputTensor;
use crate::weights::{ModelFile, WeightsError};

/// A photo the user labelled, as its file's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Example<'a> {
    pub photo: &'a [u8],
    pub label: Label,
}

impl<'a> Example<'a> {
    pub fn new(photo: &'a [u8], label: Label) -> Self {
        Self { photo, label }
    }
}

/// How a lesson learns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lesson {
    /// Optimiser steps, each on every labelled photo at once.
    pub steps: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// The weight of the pull towards the starting layer: `anchor * sum((w - w0)^2)` is added
    /// to the loss.
    pub anchor: f64,
    /// The weight of keeping the model's verdicts on the unlabelled photos: this times their
    /// mean KL divergence from the starting probabilities is added to the loss.
    pub keep: f64,
}

impl Default for Lesson {
    /// Chosen on the 200 photos of `originals/` (README, "Teach it your photos"): with 20 of
    /// them kept, ten steps fix a cat and a dog the shipped model gets wrong with over 90 %
    /// confidence and turn none of the other 178 verdicts; with none kept, a lesson on one
    /// photo turned up to a third of them.
    fn default() -> Self {
        Self {
            steps: 10,
            learning_rate: 3e-3,
            anchor: 1.0,
            keep: 10.0,
        }
    }
}

/// A lesson under way: the last layer being trained and the labelled photos' inputs to it.
pub struct FineTune {
    lesson: Lesson,
    /// The layer, on the model's device with autodiff.
    layer: Linear,
    /// Where it started, without gradients.
    start: (Tensor<2>, Option<Tensor<1>>),
    optimizer: ModuleOptimizer,
    /// `[photos, inputs]`: computed once, since nothing before the last layer changes.
    inputs: Tensor<2>,
    targets: Tensor<1, Int>,
    /// The unlabelled photos' inputs to the last layer and their starting probabilities.
    kept: Option<(Tensor<2>, Tensor<2>)>,
    steps_taken: usize,
}

impl FineTune {
    /// Runs each photo through the network up to its last layer, ready to learn: the labelled
    /// `examples`, and `unlabelled` photos whose verdicts the lesson keeps (any number, none
    /// included). Fails on a photo that cannot be decoded.
    pub fn new(
        classifier: &Classifier,
        examples: &[Example],
        unlabelled: &[&[u8]],
        lesson: Lesson,
    ) -> Result<Self, ClassifyError> {
        let inputs = last_layer_inputs(classifier, examples.iter().map(|example| example.photo))?;
        let device = classifier.device().clone().autodiff();
        let network = classifier.network();
        let kept = match unlabelled {
            [] => None,
            photos => {
                let inputs = last_layer_inputs(classifier, photos.iter().copied())?;
                let start = softmax(network.last_layer().forward(inputs.clone()), 1).autodiff();
                Some((inputs.autodiff(), start))
            }
        };
        let inputs = inputs.autodiff();
        let targets = examples
            .iter()
            .map(|example| example.label.index() as i64)
            .collect::<Vec<_>>();
        let targets = Tensor::from_data(TensorData::new(targets, [examples.len()]), &device);
        let layer = network.last_layer().clone().train().fork(&device);
        let start = (
            layer.weight.val().detach(),
            layer.bias.as_ref().map(|bias| bias.val().detach()),
        );
        Ok(Self {
            lesson,
            layer,
            start,
            optimizer: AdamConfig::new().init(),
            inputs,
            targets,
            kept,
            steps_taken: 0,
        })
    }

    pub fn lesson(&self) -> Lesson {
        self.lesson
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> usize {
        self.steps_taken
    }

    /// Whether the lesson's steps are all taken.
    pub fn is_done(&self) -> bool {
        self.steps_taken >= self.lesson.steps
    }

    /// One optimiser step. Returns the labelled photos' mean cross-entropy before it (the
    /// anchor's pull not included): the figure a user watches fall.
    pub async fn step(&mut self) -> Result<f32, ClassifyError> {
        let loss = self.cross_entropy();
        let penalty = self.anchor_penalty() + self.forgetting();
        let gradients =
            GradientsParams::from_grads((loss.clone() + penalty).backward(), &self.layer);
        self.layer = self
            .optimizer
            .step(self.lesson.learning_rate, self.layer.clone(), gradients);
        self.steps_taken += 1;
        scalar(loss).await
    }

    /// The labelled photos' mean cross-entropy with the layer as it is now.
    pub async fn loss(&self) -> Result<f32, ClassifyError> {
        scalar(self.cross_entropy()).await
    }

    fn cross_entropy(&self) -> Tensor<1> {
        CrossEntropyLossConfig::new()
            .init(&self.inputs.device())
            .forward(
                self.layer.forward(self.inputs.clone()),
                self.targets.clone(),
            )
    }

    /// `keep` times the unlabelled photos' mean KL divergence from their starting verdicts.
    fn forgetting(&self) -> Tensor<1> {
        let Some((inputs, start)) = &self.kept else {
            return Tensor::zeros([1], &self.inputs.device());
        };
        let photos = inputs.dims()[0] as f64;
        let now = log_softmax(self.layer.forward(inputs.clone()), 1);
        let divergence = (start.clone() * (start.clone().clamp_min(1e-12).log() - now)).sum();
        divergence * (self.lesson.keep / photos)
    }

    fn anchor_penalty(&self) -> Tensor<1> {
        let squared = |now: Tensor<2>, start: Tensor<2>| (now - start).square().sum();
        let (weight, bias) = &self.start;
        let mut sum = squared(self.layer.weight.val(), weight.clone());
        if let (Some(now), Some(start)) = (&self.layer.bias, bias) {
            sum = sum + squared(now.val().unsqueeze_dim(0), start.clone().unsqueeze_dim(0));
        }
        sum * self.lesson.anchor
    }

    /// `file` (the weight file the classifier was loaded from) with the learned last layer:
    /// stored the same way (f32, f16 or int8), with the lesson noted in its training summary,
    /// so the trainer and the page load it like any other.
    pub async fn improved_file(
        &self,
        file: &ModelFile,
        photos: &[Example<'_>],
    ) -> Result<ModelFile, ImproveError> {
        // Read back asynchronously (the only way on WebGPU in a browser) and rebuilt on the
        // CPU, where the file's network is loaded unfolded for storing.
        let weight = read(self.layer.weight.val()).await?;
        let bias = match &self.layer.bias {
            Some(bias) => Some(read(bias.val()).await?),
            None => None,
        };
        let cpu = Device::flex();
        let network = file.load_network(&cpu)?;
        let mut layer = network.last_layer().clone();
        layer.weight = Param::from_tensor(Tensor::from_data(weight, &cpu));
        layer.bias = bias.map(|bias| Param::from_tensor(Tensor::from_data(bias, &cpu)));
        let mut header = file.header.clone();
        let training = header.training.get_or_insert_with(Default::default);
        let cats = photos.iter().filter(|e| e.label == Label::Cat).count();
        let note = format!(
            "Last layer fine-tuned on {} labelled photos ({cats} cats, {} dogs): {} Adam steps, \
             learning rate {}, anchor {}.",
            photos.len(),
            photos.len() - cats,
            self.steps_taken,
            self.lesson.learning_rate,
            self.lesson.anchor,
        );
        training.notes = if training.notes.is_empty() {
            note
        } else {
            format!("{} {note}", training.notes)
        };
        Ok(ModelFile::from_network(
            header,
            &network.with_last_layer(layer),
        )?)
    }
}

/// Why an improved weight file could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImproveError {
    #[error(transparent)]
    Classify(#[from] ClassifyError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
}

/// The photos' inputs to the classifier's last layer, `[photos, inputs]`, without autodiff
/// (nothing before the last layer learns).
fn last_layer_inputs<'a>(
    classifier: &Classifier,
    photos: impl Iterator<Item = &'a [u8]>,
) -> Result<Tensor<2>, ClassifyError> {
    let inputs = photos
        .map(|photo| classifier.input(photo))
        .collect::<Result<Vec<InputTensor>, _>>()?;
    // In batches: an EfficientNet pass over dozens of photos at once needs hundreds of MB.
    let batches = inputs
        .chunks(8)
        .map(|batch| classifier.last_layer_inputs(classifier.images(batch)))
        .collect();
    Ok(Tensor::cat(batches, 0))
}

async fn scalar(tensor: Tensor<1>) -> Result<f32, ClassifyError> {
    Ok(floats(read(tensor).await?)?[0])
}

//! Load a weight file and classify photos: the prediction API the trainer and the page share.

use burn::tensor::{Device, Tensor, TensorData};

use crate::network::Network;
use crate::preprocess::{DecodeError, InputTensor};
use crate::weights::{ModelFile, ModelHeader, WeightsError};

/// Cat or dog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Cat,
    Dog,
}

impl Label {
    pub fn name(self) -> &'static str {
        match self {
            Label::Cat => "cat",
            Label::Dog => "dog",
        }
    }

    /// The class index in the logits and in training labels: cat = 0, dog = 1.
    pub fn index(self) -> usize {
        match self {
            Label::Cat => 0,
            Label::Dog => 1,
        }
    }
}

/// The probabilities of one photo, summing to one, and the likelier label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub cat: f32,
    pub dog: f32,
    pub label: Label,
}

impl Prediction {
    /// Below this probability for the likelier label a verdict is "not sure": the shipped
    /// models are calibrated, so at 0.8 about one such verdict in five would be wrong.
    pub const SURE: f32 = 0.8;

    /// The probability of the likelier label.
    pub fn confidence(&self) -> f32 {
        self.cat.max(self.dog)
    }

    /// Whether the verdict is confident enough to state without a "not sure".
    pub fn is_sure(&self) -> bool {
        self.confidence() >= Self::SURE
    }

    /// Softmax over the two logits.
    pub fn from_logits(cat_logit: f32, dog_logit: f32) -> Self {
        let max = cat_logit.max(dog_logit);
        let (cat, dog) = ((cat_logit - max).exp(), (dog_logit - max).exp());
        let (cat, dog) = (cat / (cat + dog), dog / (cat + dog));
        let label = if dog > cat { Label::Dog } else { Label::Cat };
        Self { cat, dog, label }
    }

    fn from_logits_data(data: TensorData) -> Result<Vec<Self>, ClassifyError> {
        let logits = data
            .try_to_vec::<f32>()
            .map_err(|error| ClassifyError::Backend(format!("{error:?}")))?;
        Ok(logits
            .chunks_exact(2)
            .map(|pair| Self::from_logits(pair[0], pair[1]))
            .collect())
    }
}

/// Why a photo could not be classified.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClassifyError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("the backend failed: {0}")]
    Backend(String),
}

/// A loaded model on a device, ready to classify photos.
#[derive(Debug)]
pub struct Classifier {
    network: Network,
    header: ModelHeader,
    device: Device,
}

impl Classifier {
    /// Checks a weight file and loads it onto `device`.
    pub fn load(bytes: &[u8], device: &Device) -> Result<Self, WeightsError> {
        Self::from_file(&ModelFile::parse(bytes)?, device)
    }

    pub fn from_file(file: &ModelFile, device: &Device) -> Result<Self, WeightsError> {
        Ok(Self {
            network: file.load_network(device)?,
            header: file.header.clone(),
            device: device.clone(),
        })
    }

    pub fn header(&self) -> &ModelHeader {
        &self.header
    }

    /// The loaded network, for batch work (evaluation) that manages its own inputs.
    pub fn network(&self) -> &Network {
        &self.network
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Decodes and preprocesses a photo exactly as this model was trained to see it.
    pub fn input(&self, photo: &[u8]) -> Result<InputTensor, DecodeError> {
        self.header.preprocess.apply(photo)
    }

    /// Classifies one photo. Works everywhere, the browser included, where GPU results can
    /// only be read asynchronously.
    pub async fn classify(&self, photo: &[u8]) -> Result<Prediction, ClassifyError> {
        let input = self.input(photo)?;
        let data = self
            .logits(std::slice::from_ref(&input))
            .into_data_async()
            .await
            .map_err(|error| ClassifyError::Backend(format!("{error:?}")))?;
        Ok(Prediction::from_logits_data(data)?[0])
    }

    /// Runs the network once on a blank photo and reads the result back, so that compiling GPU
    /// kernels and allocating buffers is not paid for by the first real photo (on WebGPU that
    /// first run takes seconds).
    pub async fn warm_up(&self) -> Result<(), ClassifyError> {
        let size = self.header.preprocess.input_size;
        let blank = self
            .header
            .preprocess
            .normalize(&image::RgbImage::new(size, size));
        self.logits(&[blank])
            .into_data_async()
            .await
            .map(drop)
            .map_err(|error| ClassifyError::Backend(format!("{error:?}")))
    }

    /// Classifies a batch of preprocessed photos, blocking until the results are read back.
    #[cfg(not(target_family = "wasm"))]
    pub fn classify_inputs(
        &self,
        inputs: &[InputTensor],
    ) -> Result<Vec<Prediction>, ClassifyError> {
        Prediction::from_logits_data(self.logits(inputs).into_data())
    }

    /// The network's logits for a batch of preprocessed photos of this model's input size.
    pub fn logits(&self, inputs: &[InputTensor]) -> Tensor<2> {
        let images = inputs
            .iter()
            .map(|input| {
                Tensor::<4>::from_data(
                    TensorData::new(input.data.clone(), input.batch_shape()),
                    &self.device,
                )
            })
            .collect::<Vec<_>>();
        self.network.forward(Tensor::cat(images, 0))
    }
}

//! Load a weight file and classify photos: the prediction API the trainer and the page share.

use burn::tensor::{Device, Tensor, TensorData};

use crate::explain::Heatmap;
use crate::network::{Explained, Network};
use crate::preprocess::{DecodeError, InputTensor, Preprocess};
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
        Ok(finite_floats(data)?
            .chunks_exact(2)
            .map(|pair| Self::from_logits(pair[0], pair[1]))
            .collect())
    }
}

/// A verdict, the Grad-CAM heatmap of where in the photo it came from and, for a model with
/// the "neither" check, whether the photo shows a pet at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub prediction: Prediction,
    pub heatmap: Heatmap,
    pub pet: Option<PetCheck>,
}

/// The "neither cat nor dog" check of one photo ([`PetFilter`](crate::network::PetFilter)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PetCheck {
    /// ImageNet's probability of the pet classes.
    pub probability: f32,
    /// The least probability a photo of a cat or a dog gets, as the model file says.
    pub threshold: f32,
}

impl PetCheck {
    pub fn is_pet(&self) -> bool {
        self.probability >= self.threshold
    }
}

impl Explanation {
    /// Whether the model says the photo is neither a cat nor a dog.
    pub fn is_neither(&self) -> bool {
        self.pet.is_some_and(|pet| !pet.is_pet())
    }

    /// From one photo's logits, dog-minus-cat map (`[1, height, width]`) and pet probability,
    /// read back, with the map laid over `area` of the photo (what the network saw).
    fn from_data(
        logits: TensorData,
        map: TensorData,
        [_, height, width]: [usize; 3],
        pet: Option<(TensorData, f32)>,
        area: [f32; 4],
    ) -> Result<Self, ClassifyError> {
        let prediction = Prediction::from_logits_data(logits)?[0];
        let map = floats(map)?;
        let dog = prediction.label == Label::Dog;
        let pet = match pet {
            Some((probability, threshold)) => Some(PetCheck {
                probability: floats(probability)?[0],
                threshold,
            }),
            None => None,
        };
        Ok(Self {
            prediction,
            heatmap: Heatmap::from_log_odds_map(width, height, &map, dog).over(area),
            pet,
        })
    }
}

/// Why a photo could not be classified.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClassifyError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("the backend failed: {0}")]
    Backend(String),
    /// Weights that hold NaN or infinity are refused as they load
    /// ([`WeightsError::NotFinite`]); finite weights large enough to overflow give this.
    #[error(
        "the model's output is not a number: its weights overflow or hold NaN or infinite values"
    )]
    NotFinite,
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
            network: file.load_network(device)?.fold_batch_norms(),
            header: file.header.clone(),
            device: device.clone(),
        })
    }

    pub fn header(&self) -> &ModelHeader {
        &self.header
    }

    /// The loaded network, for batch work (evaluation) that manages its own inputs. Its
    /// batch-norms are folded for inference, so it cannot be trained or stored: load the
    /// file's network for that ([`ModelFile::load_network`]).
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
        let data = read(self.logits(std::slice::from_ref(&input))).await?;
        Ok(Prediction::from_logits_data(data)?[0])
    }

    /// Classifies one photo and explains the verdict with a Grad-CAM heatmap, in the same
    /// pass through the network (so it costs about what [`classify`](Self::classify) does).
    pub async fn explain(&self, photo: &[u8]) -> Result<Explanation, ClassifyError> {
        let (Explained { logits, maps, pets }, area) = self.explained_tensors(photo)?;
        let shape = maps.dims();
        let pet = match (pets, self.pet_threshold()) {
            (Some(pets), Some(threshold)) => Some((read(pets).await?, threshold)),
            _ => None,
        };
        Explanation::from_data(read(logits).await?, read(maps).await?, shape, pet, area)
    }

    /// [`explain`](Self::explain), blocking until the results are read back.
    #[cfg(not(target_family = "wasm"))]
    pub fn explain_blocking(&self, photo: &[u8]) -> Result<Explanation, ClassifyError> {
        let (Explained { logits, maps, pets }, area) = self.explained_tensors(photo)?;
        let shape = maps.dims();
        let pet = pets
            .zip(self.pet_threshold())
            .map(|(pets, threshold)| (pets.into_data(), threshold));
        Explanation::from_data(logits.into_data(), maps.into_data(), shape, pet, area)
    }

    /// The "neither" threshold, for a model that has the check.
    fn pet_threshold(&self) -> Option<f32> {
        let (_, head) = self.header.architecture.backbone()?;
        head.pet_filter.map(|filter| filter.threshold)
    }

    /// What [`explain`](Self::explain) computes for a photo, and where in it the network
    /// looked ([`Preprocess::seen_area`]).
    fn explained_tensors(&self, photo: &[u8]) -> Result<(Explained, [f32; 4]), ClassifyError> {
        let preprocess = &self.header.preprocess;
        let decoded = crate::preprocess::decode_photo(photo)?;
        let area = preprocess.seen_area(decoded.width(), decoded.height());
        let input = preprocess.tensor_from_rgb(&decoded);
        Ok((self.explained_inputs(&[input]), area))
    }

    /// What [`explain`](Self::explain) computes, for preprocessed photos.
    fn explained_inputs(&self, inputs: &[InputTensor]) -> Explained {
        let Explained { logits, maps, pets } = self
            .network
            .forward_explained(self.views(self.images(inputs)));
        // The verdict from both views; the heatmap and the pet check from the photo as it is.
        Explained {
            logits: self.average_views(logits),
            maps: maps.narrow(0, 0, 1),
            pets: pets.map(|pets| pets.narrow(0, 0, 1)),
        }
    }

    /// Runs the network once on a blank photo, the way [`explain`](Self::explain) runs it, and
    /// reads the results back, so that compiling GPU kernels and allocating buffers is not
    /// paid for by the first real photo (on WebGPU that first run takes seconds). Refuses what
    /// [`check_outputs`](Self::check_outputs) refuses.
    pub async fn warm_up(&self) -> Result<(), ClassifyError> {
        self.run_blank(self.header.preprocess.input_size).await
    }

    /// Runs the network once on a small blank photo (the smallest input the network takes: 32
    /// px for the EfficientNets, a fiftieth of the accurate model's work) and refuses a model
    /// whose verdict or "neither" check comes out NaN or infinite: finite weights that
    /// overflow (NaN and infinity in the weights are refused as they load). What the page
    /// runs at load on the CPU, where there are no kernels to warm up.
    pub async fn check_outputs(&self) -> Result<(), ClassifyError> {
        let input_size = self.header.preprocess.input_size;
        self.run_blank(self.header.architecture.smallest_input().min(input_size))
            .await
    }

    /// Runs the network on a blank photo of `size` pixels as [`explain`](Self::explain) does
    /// and checks that what it gives is finite.
    async fn run_blank(&self, size: u32) -> Result<(), ClassifyError> {
        let preprocess = Preprocess {
            input_size: size,
            ..self.header.preprocess
        };
        let blank = preprocess.normalize(&image::RgbImage::new(size, size));
        let Explained { logits, maps, pets } = self.explained_inputs(&[blank]);
        finite_floats(read(logits).await?)?;
        read(maps).await?;
        // The "neither" check's classifier can hold NaN too; it would turn every photo away.
        if let Some(pets) = pets {
            finite_floats(read(pets).await?)?;
        }
        Ok(())
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
        self.batch_logits(self.images(inputs))
    }

    /// The logits for a `[batch, 3, size, size]` tensor of normalised photos, as the model
    /// file says to compute them (averaged with the mirror images where it says so).
    pub fn batch_logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.average_views(self.network.forward(self.views(images)))
    }

    /// The input of the last dense layer for each photo, `[batch, inputs]`, the way
    /// [`batch_logits`](Self::batch_logits) reaches it: the last layer is linear, so averaging
    /// its inputs over the two views averages the logits.
    pub(crate) fn last_layer_inputs(&self, images: Tensor<4>) -> Tensor<2> {
        self.average_views(self.network.last_layer_inputs(self.views(images)))
    }

    /// The photos, followed by their mirror images when the model averages over both.
    fn views(&self, images: Tensor<4>) -> Tensor<4> {
        if self.header.average_mirror {
            Tensor::cat(vec![images.clone(), images.flip([3])], 0)
        } else {
            images
        }
    }

    /// `[2n, k]` values of [`views`](Self::views) back to `[n, k]`: each photo's mean over its
    /// two views.
    fn average_views(&self, values: Tensor<2>) -> Tensor<2> {
        if !self.header.average_mirror {
            return values;
        }
        let n = values.dims()[0] / 2;
        (values.clone().narrow(0, 0, n) + values.narrow(0, n, n)).div_scalar(2.0)
    }

    /// A batch of preprocessed photos as one tensor on this classifier's device.
    pub(crate) fn images(&self, inputs: &[InputTensor]) -> Tensor<4> {
        let images = inputs
            .iter()
            .map(|input| {
                Tensor::<4>::from_data(
                    TensorData::new(input.data.clone(), input.batch_shape()),
                    &self.device,
                )
            })
            .collect::<Vec<_>>();
        Tensor::cat(images, 0)
    }
}

/// A read-back tensor's values.
pub(crate) fn floats(data: TensorData) -> Result<Vec<f32>, ClassifyError> {
    data.try_to_vec::<f32>()
        .map_err(|error| ClassifyError::Backend(format!("{error:?}")))
}

/// A read-back tensor's values, refusing NaN and infinity: what weights holding them give.
fn finite_floats(data: TensorData) -> Result<Vec<f32>, ClassifyError> {
    let values = floats(data)?;
    if values.iter().any(|value| !value.is_finite()) {
        return Err(ClassifyError::NotFinite);
    }
    Ok(values)
}

/// Runs one of this crate's futures (classifying, explaining, warming up, teaching) to the end
/// where reading back is immediate: the CPU backends, natively, for code without an async
/// executor (tests, tools). Panics on a future that would wait, such as a GPU readback.
#[cfg(not(target_family = "wasm"))]
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(future).poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("a CPU readback should be immediate"),
    }
}

/// Reads a tensor back the way that works on every backend, the browser's WebGPU included.
pub(crate) async fn read<const D: usize>(tensor: Tensor<D>) -> Result<TensorData, ClassifyError> {
    tensor
        .into_data_async()
        .await
        .map_err(|error| ClassifyError::Backend(format!("{error:?}")))
}

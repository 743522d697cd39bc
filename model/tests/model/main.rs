//! The model crate's native tests, in one binary (each test binary links all of Burn). The
//! browser side is tested in `web/tests`.
#![cfg(not(target_family = "wasm"))]

mod backends;
mod explain;
mod fold;
mod learn;
mod preprocess;
mod weights;

use catdog_model::{
    Architecture, Classifier, CnnConfig, ModelFile, ModelHeader, Normalization, Preprocess,
};

pub use catdog_model::block_on;

/// A fixture photo from the workspace's `tests/fixtures`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// A model the page ships (`www/model/`), whose batch-norms hold real trained statistics.
pub fn shipped(name: &str) -> ModelFile {
    let path = format!("{}/../www/model/{name}", env!("CARGO_MANIFEST_DIR"));
    ModelFile::parse(&std::fs::read(&path).unwrap()).unwrap()
}

/// The logits a classifier gives for fixture photos, in order, two per photo.
pub fn fixture_logits(classifier: &Classifier, photos: &[&str]) -> Vec<f32> {
    let inputs: Vec<_> = photos
        .iter()
        .map(|name| classifier.input(&fixture(name)).unwrap())
        .collect();
    classifier
        .logits(&inputs)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

/// The logits a network (not a classifier: no batch-norm folding) gives for fixture photos,
/// preprocessed as `file` says, two per photo.
pub fn network_logits(
    network: &catdog_model::Network,
    file: &ModelFile,
    photos: &[&str],
    device: &burn::tensor::Device,
) -> Vec<f32> {
    let images = photos
        .iter()
        .map(|name| {
            let input = file.header.preprocess.apply(&fixture(name)).unwrap();
            let shape = input.batch_shape();
            burn::tensor::Tensor::<4>::from_data(
                burn::tensor::TensorData::new(input.data, shape),
                device,
            )
        })
        .collect();
    network
        .forward(burn::tensor::Tensor::cat(images, 0))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

/// A small freshly initialised model, as a weight file.
/// The 64 px CNN that was the shipped small model until a Lite0 ending after stage 6 replaced
/// it: real trained weights in a file from before the preprocessing fields, and a CNN.
pub fn small_cnn() -> ModelFile {
    ModelFile::parse(&fixture("small-cnn.bpk")).unwrap()
}

pub fn small_model(device: &burn::tensor::Device) -> ModelFile {
    let architecture = Architecture::Cnn(CnnConfig {
        channels: vec![8, 16, 16],
        dropout: 0.2,
    });
    let preprocess = Preprocess::squash(64, Normalization::IMAGENET);
    let network = architecture.init(device);
    ModelFile::from_network(ModelHeader::new(architecture, preprocess), &network).unwrap()
}

//! The training loop: the from-scratch CNN on real photos, exported as the web weight file.

use std::path::PathBuf;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use catdog_model::weights::TrainingSummary;
use catdog_model::{
    Architecture, Backend, Classifier, CnnConfig, ModelFile, ModelHeader, Network, Normalization,
    Preprocess,
};
use rand::{Rng, SeedableRng};

use crate::dataset::{Dataset, Example, progress_bar};
use crate::files::write_atomic;

/// Everything a training run needs.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// A Kaggle-layout folder of `cat.N.jpg` / `dog.N.jpg` photos.
    pub data: PathBuf,
    /// Where the weight file goes.
    pub out: PathBuf,
    pub cnn: CnnConfig,
    pub input_size: u32,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Use at most this many photos (half of each class).
    pub limit: Option<usize>,
    pub validation_fraction: f64,
    pub seed: u64,
    pub backend: Backend,
}

/// What a finished run measured.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub summary: TrainingSummary,
    pub skipped: usize,
    pub file_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Backend(#[from] catdog_model::BackendError),
    #[error("{0}")]
    Weights(#[from] catdog_model::WeightsError),
    #[error("no usable photos in {0}")]
    NoPhotos(PathBuf),
}

pub fn run(config: &TrainConfig) -> Result<TrainReport, TrainError> {
    let preprocess = Preprocess {
        input_size: config.input_size,
        normalization: Normalization::IMAGENET,
    };
    let io_error = |path: &PathBuf| {
        let path = path.clone();
        move |source| TrainError::Io { path, source }
    };
    let dataset = Dataset::load(
        &config.data,
        &preprocess,
        config.limit,
        config.validation_fraction,
        config.seed,
    )
    .map_err(io_error(&config.data))?;
    for skipped in &dataset.skipped {
        eprintln!("skipped {}: {}", skipped.path.display(), skipped.reason);
    }
    if dataset.train.is_empty() {
        return Err(TrainError::NoPhotos(config.data.clone()));
    }

    let base = config.backend.device()?;
    let device = base.clone().autodiff();
    let architecture = Architecture::Cnn(config.cnn.clone());
    let mut network = architecture.init(&device);
    let mut optimizer = AdamConfig::new().init();
    let loss = CrossEntropyLossConfig::new().init(&device);
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..dataset.train.len()).collect();
    let mut validation_accuracy = None;

    for epoch in 1..=config.epochs {
        use rand::seq::SliceRandom;
        order.shuffle(&mut rng);
        let progress = progress_bar(
            dataset.train.len() as u64,
            &format!("epoch {epoch}/{}", config.epochs),
        );
        for batch in order.chunks(config.batch_size) {
            let examples: Vec<&Example> = batch.iter().map(|&i| &dataset.train[i]).collect();
            let flips: Vec<bool> = examples.iter().map(|_| rng.random_bool(0.5)).collect();
            let (images, targets) = batch_tensors(&examples, &flips, &device);
            let batch_loss = loss.forward(network.forward(images), targets);
            progress.set_prefix(format!(
                "loss {:.3}",
                batch_loss.clone().into_scalar::<f32>()
            ));
            let gradients = GradientsParams::from_grads(batch_loss.backward(), &network);
            network = optimizer.step(config.learning_rate, network, gradients);
            progress.inc(batch.len() as u64);
        }
        progress.finish();
        if !dataset.validation.is_empty() {
            let accuracy = evaluate(&network.valid(), &dataset.validation, &base);
            println!(
                "epoch {epoch}: validation accuracy {:.2}%",
                accuracy * 100.0
            );
            validation_accuracy = Some(accuracy);
        }
    }

    let mut header = ModelHeader::new(architecture, preprocess);
    let summary = TrainingSummary {
        dataset: config.data.display().to_string(),
        epochs: config.epochs,
        train_images: dataset.train.len(),
        validation_images: dataset.validation.len(),
        validation_accuracy,
        notes: format!(
            "seeded ({}) stratified {:.0}% validation split of the photos used; backend {}; \
             horizontal-flip augmentation; Adam lr {}",
            config.seed,
            config.validation_fraction * 100.0,
            config.backend,
            config.learning_rate
        ),
    };
    header.training = Some(summary.clone());
    let bytes = ModelFile::from_network(header, &network.valid())?.to_bytes();
    // Read the file back as the page will, so an export that cannot be loaded never lands.
    Classifier::load(&bytes, &base)?;
    write_atomic(&config.out, &bytes).map_err(io_error(&config.out))?;
    Ok(TrainReport {
        summary,
        skipped: dataset.skipped.len(),
        file_bytes: bytes.len(),
    })
}

/// Stacks examples into an image batch (optionally mirrored left-right) and label targets.
fn batch_tensors(
    examples: &[&Example],
    flips: &[bool],
    device: &Device,
) -> (Tensor<4>, Tensor<1, Int>) {
    let size = examples[0].input.size as usize;
    let mut data = Vec::with_capacity(examples.len() * 3 * size * size);
    for (example, &flip) in examples.iter().zip(flips) {
        if flip {
            for row in example.input.data.chunks_exact(size) {
                data.extend(row.iter().rev());
            }
        } else {
            data.extend_from_slice(&example.input.data);
        }
    }
    let labels: Vec<i64> = examples.iter().map(|e| e.label.index() as i64).collect();
    let images = Tensor::from_data(
        TensorData::new(data, [examples.len(), 3, size, size]),
        device,
    );
    let targets = Tensor::from_data(TensorData::new(labels, [examples.len()]), device);
    (images, targets)
}

/// Accuracy of `network` on `examples`.
pub fn evaluate(network: &Network, examples: &[Example], device: &Device) -> f64 {
    let mut correct = 0;
    for chunk in examples.chunks(64) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let flips = vec![false; refs.len()];
        let (images, _) = batch_tensors(&refs, &flips, device);
        let predicted = network
            .forward(images)
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .expect("argmax gives integers");
        correct += predicted
            .iter()
            .zip(chunk)
            .filter(|(p, e)| **p == e.label.index() as i64)
            .count();
    }
    correct as f64 / examples.len() as f64
}

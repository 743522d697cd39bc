//! `bench`: how fast photos are decoded and preprocessed, and how fast each backend trains,
//! printed as a table. A benchmark, not a test: the numbers depend on the machine.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use catdog_model::{Architecture, Backend, CnnConfig, Normalization, Preprocess};
use rand::SeedableRng;

use crate::augment::Augment;
use crate::dataset::{DatasetError, PackedPhotos};
use crate::photos::PhotoSet;
use crate::setup;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub data: PathBuf,
    /// How many photos to decode (the first of the sorted listing, both classes).
    pub photos: usize,
    pub input_size: u32,
    pub cnn: CnnConfig,
    pub batch_size: usize,
    /// Timed training steps per backend, after two untimed warm-up steps.
    pub steps: usize,
    pub backends: Vec<Backend>,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    pub what: String,
    pub images: usize,
    pub seconds: f64,
}

impl BenchRow {
    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.seconds.max(1e-9)
    }
}

/// Runs the benchmark; a backend that cannot start gets a row saying why instead.
pub fn run(config: &BenchConfig) -> Result<(Vec<BenchRow>, Vec<String>), DatasetError> {
    let mut set = PhotoSet::open_labelled(&config.data)?;
    // Both classes: every n-th photo of the sorted listing (cats come first).
    let step = (set.photos.len() / config.photos.max(1)).max(1);
    set.photos = set
        .photos
        .into_iter()
        .step_by(step)
        .take(config.photos)
        .collect();
    let preprocess = Preprocess::squash(config.input_size, Normalization::IMAGENET);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let packed = PackedPhotos::load(&set, &preprocess, None)?;
    let mut rows = vec![BenchRow {
        what: format!(
            "decode + preprocess, {threads} threads, {} px",
            config.input_size
        ),
        images: packed.len(),
        seconds: started.elapsed().as_secs_f64(),
    }];
    let mut failures = Vec::new();
    for &backend in &config.backends {
        match backend.device() {
            Ok(device) => rows.push(train_row(config, &packed, backend, device)),
            Err(error) => failures.push(error.to_string()),
        }
    }
    Ok((rows, failures))
}

fn train_row(
    config: &BenchConfig,
    packed: &PackedPhotos,
    backend: Backend,
    device: burn::tensor::Device,
) -> BenchRow {
    let device = device.autodiff();
    let mut network = Architecture::Cnn(config.cnn.clone()).init(&device);
    let mut optimizer = AdamConfig::new().init();
    let loss = CrossEntropyLossConfig::new().init(&device);
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut step = |network: catdog_model::Network| {
        let indices: Vec<usize> = (0..config.batch_size).map(|i| i % packed.len()).collect();
        let (images, targets, _) = setup::training_batch(
            packed,
            &indices,
            &Augment::default(),
            &Normalization::IMAGENET,
            &mut rng,
            &device,
        );
        let batch_loss = loss.forward(network.forward(images), targets);
        let value = batch_loss.clone();
        let gradients = GradientsParams::from_grads(batch_loss.backward(), &network);
        let network = optimizer.step(1e-3, network, gradients);
        // Reading a value waits for the device to finish what was queued before it, so the
        // timing covers the step's work on a GPU too.
        let _ = value.into_scalar::<f32>();
        network
    };
    for _ in 0..2 {
        network = step(network);
    }
    let started = Instant::now();
    for _ in 0..config.steps {
        network = step(network);
    }
    let seconds = started.elapsed().as_secs_f64();
    BenchRow {
        what: format!(
            "train on {backend}, batch {}, {} px, channels {:?}",
            config.batch_size, config.input_size, config.cnn.channels
        ),
        images: config.steps * config.batch_size,
        seconds,
    }
}

/// Writes the rows as JSON, with their rates (`bench --json`; `scripts/bench-peers` reads it).
pub fn write_json(path: &Path, rows: &[BenchRow]) -> Result<(), String> {
    let json: serde_json::Value = rows
        .iter()
        .map(|row| {
            serde_json::json!({
                "what": row.what,
                "images": row.images,
                "seconds": row.seconds,
                "images_per_second": row.images_per_second(),
            })
        })
        .collect();
    let text = serde_json::to_string_pretty(&json).map_err(|error| error.to_string())?;
    crate::files::write_atomic(path, text.as_bytes())
        .map_err(|error| format!("{}: {error}", path.display()))
}

/// The table as printed.
pub fn table(rows: &[BenchRow]) -> String {
    let mut out = format!(
        "{:<60} {:>8} {:>9} {:>10}\n",
        "what", "images", "seconds", "images/s"
    );
    for row in rows {
        out.push_str(&format!(
            "{:<60} {:>8} {:>9.2} {:>10.1}\n",
            row.what,
            row.images,
            row.seconds,
            row.images_per_second()
        ));
    }
    out
}

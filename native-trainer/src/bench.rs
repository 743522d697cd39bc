//! `bench`: how fast photos are decoded and preprocessed, and how fast each backend trains,
//! printed as a table. A benchmark, not a test: the numbers depend on the machine.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use catdog_model::{Architecture, Backend, CnnConfig, Network, Normalization, Preprocess};

use crate::augment::Augment;
use crate::checkpoint::Progress;
use crate::config::{Schedule, TrainConfig, TrainError};
use crate::dataset::{DatasetError, PackedPhotos};
use crate::fit::{Keeper, Start, fit};
use crate::photos::PhotoSet;
use crate::score::Scores;
use crate::setup;
use crate::train::PhotoLesson;

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
            Ok(device) => match train_row(config, &packed, backend, device) {
                Ok(row) => rows.push(row),
                Err(error) => failures.push(format!("training on {backend}: {error}")),
            },
            Err(error) => failures.push(error.to_string()),
        }
    }
    Ok((rows, failures))
}

/// Times the training loop itself ([`fit`]) on the photos, as the CNN trains: two untimed
/// warm-up steps, then `steps` timed ones.
fn train_row(
    config: &BenchConfig,
    packed: &PackedPhotos,
    backend: Backend,
    base: Device,
) -> Result<BenchRow, TrainError> {
    const WARM_UP: usize = 2;
    let device = base.clone().autodiff();
    let cnn = config.cnn.clone();
    // The command line's defaults (Adam, 1e-3), for one epoch over the timed photos.
    let run = TrainConfig {
        epochs: 1,
        batch_size: config.batch_size,
        cnn: cnn.clone(),
        schedule: Schedule::Constant,
        ..TrainConfig::default()
    };
    // Each step's batch: photos of the pack in turn, as many as the steps take.
    let photos: Vec<usize> = (0..(WARM_UP + config.steps) * config.batch_size)
        .map(|i| i % packed.len())
        .collect();
    let augment = Augment::default();
    let lesson = PhotoLesson {
        packed,
        augment: &augment,
        normalization: Normalization::IMAGENET,
        validation: &[],
        base,
        device: device.clone(),
        teacher: None,
    };
    let start = Start {
        network: Architecture::Cnn(cnn).init(&device),
        optimizer: setup::optimizer(&run),
        progress: Default::default(),
    };
    let mut clock = StepClock {
        after_warm_up: WARM_UP,
        last: WARM_UP + config.steps,
        started: None,
        seconds: 0.0,
    };
    fit(&run, &lesson, &photos, start, &mut clock)?;
    Ok(BenchRow {
        what: format!(
            "train on {backend}, batch {}, {} px, channels {:?}",
            config.batch_size, config.input_size, config.cnn.channels
        ),
        images: config.steps * config.batch_size,
        seconds: clock.seconds,
    })
}

/// Times the steps after the warm-up up to the last one (not the epoch's end); keeps nothing.
struct StepClock {
    after_warm_up: usize,
    last: usize,
    started: Option<Instant>,
    seconds: f64,
}

impl Keeper<Network> for StepClock {
    fn best(&mut self, _: &Progress, _: Network, _: Option<Scores>) -> Result<(), TrainError> {
        Ok(())
    }

    fn step_done(&mut self, progress: &Progress) {
        if progress.step == self.after_warm_up {
            self.started = Some(Instant::now());
        }
        if progress.step == self.last
            && let Some(started) = self.started
        {
            self.seconds = started.elapsed().as_secs_f64();
        }
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

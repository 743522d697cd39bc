//! The training loop: the from-scratch CNN on real photos, resumable, logged and exported.
//!
//! A run lives in its own folder (`--run`):
//!
//! | file | what |
//! |---|---|
//! | `config.json` | the run's whole configuration; `--resume` reads it back |
//! | `checkpoint.ckpt` | network, optimiser state and progress, rewritten atomically every few minutes and after each epoch |
//! | `log.csv`, `log.json`, `curves.png` | per-epoch train/validation loss and accuracy |
//! | `best.bpk` | the best network so far (by validation accuracy), a full-precision model file |
//! | `skipped.tsv`, `duplicates.tsv` | photos that could not be used, and validation photos dropped as near-copies of training ones |
//! | `summary.json` | the final figures |
//!
//! The order of each epoch and the augmentation of each batch are derived from the seed, the
//! epoch and the batch number, so a resumed run continues exactly where the killed one was.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Int, Tensor, TensorData};
use catdog_model::efficientnet::Variant;
use catdog_model::weights::{TrainingSummary, WeightsDtype};
use catdog_model::{
    Architecture, Backend, CnnConfig, Geometry, HeadConfig, Label, ModelFile, ModelHeader, Network,
    Normalization, Preprocess, Resample,
};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::augment::Augment;
use crate::dataset::{DatasetError, PackedPhotos, Split, SplitSpec, progress_bar};
use crate::distill::{Distill, DistillError, Teacher};
use crate::export;
use crate::files::write_atomic;
use crate::photos::PhotoSet;
use crate::runlog::{EpochRecord, RunLog};
use crate::transfer::{self, TransferFigures};

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    #[value(name = "adamw")]
    AdamW,
    /// SGD with Nesterov momentum 0.9.
    Sgd,
}

/// How the learning rate changes over the run (after any warm-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    /// Cosine decay to zero at the last step.
    Cosine,
    /// Divided by ten at 50% and again at 75% of the run.
    Step,
}

/// What the network starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Backbone {
    /// The CNN, trained from random weights.
    #[default]
    Scratch,
    /// ImageNet-pretrained EfficientNet-Lite0 with a cat/dog head (transfer learning).
    #[value(name = "efficientnet-lite0")]
    EfficientnetLite0,
    /// ImageNet-pretrained EfficientNet-Lite1 (deeper, 240 px) with a cat/dog head.
    #[value(name = "efficientnet-lite1")]
    EfficientnetLite1,
}

impl Backbone {
    /// The pretrained network; `None` for the CNN from scratch.
    pub fn variant(self) -> Option<Variant> {
        match self {
            Backbone::Scratch => None,
            Backbone::EfficientnetLite0 => Some(Variant::Lite0),
            Backbone::EfficientnetLite1 => Some(Variant::Lite1),
        }
    }

    /// How photos become this network's input unless a run says otherwise: the CNN squashes
    /// the whole photo at `input_size` with the ImageNet statistics; a pretrained backbone
    /// gets what its weights were trained with ([`Variant::preprocess`]).
    pub fn default_preprocess(self, input_size: Option<u32>) -> Preprocess {
        match self.variant() {
            None => Preprocess::squash(input_size.unwrap_or(64), Normalization::IMAGENET),
            Some(variant) => Preprocess {
                input_size: input_size.unwrap_or(variant.input_size()),
                ..variant.preprocess()
            },
        }
    }
}

/// `--unfreeze all` as a run's config stores it: any number above the tail's one block means
/// every layer (16, Lite0's block count, since runs first stored it).
pub const UNFREEZE_ALL: usize = 16;

fn imagenet() -> Normalization {
    Normalization::IMAGENET
}

/// Everything a training run needs; saved as the run's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// A folder or zip of photos in any supported layout.
    pub data: PathBuf,
    /// The run's folder: config, checkpoint, logs, best model.
    pub run: PathBuf,
    /// Where the web weight file goes at the end, if anywhere.
    pub out: Option<PathBuf>,
    pub cnn: CnnConfig,
    pub input_size: u32,
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub schedule: Schedule,
    pub warmup_epochs: usize,
    /// Stop after this many epochs without a better validation accuracy.
    pub early_stopping: Option<usize>,
    /// Use at most this many photos (half of each class).
    pub limit: Option<usize>,
    pub validation_fraction: f64,
    pub seed: u64,
    /// `None`: the GPU when there is a real one, else the default CPU backend.
    pub backend: Option<Backend>,
    pub augment: Augment,
    /// Where packed photo caches live; `None` decodes every run.
    pub cache: Option<PathBuf>,
    /// Save a checkpoint mid-epoch at least this often (and always at each epoch's end).
    pub checkpoint_minutes: f64,
    /// The from-scratch CNN, or transfer learning from a pretrained backbone.
    #[serde(default)]
    pub backbone: Backbone,
    /// The pretrained backbone's weights (transfer learning only).
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// The cat/dog head on the pretrained backbone.
    #[serde(default)]
    pub head: HeadConfig,
    /// Blocks of the backbone trained with the head (0: the backbone stays frozen).
    #[serde(default)]
    pub unfreeze: usize,
    /// Fraction of each class held out as a test split that no decision sees.
    #[serde(default)]
    pub test_fraction: f64,
    /// How `out` stores the weights.
    #[serde(default = "default_out_precision")]
    pub out_precision: WeightsDtype,
    /// The input's normalisation, resampling and crop (with `input_size`, the whole
    /// [`Preprocess`]). Runs from before these were stored used ImageNet statistics, bilinear
    /// and the whole photo squashed, which is what a `config.json` without them means.
    #[serde(default = "imagenet")]
    pub normalization: Normalization,
    #[serde(default)]
    pub resample: Resample,
    #[serde(default)]
    pub geometry: Geometry,
    /// A teacher model whose probabilities the network learns from as well as the labels
    /// (the CNN, or `--unfreeze all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<Distill>,
}

fn default_out_precision() -> WeightsDtype {
    WeightsDtype::F16
}

impl TrainConfig {
    pub fn preprocess(&self) -> Preprocess {
        Preprocess {
            input_size: self.input_size,
            normalization: self.normalization,
            resample: self.resample,
            geometry: self.geometry,
        }
    }

    /// Sets the input size and the whole preprocessing at once.
    pub fn set_preprocess(&mut self, preprocess: Preprocess) {
        self.input_size = preprocess.input_size;
        self.normalization = preprocess.normalization;
        self.resample = preprocess.resample;
        self.geometry = preprocess.geometry;
    }

    pub fn architecture(&self) -> Architecture {
        match self.backbone.variant() {
            None => Architecture::Cnn(self.cnn.clone()),
            Some(variant) => Architecture::efficientnet(variant, self.head.clone()),
        }
    }

    /// Whether every layer trains (`--unfreeze all`): the photos go through the whole network
    /// with augmentation each step, as the CNN's do, instead of through cached trunk outputs.
    pub fn fine_tunes_everything(&self) -> bool {
        self.backbone != Backbone::Scratch
            && self.unfreeze > catdog_model::efficientnet::TAIL_BLOCKS
    }

    pub fn split_spec(&self) -> SplitSpec {
        SplitSpec {
            validation_fraction: self.validation_fraction,
            test_fraction: self.test_fraction,
            limit: self.limit,
            seed: self.seed,
        }
    }
}

/// What a finished run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    pub summary: TrainingSummary,
    pub epochs_run: usize,
    pub stopped_early: bool,
    pub skipped: usize,
    pub duplicates_removed: usize,
    pub backend: Backend,
    pub seconds: f64,
    pub best_model: PathBuf,
    /// The web weight file and its size, when one was written.
    pub exported: Option<(PathBuf, usize)>,
    /// Calibration and test figures of a transfer-learning run.
    #[serde(default)]
    pub transfer: Option<TransferFigures>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{0}")]
    Backend(#[from] catdog_model::BackendError),
    #[error("{0}")]
    Weights(#[from] catdog_model::WeightsError),
    #[error("{0}")]
    Export(#[from] export::ExportError),
    #[error("{0}")]
    Pretrained(String),
    #[error("{0}: no validation photos: a transfer run needs them to pick its epoch and calibrate")]
    NoValidation(PathBuf),
    #[error("no usable training photos in {0}")]
    NoPhotos(PathBuf),
    #[error(
        "{0} already holds a training run; pass --resume to continue it, or choose another --run"
    )]
    RunExists(PathBuf),
    #[error(transparent)]
    Teacher(#[from] DistillError),
    #[error("{path}: cannot resume: {reason}")]
    BadCheckpoint { path: PathBuf, reason: String },
    #[error("these settings would make a model that no page or trainer loads: {0}")]
    BeyondLimits(catdog_model::WeightsError),
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + use<> {
    let path = path.to_path_buf();
    move |source| TrainError::Io { path, source }
}

/// Where a run stands: saved in the checkpoint with the network and optimiser.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    /// The epoch in progress (1-based).
    epoch: usize,
    /// Batches of that epoch already done.
    batch: usize,
    /// Optimiser steps so far, for the learning-rate schedule.
    step: usize,
    /// This epoch's running totals.
    loss_sum: f64,
    correct: usize,
    seen: usize,
    history: Vec<EpochRecord>,
    best_accuracy: Option<f64>,
    epochs_without_improvement: usize,
    stopped_early: bool,
    seconds: f64,
}

const CHECKPOINT_MAGIC: &[u8; 8] = b"CATDOGCK";

/// The photos of a run, packed and split.
pub struct RunData {
    pub packed: PackedPhotos,
    pub split: Split,
}

/// Starts a new run (refusing a folder that already holds one).
pub fn train(config: &TrainConfig) -> Result<TrainReport, TrainError> {
    if config.run.join("checkpoint.ckpt").exists() || config.run.join("config.json").exists() {
        return Err(TrainError::RunExists(config.run.clone()));
    }
    // The limits every model file is held to (`catdog_model::limits`), checked before hours of
    // training rather than when the file is first loaded.
    catdog_model::limits::check(&ModelHeader::new(
        config.architecture(),
        config.preprocess(),
    ))
    .map_err(TrainError::BeyondLimits)?;
    let photo_by_photo = config.backbone == Backbone::Scratch || config.fine_tunes_everything();
    if let Some(distill) = &config.distill {
        if !photo_by_photo {
            return Err(TrainError::Teacher(DistillError::Frozen));
        }
        distill.check()?;
    }
    std::fs::create_dir_all(&config.run).map_err(io_error(&config.run))?;
    let json = serde_json::to_vec_pretty(config).expect("a config always serialises");
    let path = config.run.join("config.json");
    write_atomic(&path, &json).map_err(io_error(&path))?;
    if photo_by_photo {
        run(config, Progress::default(), None)
    } else {
        transfer::run(config)
    }
}

/// Continues the run in `run` from its last checkpoint, with its saved configuration.
pub fn resume(run_dir: &Path) -> Result<TrainReport, TrainError> {
    let path = run_dir.join("config.json");
    let json = std::fs::read(&path).map_err(io_error(&path))?;
    let mut config: TrainConfig =
        serde_json::from_slice(&json).map_err(|error| TrainError::BadCheckpoint {
            path: path.clone(),
            reason: error.to_string(),
        })?;
    // The folder may have moved since; it is where the user says it is now.
    config.run = run_dir.to_path_buf();
    if config.backbone != Backbone::Scratch && !config.fine_tunes_everything() {
        // The expensive part, the frozen trunk's outputs, is cached shard by shard; the head
        // trains again from those in minutes.
        eprintln!(
            "resuming {}: the trunk's outputs come from the cache, the head trains again",
            run_dir.display()
        );
        return transfer::run(&config);
    }
    let checkpoint = run_dir.join("checkpoint.ckpt");
    if !checkpoint.exists() {
        eprintln!(
            "no checkpoint yet in {}: starting from the beginning",
            run_dir.display()
        );
        return run(&config, Progress::default(), None);
    }
    let bytes = std::fs::read(&checkpoint).map_err(io_error(&checkpoint))?;
    let (progress, model, optimizer) =
        parse_checkpoint(&bytes).map_err(|reason| TrainError::BadCheckpoint {
            path: checkpoint.clone(),
            reason,
        })?;
    eprintln!(
        "resuming {} at epoch {}, batch {}",
        run_dir.display(),
        progress.epoch,
        progress.batch
    );
    run(&config, progress, Some((model, optimizer)))
}

/// Picks a run's backend (see [`pick_backend`]) and seeds its random numbers (weight
/// initialisation, dropout masks) with the run's seed, so that the same command trains the
/// same network: unseeded, two runs of one command differed by 0.0014 in validation log loss.
pub fn choose_backend(config: &TrainConfig) -> Result<(Backend, Device), TrainError> {
    let (backend, device) = pick_backend(config.backend)?;
    device.seed(config.seed);
    Ok((backend, device))
}

/// The named backend, or the GPU when there is a real one (a software Vulkan such as lavapipe
/// trains far slower than flex), else the default CPU backend.
fn pick_backend(requested: Option<Backend>) -> Result<(Backend, Device), TrainError> {
    if let Some(backend) = requested {
        return Ok((backend, backend.device()?));
    }
    let cpu = Backend::DEFAULT_CPU;
    match catdog_model::gpu_adapter() {
        Ok(adapter) if !adapter.software => {
            eprintln!("training on the GPU: {} (wgpu)", adapter.name);
            Ok((Backend::Wgpu, Backend::Wgpu.device()?))
        }
        Ok(adapter) => {
            eprintln!(
                "wgpu found only a software adapter ({}); training on {cpu} instead \
                 (--backend wgpu forces it)",
                adapter.name
            );
            Ok((cpu, cpu.device()?))
        }
        Err(error) => {
            eprintln!("{error}; training on {cpu}");
            Ok((cpu, cpu.device()?))
        }
    }
}

pub(crate) fn load_data(config: &TrainConfig) -> Result<RunData, TrainError> {
    let set = PhotoSet::open_labelled(&config.data).map_err(DatasetError::from)?;
    let (cats, dogs) = set.class_counts();
    eprintln!(
        "{}: {} layout, {cats} cats and {dogs} dogs",
        config.data.display(),
        set.layout
    );
    let packed = PackedPhotos::load(&set, &config.preprocess(), config.cache.as_deref())?;
    let report = config.run.join("skipped.tsv");
    packed
        .write_skipped_report(&report)
        .map_err(io_error(&report))?;
    if !packed.skipped.is_empty() {
        eprintln!(
            "skipped {} unusable files; see {}",
            packed.skipped.len(),
            report.display()
        );
    }
    let split = Split::new(&packed, config.split_spec());
    let duplicates = config.run.join("duplicates.tsv");
    let mut lines = String::from("held-out photo (dropped)\tperceptual hash\n");
    for &index in &split.duplicates {
        let entry = &packed.entries[index];
        lines.push_str(&format!("{}\t{:016x}\n", entry.name, entry.hash));
    }
    write_atomic(&duplicates, lines.as_bytes()).map_err(io_error(&duplicates))?;
    eprintln!(
        "split (seed {}): {} training, {} validation, {} test photos; {} held-out photos dropped \
         as near-copies of training photos (see {})",
        config.seed,
        split.train.len(),
        split.validation.len(),
        split.test.len(),
        split.duplicates.len(),
        duplicates.display()
    );
    if split.train.is_empty() {
        return Err(TrainError::NoPhotos(config.data.clone()));
    }
    Ok(RunData { packed, split })
}

pub(crate) fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let decay =
        (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32));
    match config.optimizer {
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).init(),
        OptimizerKind::AdamW => AdamWConfig::new()
            .with_weight_decay(config.weight_decay as f32)
            .init(),
        OptimizerKind::Sgd => SgdConfig::new()
            .with_weight_decay(decay)
            .with_momentum(Some(
                MomentumConfig::new().with_momentum(0.9).with_nesterov(true),
            ))
            .init(),
    }
}

/// The learning rate at optimiser step `step` of `total`.
pub fn learning_rate(config: &TrainConfig, step: usize, total: usize, per_epoch: usize) -> f64 {
    let warmup = config.warmup_epochs * per_epoch;
    if step < warmup {
        return config.learning_rate * (step + 1) as f64 / warmup as f64;
    }
    let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
    config.learning_rate
        * match config.schedule {
            Schedule::Constant => 1.0,
            Schedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            Schedule::Step if progress < 0.5 => 1.0,
            Schedule::Step if progress < 0.75 => 0.1,
            Schedule::Step => 0.01,
        }
}

fn run(
    config: &TrainConfig,
    mut progress: Progress,
    saved: Option<(Vec<u8>, Vec<u8>)>,
) -> Result<TrainReport, TrainError> {
    let data = load_data(config)?;
    let (backend, base) = choose_backend(config)?;
    let device = base.clone().autodiff();
    let architecture = config.architecture();
    let mut network = match config.backbone {
        Backbone::Scratch => architecture.init(&device),
        // A resumed run's weights come from its checkpoint below; a new one starts from
        // ImageNet.
        _ if saved.is_some() => architecture.init(&device),
        _ => transfer::pretrained_network(config, &base, &device)?,
    };
    let mut optimizer = optimizer(config);
    if let Some((model, optim)) = saved {
        let bad = |reason: String| TrainError::BadCheckpoint {
            path: config.run.join("checkpoint.ckpt"),
            reason,
        };
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(model))
            .map_err(|error| bad(error.to_string()))?;
        network = network
            .try_load_weights(record)
            .map_err(|error| bad(error.to_string()))?;
        optimizer = optimizer
            .from_bytes(Bytes::from_bytes_vec(optim))
            .map_err(|error| bad(error.to_string()))?;
    }
    if progress.epoch == 0 {
        progress.epoch = 1;
    }
    let loss = CrossEntropyLossConfig::new().init(&device);
    let teacher = match &config.distill {
        Some(distill) => Some(Teacher::load(
            distill,
            &config.data,
            config.cache.as_deref(),
            &data.packed,
            [
                ("training", &data.split.train),
                ("validation", &data.split.validation),
            ],
            &base,
        )?),
        None => None,
    };
    let normalization = config.preprocess().normalization;
    let per_epoch = data.split.train.len().div_ceil(config.batch_size);
    let total_steps = per_epoch * config.epochs;
    let log = RunLog::new(&config.run);
    let started = Instant::now();
    let seconds_before = progress.seconds;

    while progress.epoch <= config.epochs && !progress.stopped_early {
        let epoch = progress.epoch;
        let epoch_started = Instant::now();
        let (order, bar) = epoch_order(config, &data.split.train, epoch);
        bar.set_position((progress.batch * config.batch_size).min(order.len()) as u64);
        bar.reset_eta();
        let mut last_checkpoint = Instant::now();
        let mut last_note = Instant::now();
        let resumed_at = progress.seen;
        for (batch_index, batch) in order
            .chunks(config.batch_size)
            .enumerate()
            .skip(progress.batch)
        {
            let mut rng =
                rand::rngs::StdRng::seed_from_u64(batch_seed(config.seed, epoch, batch_index));
            let (images, targets, labels) = training_batch(
                &data.packed,
                batch,
                &config.augment,
                &normalization,
                &mut rng,
                &device,
            );
            let logits = network.forward(images);
            let predicted = logits.clone().argmax(1);
            let batch_loss = match &teacher {
                Some(teacher) => teacher.loss(loss.forward(logits.clone(), targets), logits, batch),
                None => loss.forward(logits, targets),
            };
            let loss_value = batch_loss.clone().into_scalar::<f32>() as f64;
            let predicted = predicted
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .expect("argmax gives integers");
            progress.correct += predicted
                .iter()
                .zip(&labels)
                .filter(|(p, l)| p == l)
                .count();
            progress.loss_sum += loss_value * batch.len() as f64;
            progress.seen += batch.len();
            let gradients = GradientsParams::from_grads(batch_loss.backward(), &network);
            let lr = learning_rate(config, progress.step, total_steps, per_epoch);
            network = optimizer.step(lr, network, gradients);
            progress.step += 1;
            progress.batch = batch_index + 1;
            bar.inc(batch.len() as u64);
            bar.set_prefix(format!(
                "loss {:.3} acc {:.1}%",
                progress.loss_sum / progress.seen as f64,
                100.0 * progress.correct as f64 / progress.seen as f64
            ));
            // Where there is no terminal for the bar (a log file, CI), a line every half minute.
            if bar.is_hidden() && last_note.elapsed().as_secs() >= 30 {
                let done = progress.seen - resumed_at;
                let rate = done as f64 / epoch_started.elapsed().as_secs_f64().max(1e-9);
                let left = order.len().saturating_sub(progress.seen);
                eprintln!(
                    "epoch {epoch}/{}: {}/{} photos, {rate:.1} images/s, ETA {:.0} s, loss {:.3}, \
                     accuracy {:.1}%",
                    config.epochs,
                    progress.seen,
                    order.len(),
                    left as f64 / rate.max(1e-9),
                    progress.loss_sum / progress.seen as f64,
                    100.0 * progress.correct as f64 / progress.seen as f64
                );
                last_note = Instant::now();
            }
            let minutes = last_checkpoint.elapsed().as_secs_f64() / 60.0;
            if minutes >= config.checkpoint_minutes && progress.batch < per_epoch {
                progress.seconds = seconds_before + started.elapsed().as_secs_f64();
                save_checkpoint(config, &progress, &network, &optimizer)?;
                note(
                    &bar,
                    format!("checkpoint saved (epoch {epoch}, batch {})", progress.batch),
                );
                last_checkpoint = Instant::now();
            }
        }
        bar.finish_and_clear();

        let (validation_loss, validation_accuracy) = if data.split.validation.is_empty() {
            (None, None)
        } else {
            let valid = network.valid();
            let scores = score(
                |images| valid.forward(images),
                &base,
                &data.packed,
                &data.split.validation,
                &normalization,
            );
            (Some(scores.log_loss), Some(scores.accuracy))
        };
        let seconds = epoch_started.elapsed().as_secs_f64();
        let record = EpochRecord {
            epoch,
            train_loss: progress.loss_sum / progress.seen.max(1) as f64,
            train_accuracy: progress.correct as f64 / progress.seen.max(1) as f64,
            validation_loss,
            validation_accuracy,
            learning_rate: learning_rate(
                config,
                progress.step.saturating_sub(1),
                total_steps,
                per_epoch,
            ),
            seconds,
            // Photos trained in this process: a resumed epoch did part of its work before.
            images_per_second: (progress.seen - resumed_at) as f64 / seconds.max(1e-9),
        };
        eprintln!("{}", record.describe());
        progress.history.push(record);
        let improved = match (validation_accuracy, progress.best_accuracy) {
            (Some(accuracy), Some(best)) => accuracy > best,
            _ => true,
        };
        if improved {
            progress.best_accuracy = validation_accuracy;
            progress.epochs_without_improvement = 0;
            save_best(config, &progress, &network.valid(), &data, backend)?;
        } else {
            progress.epochs_without_improvement += 1;
        }
        if let Some(patience) = config.early_stopping
            && progress.epochs_without_improvement >= patience
            && epoch < config.epochs
        {
            eprintln!("stopping early: no better validation accuracy for {patience} epochs");
            progress.stopped_early = true;
        }
        log.write(&progress.history)
            .map_err(io_error(&config.run))?;
        progress.epoch += 1;
        progress.batch = 0;
        progress.loss_sum = 0.0;
        progress.correct = 0;
        progress.seen = 0;
        progress.seconds = seconds_before + started.elapsed().as_secs_f64();
        save_checkpoint(config, &progress, &network, &optimizer)?;
    }

    finish(config, &progress, &data, backend, &base)
}

/// After the last epoch: the best network becomes the web weight file, and its validation
/// accuracy is measured again through the exported file, the way the page will run it.
fn finish(
    config: &TrainConfig,
    progress: &Progress,
    data: &RunData,
    backend: Backend,
    base: &Device,
) -> Result<TrainReport, TrainError> {
    let best = config.run.join("best.bpk");
    let mut exported = None;
    let mut summary = ModelFile::parse(&std::fs::read(&best).map_err(io_error(&best))?)?
        .header
        .training
        .unwrap_or_default();
    if let Some(out) = &config.out {
        let written = export::export(&best, out, config.out_precision)?;
        // Measured again through the written file, the way the page will run it.
        let classifier = catdog_model::Classifier::load(&written.bytes, base)?;
        for (name, indices) in [
            ("validation", &data.split.validation),
            ("test", &data.split.test),
        ] {
            if indices.is_empty() {
                continue;
            }
            let scores = score(
                |images| classifier.batch_logits(images),
                base,
                &data.packed,
                indices,
                &config.preprocess().normalization,
            );
            eprintln!(
                "{} ({:?}) on the {name} split ({} photos): accuracy {:.2}%, log loss {:.4}",
                out.display(),
                config.out_precision,
                indices.len(),
                scores.accuracy * 100.0,
                scores.log_loss
            );
            if name == "validation" {
                summary.validation_accuracy = Some(scores.accuracy);
            }
        }
        exported = Some((out.clone(), written.bytes.len()));
    }
    let report = TrainReport {
        summary,
        epochs_run: progress.history.len(),
        stopped_early: progress.stopped_early,
        skipped: data.packed.skipped.len(),
        duplicates_removed: data.split.duplicates.len(),
        backend,
        seconds: progress.seconds,
        best_model: best,
        exported,
        transfer: None,
    };
    let path = config.run.join("summary.json");
    let json = serde_json::to_vec_pretty(&report).expect("a report always serialises");
    write_atomic(&path, &json).map_err(io_error(&path))?;
    Ok(report)
}

/// A line above the progress bar, or on stderr where the bar is hidden (not a terminal), so
/// logs and scripts watching the run see it too.
fn note(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// An epoch's shuffled training photos (seeded, so a resumed run repeats it) and its
/// progress bar.
pub(crate) fn epoch_order(
    config: &TrainConfig,
    train: &[usize],
    epoch: usize,
) -> (Vec<usize>, indicatif::ProgressBar) {
    let mut order = train.to_vec();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(batch_seed(
        config.seed,
        epoch,
        usize::MAX,
    )));
    let bar = progress_bar(
        order.len() as u64,
        &format!("epoch {epoch}/{}", config.epochs),
    );
    (order, bar)
}

/// Seeds for each epoch's order (`batch = usize::MAX`) and each batch's augmentation.
pub(crate) fn batch_seed(seed: u64, epoch: usize, batch: usize) -> u64 {
    seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (batch as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
}

/// An augmented batch of packed photos: the images, the targets and the same labels on the
/// host (for counting correct predictions without reading the targets back).
pub fn training_batch(
    packed: &PackedPhotos,
    indices: &[usize],
    augment: &Augment,
    normalization: &Normalization,
    rng: &mut impl rand::Rng,
    device: &Device,
) -> (Tensor<4>, Tensor<1, Int>, Vec<i64>) {
    let size = packed.size as usize;
    let mut pixels = Vec::with_capacity(indices.len() * 3 * size * size);
    for &index in indices {
        augment.apply(packed.pixels(index), size, normalization, rng, &mut pixels);
    }
    let labels: Vec<i64> = packed
        .labels(indices)
        .iter()
        .map(|label| label.index() as i64)
        .collect();
    let images = Tensor::<4>::from_data(
        TensorData::new(pixels, [indices.len(), 3, size, size]),
        device,
    );
    let targets =
        Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [indices.len()]), device);
    (images, targets, labels)
}

/// Accuracy and mean log loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub accuracy: f64,
    pub log_loss: f64,
}

/// (cat, dog) logits for packed photos, without augmentation, 64 at a time: `forward` is a
/// network's own pass (during training) or a loaded model file's
/// ([`catdog_model::Classifier::batch_logits`], which averages over the mirror image where the
/// file says so).
pub fn logits(
    forward: impl Fn(Tensor<4>) -> Tensor<2>,
    device: &Device,
    packed: &PackedPhotos,
    indices: &[usize],
    normalization: &Normalization,
) -> Vec<[f32; 2]> {
    let mut out = Vec::with_capacity(indices.len());
    for chunk in indices.chunks(64) {
        let values = forward(packed.batch(chunk, normalization, device))
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("logits are floats");
        out.extend(values.chunks_exact(2).map(|pair| [pair[0], pair[1]]));
    }
    out
}

/// Accuracy and log loss on labelled packed photos (see [`logits`] for `forward`).
pub fn score(
    forward: impl Fn(Tensor<4>) -> Tensor<2>,
    device: &Device,
    packed: &PackedPhotos,
    indices: &[usize],
    normalization: &Normalization,
) -> Scores {
    let logits = logits(forward, device, packed, indices, normalization);
    scores_from_logits(&logits, &packed.labels(indices))
}

/// Accuracy and log loss of (cat, dog) logits: the calibration module's figures at
/// temperature 1, so every figure the trainer prints comes from one implementation.
pub fn scores_from_logits(logits: &[[f32; 2]], labels: &[Label]) -> Scores {
    let scores = crate::calibrate::scores(logits, labels, 1.0);
    Scores {
        accuracy: scores.accuracy,
        log_loss: scores.log_loss,
    }
}

fn save_best(
    config: &TrainConfig,
    progress: &Progress,
    network: &Network,
    data: &RunData,
    backend: Backend,
) -> Result<(), TrainError> {
    let mut header = ModelHeader::new(config.architecture(), config.preprocess());
    header.weights_dtype = WeightsDtype::F32;
    let last = progress.history.last();
    header.training = Some(TrainingSummary {
        dataset: config.data.display().to_string(),
        epochs: last.map_or(0, |record| record.epoch),
        train_images: data.split.train.len(),
        validation_images: data.split.validation.len(),
        validation_accuracy: last.and_then(|record| record.validation_accuracy),
        notes: format!(
            "seeded ({}) stratified {:.0}% validation split, {} near-copies of training photos \
             removed from it; {:?} lr {} ({:?} schedule, {} warm-up epochs), weight decay {}, \
             batch {}; augmentation {:?}; backend {backend}",
            config.seed,
            config.validation_fraction * 100.0,
            data.split.duplicates.len(),
            config.optimizer,
            config.learning_rate,
            config.schedule,
            config.warmup_epochs,
            config.weight_decay,
            config.batch_size,
            config.augment,
        ),
    });
    let bytes = ModelFile::from_network(header, network)?.to_bytes();
    let path = config.run.join("best.bpk");
    write_atomic(&path, &bytes).map_err(io_error(&path))
}

fn save_checkpoint(
    config: &TrainConfig,
    progress: &Progress,
    network: &Network,
    optimizer: &ModuleOptimizer,
) -> Result<(), TrainError> {
    let path = config.run.join("checkpoint.ckpt");
    let fail = |reason: String| TrainError::BadCheckpoint {
        path: path.clone(),
        reason,
    };
    let state = serde_json::to_vec(progress).expect("progress always serialises");
    let model = network
        .valid()
        .into_weights()
        .into_bytes()
        .map_err(|error| fail(error.to_string()))?;
    let optim = optimizer
        .into_bytes()
        .map_err(|error| fail(error.to_string()))?;
    let mut bytes = Vec::with_capacity(32 + state.len() + model.len() + optim.len());
    bytes.extend_from_slice(CHECKPOINT_MAGIC);
    for part in [&state[..], &model[..], &optim[..]] {
        bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
        bytes.extend_from_slice(part);
    }
    // One file written atomically: a kill at any moment leaves the previous checkpoint whole.
    write_atomic(&path, &bytes).map_err(io_error(&path))
}

fn parse_checkpoint(bytes: &[u8]) -> Result<(Progress, Vec<u8>, Vec<u8>), String> {
    let mut rest = bytes
        .strip_prefix(CHECKPOINT_MAGIC)
        .ok_or("not a catdog checkpoint")?;
    let mut parts = Vec::new();
    for _ in 0..3 {
        let len = rest
            .get(..8)
            .map(|len| u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize)
            .ok_or("truncated checkpoint")?;
        let part = rest.get(8..8 + len).ok_or("truncated checkpoint")?;
        parts.push(part.to_vec());
        rest = &rest[8 + len..];
    }
    let progress = serde_json::from_slice(&parts[0]).map_err(|error| error.to_string())?;
    let optim = parts.pop().expect("three parts");
    let model = parts.pop().expect("three parts");
    Ok((progress, model, optim))
}

//! A run that trains on the photos themselves (the CNN from scratch, `--unfreeze all`) through
//! the one loop (`fit.rs`): resumable, logged and exported. Transfer runs start here too
//! and go on in [`crate::transfer`].
//!
//! A run lives in its own folder (`--run`):
//!
//! | file | what |
//! |---|---|
//! | `config.json` | the run's whole configuration; `--resume` reads it back |
//! | `checkpoint.ckpt` | network, optimiser state and progress, rewritten atomically every few minutes and after each epoch |
//! | `log.csv`, `log.json`, `curves.png` | per-epoch train/validation loss and accuracy |
//! | `best.bpk` | the best network so far (by validation log loss, [`Selection`](crate::selection::Selection)), a full-precision model file |
//! | `skipped.tsv`, `duplicates.tsv` | photos that could not be used, and validation photos dropped as near-copies of training ones |
//! | `summary.json` | the final figures |
//!
//! The order of each epoch and the augmentation of each batch are derived from the seed, the
//! epoch and the batch number, so a resumed run continues exactly where the killed one was.

use std::path::Path;

use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Tensor};
use catdog_model::weights::{TrainingSummary, WeightsDtype};
use catdog_model::{Backend, ModelFile, ModelHeader, Network, Normalization};
use rand::rngs::StdRng;

use crate::augment::Augment;
use crate::checkpoint::{Progress, parse_checkpoint, save_checkpoint};
use crate::config::{Backbone, TrainConfig, TrainError, TrainReport, io_error};
use crate::dataset::PackedPhotos;
use crate::distill::Teacher;
use crate::files::write_atomic;
use crate::fit::{Keeper, Lesson, Start, fit};
use crate::runlog::RunLog;
use crate::score::{Scores, score};
use crate::setup::{LearningRates, RunData, choose_backend, load_data, optimizer, training_batch};
use crate::{export, transfer, transfer_run};

/// Starts a new run (refusing a folder that already holds one).
pub fn train(config: &TrainConfig) -> Result<TrainReport, TrainError> {
    if config.run.join("checkpoint.ckpt").exists() || config.run.join("config.json").exists() {
        return Err(TrainError::RunExists(config.run.clone()));
    }
    check_limits(config)?;
    // And a schedule Burn's schedulers can make, before anything is written.
    LearningRates::new(config, 1, 0)?;
    if let Some(distill) = &config.distill {
        distill.check()?;
    }
    // A head file that does not fit the run is refused before anything is written.
    if config.head_from.is_some() {
        transfer::initial_head(config, &burn::tensor::Device::flex())?;
    }
    std::fs::create_dir_all(&config.run).map_err(io_error(&config.run))?;
    let json = serde_json::to_vec_pretty(config).expect("a config always serialises");
    let path = config.run.join("config.json");
    write_atomic(&path, &json).map_err(io_error(&path))?;
    if config.backbone == Backbone::Scratch || config.fine_tunes_everything() {
        run(config, Progress::default(), None)
    } else {
        transfer_run::run(config)
    }
}

/// The limits every model file is held to (`catdog_model::limits`), checked before hours of
/// training rather than when the file is first loaded; on resuming too (a hand-edited
/// `config.json` is a file like any other).
fn check_limits(config: &TrainConfig) -> Result<(), TrainError> {
    catdog_model::limits::check(&ModelHeader::new(
        config.architecture(),
        config.preprocess(),
    ))
    .map_err(TrainError::BeyondLimits)
}

/// Continues the run in `run` from its last checkpoint, with its saved configuration.
pub fn resume(run_dir: &Path) -> Result<TrainReport, TrainError> {
    // The folder may have moved since; it is where the user says it is now.
    let config = TrainConfig::read(run_dir)?;
    check_limits(&config)?;
    if config.backbone != Backbone::Scratch && !config.fine_tunes_everything() {
        // The expensive part, the frozen trunk's outputs, is cached shard by shard; the head
        // trains again from those in minutes.
        eprintln!(
            "resuming {}: the trunk's outputs come from the cache, the head trains again",
            run_dir.display()
        );
        return transfer_run::run(&config);
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

/// A photo-by-photo run (the CNN, `--unfreeze all`) from `progress`, with the checkpoint's
/// network and optimiser state when resuming.
fn run(
    config: &TrainConfig,
    progress: Progress,
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
    let lesson = PhotoLesson {
        packed: &data.packed,
        augment: &config.augment,
        normalization: config.preprocess().normalization,
        validation: &data.split.validation,
        base: base.clone(),
        device,
        teacher,
    };
    let mut keeper = RunFolder {
        config,
        data: &data,
        backend,
        log: RunLog::new(&config.run),
    };
    let start = Start {
        network,
        optimizer,
        progress,
    };
    let progress = fit(config, &lesson, &data.split.train, start, &mut keeper)?;
    finish(config, &progress, &data, backend, &base)
}

/// Photos through the whole network, augmented afresh each step: how the CNN and
/// `--unfreeze all` train, and what `bench` times.
pub struct PhotoLesson<'a> {
    pub packed: &'a PackedPhotos,
    pub augment: &'a Augment,
    pub normalization: Normalization,
    pub validation: &'a [usize],
    /// Where validation runs: the training device without autodiff.
    pub base: Device,
    /// The training (autodiff) device.
    pub device: Device,
    /// Distillation: the accurate model's probabilities, learnt from as well as the labels.
    pub teacher: Option<Teacher>,
}

impl Lesson for PhotoLesson<'_> {
    type Network = Network;

    fn forward(
        &self,
        network: &Network,
        batch: &[usize],
        rng: &mut StdRng,
    ) -> (Tensor<2>, Vec<i64>) {
        let (images, labels) = training_batch(
            self.packed,
            batch,
            self.augment,
            &self.normalization,
            rng,
            &self.device,
        );
        (network.forward(images), labels)
    }

    fn loss(&self, logits: Tensor<2>, labels: &[i64], batch: &[usize]) -> Tensor<1> {
        Teacher::training_loss(self.teacher.as_ref(), logits, labels, batch)
    }

    fn validate(&self, network: &Network) -> Option<Scores> {
        (!self.validation.is_empty()).then(|| {
            score(
                |images| network.forward(images),
                &self.base,
                self.packed,
                self.validation,
                &self.normalization,
            )
        })
    }
}

/// What a photo-by-photo run keeps in its folder: the checkpoint, `best.bpk`, the log.
struct RunFolder<'a> {
    config: &'a TrainConfig,
    data: &'a RunData,
    backend: Backend,
    log: RunLog,
}

impl Keeper<Network> for RunFolder<'_> {
    fn checkpoint(
        &mut self,
        progress: &Progress,
        network: &Network,
        optimizer: &ModuleOptimizer,
    ) -> Result<bool, TrainError> {
        save_checkpoint(self.config, progress, network, optimizer)?;
        Ok(true)
    }

    fn best(
        &mut self,
        progress: &Progress,
        network: Network,
        _: Option<Scores>,
    ) -> Result<(), TrainError> {
        save_best(self.config, progress, &network, self.data, self.backend)
    }

    fn epoch_done(&mut self, progress: &Progress) -> Result<bool, TrainError> {
        self.log
            .write(&progress.history)
            .map_err(io_error(&self.config.run))?;
        Ok(true)
    }
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
        let written = export::export(&best, out, config.out_precision, Default::default())?;
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

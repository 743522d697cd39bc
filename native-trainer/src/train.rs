//! The training loop: the from-scratch CNN on real photos, resumable, logged and exported.
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
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use catdog_model::weights::{TrainingSummary, WeightsDtype};
use catdog_model::{Backend, ModelFile, ModelHeader, Network};
use rand::SeedableRng;

use crate::checkpoint::{Progress, parse_checkpoint, save_checkpoint};
use crate::config::{Backbone, TrainConfig, TrainError, TrainReport, io_error};
use crate::distill::{DistillError, Teacher};
use crate::files::write_atomic;
use crate::runlog::{EpochRecord, RunLog};
use crate::score::score;
use crate::setup::{
    LearningRates, RunData, batch_seed, choose_backend, epoch_order, load_data, optimizer,
    training_batch,
};
use crate::{export, transfer};

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
    // And a schedule Burn's schedulers can make, before anything is written.
    LearningRates::new(config, 1, 0)?;
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
    let mut rates = LearningRates::new(config, per_epoch, progress.step)?;
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
            network = optimizer.step(rates.next_step(), network, gradients);
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
            learning_rate: rates.last(),
            seconds,
            // Photos trained in this process: a resumed epoch did part of its work before.
            images_per_second: (progress.seen - resumed_at) as f64 / seconds.max(1e-9),
        };
        eprintln!("{}", record.describe());
        progress.history.push(record);
        if progress.selection.observe(epoch, validation_loss) {
            save_best(config, &progress, &network.valid(), &data, backend)?;
        }
        if progress.selection.patience_spent(config.early_stopping) && epoch < config.epochs {
            eprintln!(
                "stopping early: no lower validation log loss for {} epochs",
                progress.selection.stale
            );
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

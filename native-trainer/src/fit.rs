//! The one training loop. Every way of training runs through [`fit`]: the CNN and `--unfreeze
//! all` on photos, the head on cached pooled features, `--unfreeze 1` on cached trunk outputs,
//! `tune`'s trials and `bench`'s timing. What differs between them is behind two small traits:
//!
//! - a [`Lesson`] says where a batch's logits come from (augmented photos through the whole
//!   network, or cached features through what is trainable), what the loss is (distillation
//!   adds the teacher's term) and how a network scores on the validation photos;
//! - a [`Keeper`] says what a run keeps as it goes: checkpoints, the best network (a file, or
//!   in memory), the log, and whether to go on.
//!
//! The loop owns every rule they share: each epoch's seeded order and each batch's seeded
//! random numbers (so a resumed run repeats them), the learning-rate schedule, the running
//! loss and accuracy, the progress bar, when a checkpoint is due, the best epoch and early
//! stopping ([`Selection`](crate::selection::Selection)).

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::checkpoint::Progress;
use crate::config::{TrainConfig, TrainError};
use crate::progress::log_when_hidden;
use crate::runlog::EpochRecord;
use crate::score::Scores;
use crate::setup::{LearningRates, batch_seed, epoch_order};

/// What a way of training feeds the loop.
pub trait Lesson {
    /// What trains: the whole network, or the classifier over a frozen (cached) trunk.
    type Network: Module;

    /// The logits of a batch of training photos and their labels (0 cat, 1 dog). `rng` is
    /// seeded by the seed, the epoch and the batch: augmentation and which cached view.
    fn forward(
        &self,
        network: &Self::Network,
        batch: &[usize],
        rng: &mut StdRng,
    ) -> (Tensor<2>, Vec<i64>);

    /// The loss the optimiser lowers: the cross-entropy with the labels, unless the lesson
    /// adds to it (a teacher's probabilities).
    fn loss(&self, logits: Tensor<2>, labels: &[i64], _batch: &[usize]) -> Tensor<1> {
        cross_entropy(logits, labels)
    }

    /// The network's log loss and accuracy on the validation photos, in inference mode
    /// (`network` is already [`Module::valid`]); `None` without validation photos.
    fn validate(&self, network: &Self::Network) -> Option<Scores>;
}

/// What a run keeps as it trains.
pub trait Keeper<N> {
    /// A checkpoint is due (every `--checkpoint-minutes` within an epoch, and after each
    /// epoch). Returns whether one was written; by default none is (a run whose expensive
    /// part is cached trains again from the cache instead).
    fn checkpoint(
        &mut self,
        _progress: &Progress,
        _network: &N,
        _optimizer: &ModuleOptimizer,
    ) -> Result<bool, TrainError> {
        Ok(false)
    }

    /// The epoch just recorded (`progress.epoch`, the last of `progress.history`) is the best
    /// so far; `network` is in inference mode, `scores` its validation figures.
    fn best(
        &mut self,
        progress: &Progress,
        network: N,
        scores: Option<Scores>,
    ) -> Result<(), TrainError>;

    /// After each epoch, once its record is in `progress.history` and the best is kept.
    /// Returning `false` ends the run early (`tune`'s median rule).
    fn epoch_done(&mut self, _progress: &Progress) -> Result<bool, TrainError> {
        Ok(true)
    }

    /// After each optimiser step (`progress.step` counts them).
    fn step_done(&mut self, _progress: &Progress) {}
}

/// Where a run starts: a fresh network and optimiser with empty progress, or a checkpoint's.
pub struct Start<N> {
    pub network: N,
    pub optimizer: ModuleOptimizer,
    pub progress: Progress,
}

/// Trains `start.network` on the `train` photos for the configured epochs (or until early
/// stopping, or until the keeper says stop) and returns the final progress, with the history
/// and the best epoch's [`Selection`](crate::selection::Selection).
pub fn fit<L: Lesson>(
    config: &TrainConfig,
    lesson: &L,
    train: &[usize],
    start: Start<L::Network>,
    keeper: &mut impl Keeper<L::Network>,
) -> Result<Progress, TrainError> {
    let Start {
        mut network,
        mut optimizer,
        mut progress,
    } = start;
    progress.epoch = progress.epoch.max(1);
    let per_epoch = train.len().div_ceil(config.batch_size);
    let mut rates = LearningRates::new(config, per_epoch, progress.step)?;
    let started = Instant::now();
    let seconds_before = progress.seconds;

    while progress.epoch <= config.epochs && !progress.stopped_early {
        let epoch = progress.epoch;
        let epoch_started = Instant::now();
        let (order, bar) = epoch_order(config, train, epoch);
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
            let mut rng = StdRng::seed_from_u64(batch_seed(config.seed, epoch, batch_index));
            let (logits, labels) = lesson.forward(&network, batch, &mut rng);
            let predicted = logits.clone().argmax(1);
            let batch_loss = lesson.loss(logits, &labels, batch);
            // Reading the loss back also waits for the device to finish the step, so the
            // rate shown (and `bench`'s timing) covers a GPU's work too.
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
            keeper.step_done(&progress);
            bar.inc(batch.len() as u64);
            bar.set_prefix(format!(
                "loss {:.3} acc {:.1}%",
                progress.loss_sum / progress.seen as f64,
                100.0 * progress.correct as f64 / progress.seen as f64
            ));
            log_when_hidden(&bar, &mut last_note);
            let minutes = last_checkpoint.elapsed().as_secs_f64() / 60.0;
            if minutes >= config.checkpoint_minutes && progress.batch < per_epoch {
                progress.seconds = seconds_before + started.elapsed().as_secs_f64();
                if keeper.checkpoint(&progress, &network, &optimizer)? {
                    note(
                        &bar,
                        format!("checkpoint saved (epoch {epoch}, batch {})", progress.batch),
                    );
                }
                last_checkpoint = Instant::now();
            }
        }
        bar.finish_and_clear();

        let valid = network.valid();
        let validation = lesson.validate(&valid);
        let seconds = epoch_started.elapsed().as_secs_f64();
        let record = EpochRecord {
            epoch,
            train_loss: progress.loss_sum / progress.seen.max(1) as f64,
            train_accuracy: progress.correct as f64 / progress.seen.max(1) as f64,
            validation_loss: validation.map(|scores| scores.log_loss),
            validation_accuracy: validation.map(|scores| scores.accuracy),
            learning_rate: rates.last(),
            seconds,
            // Photos trained in this process: a resumed epoch did part of its work before.
            images_per_second: (progress.seen - resumed_at) as f64 / seconds.max(1e-9),
        };
        eprintln!("{}", record.describe());
        progress.history.push(record);
        if progress
            .selection
            .observe(epoch, validation.map(|scores| scores.log_loss))
        {
            keeper.best(&progress, valid, validation)?;
        }
        let go_on = keeper.epoch_done(&progress)?;
        if epoch < config.epochs {
            if progress.selection.patience_spent(config.early_stopping) {
                eprintln!(
                    "stopping early: no lower validation log loss for {} epochs",
                    progress.selection.stale
                );
                progress.stopped_early = true;
            } else if !go_on {
                progress.stopped_early = true;
            }
        }
        progress.epoch += 1;
        progress.batch = 0;
        progress.loss_sum = 0.0;
        progress.correct = 0;
        progress.seen = 0;
        progress.seconds = seconds_before + started.elapsed().as_secs_f64();
        keeper.checkpoint(&progress, &network, &optimizer)?;
    }
    Ok(progress)
}

/// The cross-entropy of (cat, dog) logits with the labels.
pub fn cross_entropy(logits: Tensor<2>, labels: &[i64]) -> Tensor<1> {
    let device = logits.device();
    let targets =
        Tensor::<1, Int>::from_data(TensorData::new(labels.to_vec(), [labels.len()]), &device);
    CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits, targets)
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

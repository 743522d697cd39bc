//! What every way of training shares: the run's photos and seeded split, the backend (seeded),
//! the optimiser, the learning-rate schedule, each epoch's order and each batch's
//! augmentation (derived from the seed, the epoch and the batch, so a resumed run repeats them).

use burn::lr_scheduler::LrSchedulerConfig;
use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::lr_scheduler::linear::LinearLrSchedulerConfig;
use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::lr_scheduler::sequential::SequentialLrSchedulerConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use catdog_model::{Backend, Normalization};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::augment::Augment;
use crate::config::{OptimizerKind, Schedule, TrainConfig, TrainError, io_error};
use crate::dataset::{DatasetError, PackedPhotos};
use crate::files::write_atomic;
use crate::photos::PhotoSet;
use crate::progress::progress_bar;
use crate::split::Split;

/// The photos of a run, packed and split.
pub struct RunData {
    pub packed: PackedPhotos,
    pub split: Split,
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

/// The run's learning rate, step by step, from Burn's schedulers: a linear warm-up over
/// `--warmup-epochs`, then the `--schedule`: constant; cosine annealing to 0; or steps of 1,
/// 0.1 from half-way and 0.01 from three quarters of the way. A resumed run advances a fresh
/// schedule to its step count, which is all the schedulers depend on.
pub struct LearningRates {
    scheduler: ModuleLrScheduler,
    last: f64,
}

impl LearningRates {
    /// The schedule of a run of `per_epoch` steps per epoch, advanced past `done` steps.
    pub fn new(config: &TrainConfig, per_epoch: usize, done: usize) -> Result<Self, TrainError> {
        let total = per_epoch * config.epochs;
        // Not clamped to the run: a warm-up longer than the run ramps up until the run ends.
        let warmup = config.warmup_epochs * per_epoch;
        let after = total.saturating_sub(warmup).max(1);
        let lr = config.learning_rate;
        let schedule = match config.schedule {
            Schedule::Constant => LrSchedulerConfig::Constant(lr),
            Schedule::Cosine => CosineAnnealingLrSchedulerConfig::new(lr, after).into(),
            Schedule::Step => one_after_another(vec![
                (0, LrSchedulerConfig::Constant(lr)),
                (after.div_ceil(2), LrSchedulerConfig::Constant(lr * 0.1)),
                (
                    (3 * after).div_ceil(4),
                    LrSchedulerConfig::Constant(lr * 0.01),
                ),
            ]),
        };
        // Step k of the warm-up (from 0) runs at lr (k + 1) / warmup; one step of it is lr.
        let schedule = match warmup {
            0 => schedule,
            1 => one_after_another(vec![(0, LrSchedulerConfig::Constant(lr)), (1, schedule)]),
            _ => one_after_another(vec![
                (
                    0,
                    LinearLrSchedulerConfig::new(lr / warmup as f64, lr, warmup - 1).into(),
                ),
                (warmup, schedule),
            ]),
        };
        let mut scheduler = match schedule {
            LrSchedulerConfig::Sequential(sequence) => sequence.init(),
            single => SequentialLrSchedulerConfig::new(vec![single], vec![]).init(),
        }
        .map_err(TrainError::Schedule)?;
        let mut last = lr;
        for _ in 0..done {
            last = scheduler.step().base();
        }
        Ok(Self { scheduler, last })
    }

    /// The learning rate of the next step.
    pub fn next_step(&mut self) -> f64 {
        self.last = self.scheduler.step().base();
        self.last
    }

    /// The learning rate of the last step taken (what the epoch's log shows).
    pub fn last(&self) -> f64 {
        self.last
    }
}

/// Schedules run one after another, each from the step given (the first from 0); one that
/// would last no step is left out.
fn one_after_another(phases: Vec<(usize, LrSchedulerConfig)>) -> LrSchedulerConfig {
    let mut kept: Vec<(usize, LrSchedulerConfig)> = Vec::new();
    for (start, schedule) in phases {
        if let Some(last) = kept.last_mut()
            && start <= last.0
        {
            *last = (last.0, schedule);
            continue;
        }
        kept.push((start, schedule));
    }
    if kept.len() == 1 {
        return kept.pop().expect("one phase").1;
    }
    let milestones = kept.iter().skip(1).map(|(start, _)| *start).collect();
    let schedules = kept.into_iter().map(|(_, schedule)| schedule).collect();
    SequentialLrSchedulerConfig::new(schedules, milestones).into()
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

/// An augmented batch of packed photos: the images, and their labels (0 cat, 1 dog) on the
/// host, for the loss and for counting correct predictions without reading targets back.
pub fn training_batch(
    packed: &PackedPhotos,
    indices: &[usize],
    augment: &Augment,
    normalization: &Normalization,
    rng: &mut impl rand::Rng,
    device: &Device,
) -> (Tensor<4>, Vec<i64>) {
    let size = packed.size as usize;
    let mut pixels = Vec::with_capacity(indices.len() * 3 * size * size);
    for &index in indices {
        augment.apply(packed.pixels(index), size, normalization, rng, &mut pixels);
    }
    let labels = packed.targets(indices);
    let images = Tensor::<4>::from_data(
        TensorData::new(pixels, [indices.len(), 3, size, size]),
        device,
    );
    (images, labels)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, training};

    /// A run's configuration as the command line makes it.
    fn config(args: &[&str]) -> TrainConfig {
        let line = ["native-trainer", "train", "--data", "photos"]
            .iter()
            .chain(args);
        let Command::Train(args) = Cli::try_parse_from(line).unwrap().command else {
            unreachable!("a train command")
        };
        training::train_config(args).unwrap()
    }

    fn rates(config: &TrainConfig, per_epoch: usize) -> Vec<f64> {
        let mut rates = LearningRates::new(config, per_epoch, 0).unwrap();
        (0..per_epoch * config.epochs)
            .map(|_| rates.next_step())
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn the_schedules_warm_up_then_follow_their_curve_and_resume_where_they_were() {
        let lr = 1e-3;
        let cosine = config(&["--epochs", "4", "--warmup-epochs", "1"]);
        let steps = rates(&cosine, 10);
        assert_eq!(steps.len(), 40);
        // Warm-up: step k at lr (k + 1) / 10; then cosine annealing over the other 30 steps.
        for (k, rate) in steps[..10].iter().enumerate() {
            assert!(close(*rate, lr * (k + 1) as f64 / 10.0), "step {k}: {rate}");
        }
        assert!(close(steps[10], lr));
        assert!(close(steps[25], lr / 2.0), "half-way: {}", steps[25]);
        let last = 0.5 * lr * (1.0 + (std::f64::consts::PI * 29.0 / 30.0).cos());
        assert!(close(steps[39], last));

        // Steps: 1 until half-way, 0.1 until three quarters, then 0.01.
        let step = config(&["--epochs", "4", "--schedule", "step"]);
        let steps = rates(&step, 10);
        assert!(steps[..20].iter().all(|rate| close(*rate, lr)));
        assert!(steps[20..30].iter().all(|rate| close(*rate, lr * 0.1)));
        assert!(steps[30..].iter().all(|rate| close(*rate, lr * 0.01)));

        let constant = config(&["--epochs", "2", "--schedule", "constant"]);
        assert!(rates(&constant, 5).iter().all(|rate| close(*rate, lr)));

        // A resumed run's schedule continues from its step.
        let mut resumed = LearningRates::new(&cosine, 10, 25).unwrap();
        assert!(close(resumed.last(), rates(&cosine, 10)[24]));
        assert!(close(resumed.next_step(), rates(&cosine, 10)[25]));

        // One step of warm-up is one step at lr, and the curve starts after it.
        let short = config(&["--epochs", "3", "--warmup-epochs", "1"]);
        let steps = rates(&short, 1);
        assert!(close(steps[0], lr) && close(steps[1], lr) && close(steps[2], lr / 2.0));
        // A warm-up longer than the run never reaches lr.
        let long = config(&["--epochs", "2", "--warmup-epochs", "4"]);
        let steps = rates(&long, 2);
        assert!(close(steps[3], lr * 4.0 / 8.0), "{steps:?}");

        // A learning rate Burn's schedulers cannot take is refused by name.
        let too_high = config(&["--learning-rate", "2"]);
        assert!(matches!(
            LearningRates::new(&too_high, 10, 0),
            Err(TrainError::Schedule(_))
        ));
    }
}

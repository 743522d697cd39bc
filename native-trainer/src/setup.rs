//! What every way of training shares: the run's photos and seeded split, the backend (seeded),
//! the optimiser, the learning-rate schedule, each epoch's order and each batch's
//! augmentation (derived from the seed, the epoch and the batch, so a resumed run repeats them).

use crate::augment::Augment;
use crate::config::OptimizerKind;
use crate::config::Schedule;
use crate::config::TrainConfig;
use crate::config::TrainError;
use crate::config::io_error;
use crate::dataset::DatasetError;
use crate::dataset::PackedPhotos;
use crate::dataset::Split;
use crate::dataset::progress_bar;
use crate::files::write_atomic;
use crate::photos::PhotoSet;
use burn::optim::AdamConfig;
use burn::optim::AdamWConfig;
use burn::optim::ModuleOptimizer;
use burn::optim::SgdConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::tensor::Device;
use burn::tensor::Int;
use burn::tensor::Tensor;
use burn::tensor::TensorData;
use catdog_model::Backend;
use catdog_model::Normalization;
use rand::SeedableRng;
use rand::seq::SliceRandom;

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

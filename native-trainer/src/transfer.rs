//! Transfer learning from ImageNet-pretrained EfficientNet-Lite, made practical on a CPU.
//!
//! The backbone's trunk stays frozen and its outputs are cached ([`crate::features`]). A run
//! then trains either the head alone on the pooled features (seconds per epoch), or, with
//! `--unfreeze 1`, the last block and the 1x1 head convolution too, from the cached trunk
//! outputs (its batch-norms keep their ImageNet statistics, as Keras fine-tuning does).
//!
//! Every decision (the best epoch, early stopping, the calibration temperature, and `tune`'s
//! choice of hyper-parameters) looks at the validation split only. The test split is measured
//! once, at the end, through the exported file on the photos themselves, the way the page
//! runs it.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use catdog_model::efficientnet::{EfficientNetLite, FEATURES, Variant};
use catdog_model::network::EfficientNetClassifier;
use catdog_model::weights::{TrainingSummary, WeightsDtype};
use catdog_model::{Backend, ModelFile, ModelHeader, Network};
use rand::{Rng, SeedableRng};

use crate::calibrate::{self, CalibrationScores};
use crate::config::{
    StorageFigures, TrainConfig, TrainError, TrainReport, TransferFigures, io_error,
};
use crate::dataset::log_when_hidden;
use crate::export;
use crate::features::{self, TrunkOutputs, View};
use crate::files::write_atomic;
use crate::pretrained::{self, ImagenetNetwork};
use crate::runlog::{EpochRecord, RunLog};
use crate::score::{self, Scores, scores_from_logits};
use crate::selection::Selection;
use crate::setup::{self, LearningRates, RunData, batch_seed};

/// The photos of a transfer run with the frozen backbone's outputs for each.
pub struct TransferData {
    pub run: RunData,
    pub backbone: EfficientNetLite,
    pub trunk: TrunkOutputs,
    /// The frozen tail's pooled features, `[photos * 1280]` per view: what a head-only
    /// (`--unfreeze 0`) run trains on; `None` when nothing will read them.
    pub pooled: Option<Vec<Vec<f32>>>,
    pub backend: Backend,
    pub device: Device,
}

/// A trained network and its history.
pub struct Fitted {
    pub network: EfficientNetClassifier,
    pub history: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub best: Scores,
    pub stopped_early: bool,
}

/// The run's pretrained backbone.
fn variant(config: &TrainConfig) -> Variant {
    config
        .backbone
        .variant()
        .expect("a transfer run has a pretrained backbone")
}

fn pretrained_path(config: &TrainConfig) -> std::path::PathBuf {
    config
        .pretrained
        .clone()
        .unwrap_or_else(|| pretrained::default_path(variant(config)))
}

fn load_backbone(config: &TrainConfig, device: &Device) -> Result<EfficientNetLite, TrainError> {
    Ok(
        ImagenetNetwork::load(&pretrained_path(config), variant(config), device)
            .map_err(|error| TrainError::Pretrained(error.to_string()))?
            .backbone,
    )
}

/// The pretrained backbone with a fresh head, every weight trainable on `training` (an
/// autodiff device): where `--unfreeze all` starts.
pub fn pretrained_network(
    config: &TrainConfig,
    base: &Device,
    training: &Device,
) -> Result<Network, TrainError> {
    Ok(Network::EfficientNet(EfficientNetClassifier {
        backbone: load_backbone(config, base)?.train().fork(training),
        head: config.head.init(FEATURES, training),
    }))
}

/// Packs and splits the photos, loads the pretrained backbone and computes (or reads) the
/// frozen outputs: everything a run or a `tune` search needs before training. `pooled`: also
/// the pooled features, which only head-only training reads (about 2 minutes for 44,000
/// trunk outputs on two cores).
pub fn prepare(config: &TrainConfig, pooled: bool) -> Result<TransferData, TrainError> {
    let run = setup::load_data(config)?;
    let (backend, device) = setup::choose_backend(config)?;
    let path = pretrained_path(config);
    let backbone = load_backbone(config, &device)?;
    // Both views always: the mirror image is what the test-time decision ([`mirror_pays`])
    // weighs on validation, whether or not training shows it (augmentation's flip).
    let views = &[View::Original, View::Mirrored];
    let weights_id = features::weights_id(&path).map_err(io_error(&path))?;
    let cache = config.cache.as_deref();
    let preprocess = config.preprocess();
    let shape = variant(config).trunk_shape(preprocess.input_size);
    let source = features::Trunk {
        backbone: &backbone,
        weights_id,
        shape,
    };
    let trunk = features::trunk_outputs(&run.packed, &source, &preprocess, views, cache, &device)
        .map_err(io_error(cache.unwrap_or(Path::new("."))))?;
    let pooled = pooled.then(|| trunk.pooled(&backbone, &device));
    Ok(TransferData {
        run,
        backbone,
        trunk,
        pooled,
        backend,
        device,
    })
}

/// The network's logits for photos of the run, each in the given view: from pooled features
/// when only the head trains, from trunk outputs when the tail trains too.
fn logits(
    network: &EfficientNetClassifier,
    data: &TransferData,
    indices: &[usize],
    views: &[usize],
    unfreeze: bool,
    device: &Device,
) -> Tensor<2> {
    let n = indices.len();
    if unfreeze {
        let mut values = Vec::with_capacity(n * data.trunk.per_photo());
        for (&index, &view) in indices.iter().zip(views) {
            values.extend_from_slice(data.trunk.get(view, index));
        }
        network.forward_from_trunk(data.trunk.tensor(values, n, device))
    } else {
        let pooled = data
            .pooled
            .as_ref()
            .expect("pooled features are prepared for head-only training");
        let mut values = Vec::with_capacity(n * FEATURES);
        for (&index, &view) in indices.iter().zip(views) {
            values.extend_from_slice(&pooled[view][index * FEATURES..(index + 1) * FEATURES]);
        }
        network.head.forward(Tensor::from_data(
            TensorData::new(values, [n, FEATURES]),
            device,
        ))
    }
}

/// (cat, dog) logits of a trained network for photos in view `view` (0: as they are, 1:
/// mirrored, where the run cached it).
pub fn evaluation_logits(
    network: &EfficientNetClassifier,
    data: &TransferData,
    indices: &[usize],
    view: usize,
    unfreeze: bool,
) -> Vec<[f32; 2]> {
    let mut out = Vec::with_capacity(indices.len());
    for chunk in indices.chunks(256) {
        let views = vec![view; chunk.len()];
        let values = features::floats(
            logits(network, data, chunk, &views, unfreeze, &data.device).into_data(),
        );
        out.extend(values.chunks_exact(2).map(|pair| [pair[0], pair[1]]));
    }
    out
}

/// Trains the head (and the tail with `unfreeze`) and returns the epoch with the lowest
/// validation log loss. `keep_going` sees each epoch's record and may end the run (how
/// `tune` stops bad trials early).
pub fn fit(
    config: &TrainConfig,
    data: &TransferData,
    mut keep_going: impl FnMut(&EpochRecord) -> bool,
) -> Result<Fitted, TrainError> {
    let device = data.device.clone().autodiff();
    let unfreeze = config.unfreeze > 0;
    // The backbone's batch-norms stay in inference mode (`freeze`) even where its weights
    // train: fine-tuning from ImageNet statistics, as Keras does.
    let backbone = data
        .backbone
        .clone()
        .freeze()
        .set_require_grad(unfreeze)
        .train()
        .fork(&device);
    let mut network = EfficientNetClassifier {
        backbone,
        head: config.head.init(FEATURES, &device),
    };
    let mut optimizer = setup::optimizer(config);
    let loss = CrossEntropyLossConfig::new().init(&device);
    let split = &data.run.split;
    let labels = data.run.packed.labels(&split.validation);
    // Training sees the mirrored copies only when augmenting; view 0 is the photo as it is.
    let views = if config.augment.flip {
        data.trunk.views.len()
    } else {
        1
    };
    let per_epoch = split.train.len().div_ceil(config.batch_size);
    let mut rates = LearningRates::new(config, per_epoch, 0)?;
    let mut history = Vec::new();
    let mut best: Option<(Scores, usize, EfficientNetClassifier)> = None;
    let mut selection = Selection::default();
    let mut stopped_early = false;
    for epoch in 1..=config.epochs {
        let started = Instant::now();
        let (order, bar) = setup::epoch_order(config, &split.train, epoch);
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        let mut last_note = Instant::now();
        for (batch_index, batch) in order.chunks(config.batch_size).enumerate() {
            let mut rng =
                rand::rngs::StdRng::seed_from_u64(batch_seed(config.seed, epoch, batch_index));
            let batch_views: Vec<usize> =
                batch.iter().map(|_| rng.random_range(0..views)).collect();
            let targets: Vec<i64> = data
                .run
                .packed
                .labels(batch)
                .iter()
                .map(|label| label.index() as i64)
                .collect();
            let output = logits(&network, data, batch, &batch_views, unfreeze, &device);
            let predicted = output.clone().argmax(1).into_data().convert::<i64>();
            correct += predicted
                .as_slice::<i64>()
                .expect("argmax gives integers")
                .iter()
                .zip(&targets)
                .filter(|(p, t)| p == t)
                .count();
            let batch_loss = loss.forward(
                output,
                Tensor::<1, Int>::from_data(TensorData::new(targets, [batch.len()]), &device),
            );
            loss_sum += batch_loss.clone().into_scalar::<f32>() as f64 * batch.len() as f64;
            seen += batch.len();
            let gradients = GradientsParams::from_grads(batch_loss.backward(), &network);
            network = optimizer.step(rates.next_step(), network, gradients);
            bar.inc(batch.len() as u64);
            bar.set_prefix(format!(
                "loss {:.3} acc {:.1}%",
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64
            ));
            log_when_hidden(&bar, &mut last_note);
        }
        bar.finish_and_clear();
        let valid = network.valid();
        let scores = scores_from_logits(
            &evaluation_logits(&valid, data, &split.validation, 0, unfreeze),
            &labels,
        );
        let seconds = started.elapsed().as_secs_f64();
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / order.len() as f64,
            train_accuracy: correct as f64 / order.len() as f64,
            validation_loss: Some(scores.log_loss),
            validation_accuracy: Some(scores.accuracy),
            learning_rate: rates.last(),
            seconds,
            images_per_second: order.len() as f64 / seconds.max(1e-9),
        };
        if selection.observe(epoch, Some(scores.log_loss)) {
            best = Some((scores, epoch, valid));
        }
        history.push(record);
        let go_on = keep_going(history.last().expect("just pushed"));
        if (!go_on || selection.patience_spent(config.early_stopping)) && epoch < config.epochs {
            stopped_early = true;
            break;
        }
    }
    let (best, best_epoch, network) = best.expect("at least one epoch");
    Ok(Fitted {
        network,
        history,
        best_epoch,
        best,
        stopped_early,
    })
}

/// A whole transfer run: prepare, fit, calibrate, save, export, and measure the test split.
pub fn run(config: &TrainConfig) -> Result<TrainReport, TrainError> {
    let started = Instant::now();
    let data = prepare(config, config.unfreeze == 0)?;
    let split = &data.run.split;
    if split.validation.is_empty() {
        return Err(TrainError::NoValidation(config.data.clone()));
    }
    let log = RunLog::new(&config.run);
    let mut history = Vec::new();
    let fitted = fit(config, &data, |record| {
        eprintln!("{}", record.describe());
        history.push(record.clone());
        if let Err(error) = log.write(&history) {
            eprintln!("could not write the run's log: {error}");
        }
        true
    })?;
    log.write(&fitted.history).map_err(io_error(&config.run))?;
    let unfreeze = config.unfreeze > 0;

    // Whether to average each photo's logits with its mirror image's, and the temperature,
    // from the validation split; the test split only reports what they do.
    let validation_labels = data.run.packed.labels(&split.validation);
    // Each split's logits are computed once per view (with `--unfreeze 1` a pass is the tail
    // over every photo), and the averaged ones derived from them.
    let view_logits = |indices: &[usize], view: usize| {
        evaluation_logits(&fitted.network, &data, indices, view, unfreeze)
    };
    let mean = |plain: &[[f32; 2]], mirrored: &[[f32; 2]]| -> Vec<[f32; 2]> {
        plain
            .iter()
            .zip(mirrored)
            .map(|(a, b)| [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0])
            .collect()
    };
    let plain_validation = view_logits(&split.validation, 0);
    let averaged_validation = mean(&plain_validation, &view_logits(&split.validation, 1));
    let calibrated = |logits: &[[f32; 2]]| {
        let temperature = calibrate::fit_temperature(logits, &validation_labels);
        calibrate::scores(logits, &validation_labels, temperature)
    };
    let plain = calibrated(&plain_validation);
    let with_mirror = calibrated(&averaged_validation);
    let average_mirror = mirror_pays(&plain, &with_mirror);
    eprintln!(
        "validation, calibrated: {:.2}% / log loss {:.4} as the photos are, {:.2}% / {:.4} \
         averaged with their mirror images: {}",
        plain.accuracy * 100.0,
        plain.log_loss,
        with_mirror.accuracy * 100.0,
        with_mirror.log_loss,
        if average_mirror {
            "the model will average (twice the work per photo)"
        } else {
            "not worth twice the work"
        }
    );
    let validation_logits = if average_mirror {
        averaged_validation
    } else {
        plain_validation
    };
    let temperature = calibrate::fit_temperature(&validation_logits, &validation_labels);
    let test_logits = if average_mirror {
        mean(&view_logits(&split.test, 0), &view_logits(&split.test, 1))
    } else {
        view_logits(&split.test, 0)
    };
    let test_labels = data.run.packed.labels(&split.test);
    let test_scores =
        |t: f64| (!split.test.is_empty()).then(|| calibrate::scores(&test_logits, &test_labels, t));
    let mut figures = TransferFigures {
        best_epoch: fitted.best_epoch,
        temperature,
        validation_before_calibration: calibrate::scores(
            &validation_logits,
            &validation_labels,
            1.0,
        ),
        validation_after_calibration: calibrate::scores(
            &validation_logits,
            &validation_labels,
            temperature,
        ),
        test_before_calibration: test_scores(1.0),
        test_after_calibration: test_scores(temperature),
        validation_as_they_are: Some(plain),
        validation_with_mirror: Some(with_mirror),
        average_mirror,
        storage: Vec::new(),
        train_photos: split.train.len(),
        validation_photos: split.validation.len(),
        test_photos: split.test.len(),
    };
    eprintln!(
        "calibration: temperature {temperature:.3}; validation log loss {:.4} -> {:.4}, ECE {:.4} -> {:.4}",
        figures.validation_before_calibration.log_loss,
        figures.validation_after_calibration.log_loss,
        figures.validation_before_calibration.ece,
        figures.validation_after_calibration.ece,
    );

    let network = EfficientNetClassifier {
        backbone: fitted.network.backbone,
        head: fitted.network.head.with_temperature(temperature),
    };
    let best = config.run.join("best.bpk");
    let mut header = ModelHeader::new(config.architecture(), config.preprocess());
    header.weights_dtype = WeightsDtype::F32;
    header.average_mirror = average_mirror;
    let mut summary = TrainingSummary {
        dataset: config.data.display().to_string(),
        epochs: fitted.best_epoch,
        train_images: split.train.len(),
        validation_images: split.validation.len(),
        validation_accuracy: Some(fitted.best.accuracy),
        notes: describe(config, &data, &figures),
    };
    header.training = Some(summary.clone());
    let bytes = ModelFile::from_network(header, &Network::EfficientNet(network))?.to_bytes();
    write_atomic(&best, &bytes).map_err(io_error(&best))?;

    // The --out file is one of these stored forms: written from the bytes measured here
    // rather than exported a second time.
    let mut out_bytes = None;
    if !split.test.is_empty() {
        for dtype in [WeightsDtype::F32, WeightsDtype::F16, WeightsDtype::Int8] {
            let path = config.run.join(format!("best-{}.bpk", dtype.name()));
            let stored = match dtype {
                WeightsDtype::F32 => bytes.clone(),
                _ => export::export(&best, &path, dtype)?.bytes,
            };
            let classifier = catdog_model::Classifier::load(&stored, &data.device)?;
            let test = score::score(
                |images| classifier.batch_logits(images),
                &data.device,
                &data.run.packed,
                &split.test,
                &config.preprocess().normalization,
            );
            eprintln!(
                "stored as {}: {} bytes; test split ({} photos) accuracy {:.2}%, log loss {:.4}",
                dtype.name(),
                stored.len(),
                split.test.len(),
                test.accuracy * 100.0,
                test.log_loss
            );
            figures.storage.push(StorageFigures {
                dtype,
                bytes: stored.len(),
                test,
            });
            if dtype == config.out_precision {
                out_bytes = Some(stored);
            }
        }
    }
    let mut exported = None;
    if let Some(out) = &config.out {
        let written = match out_bytes {
            Some(bytes) => {
                write_atomic(out, &bytes).map_err(io_error(out))?;
                bytes
            }
            None => export::export(&best, out, config.out_precision)?.bytes,
        };
        exported = Some((out.clone(), written.len()));
    }
    summary.notes = describe(config, &data, &figures);
    let report = TrainReport {
        summary,
        epochs_run: fitted.history.len(),
        stopped_early: fitted.stopped_early,
        skipped: data.run.packed.skipped.len(),
        duplicates_removed: split.duplicates.len(),
        backend: data.backend,
        seconds: started.elapsed().as_secs_f64(),
        best_model: best,
        exported,
        transfer: Some(figures),
    };
    let path = config.run.join("summary.json");
    let json = serde_json::to_vec_pretty(&report).expect("a report always serialises");
    write_atomic(&path, &json).map_err(io_error(&path))?;
    Ok(report)
}

/// The one rule for test-time mirroring: worth twice the work per photo only if, calibrated,
/// it lowers the validation log loss without losing accuracy.
pub fn mirror_pays(plain: &CalibrationScores, averaged: &CalibrationScores) -> bool {
    averaged.log_loss < plain.log_loss && averaged.accuracy >= plain.accuracy
}

fn describe(config: &TrainConfig, data: &TransferData, figures: &TransferFigures) -> String {
    format!(
        "{} (ImageNet) with {} unfrozen blocks and head {:?}; input {:?}; seeded ({}) \
         stratified split: {} train, {} validation, {} test photos; {:?} lr {} weight decay {} \
         batch {}; mirrored copies {}; best epoch {} by validation log loss; averaged with the \
         mirror image: {}; temperature {:.3} fitted on validation; test split through the \
         stored file: {}; backend {}",
        variant(config).name(),
        config.unfreeze,
        config.head,
        config.preprocess(),
        config.seed,
        figures.train_photos,
        figures.validation_photos,
        figures.test_photos,
        config.optimizer,
        config.learning_rate,
        config.weight_decay,
        config.batch_size,
        if config.augment.flip { "on" } else { "off" },
        figures.best_epoch,
        if figures.average_mirror { "yes" } else { "no" },
        figures.temperature,
        figures
            .storage
            .iter()
            .map(|stored| format!(
                "{} accuracy {:.4} log loss {:.4}",
                stored.dtype.name(),
                stored.test.accuracy,
                stored.test.log_loss
            ))
            .collect::<Vec<_>>()
            .join(", "),
        data.backend,
    )
}

//! A whole transfer run: the trunk's outputs prepared ([`crate::transfer::prepare`]), the head
//! (and tail) fitted, then everything decided after training, on the validation split only:
//! whether to average each photo with its mirror image, and the calibration temperature; the
//! calibrated network saved, each stored form (f32, f16, int8) measured once on the test
//! split through its own file, the way the page runs it, and `--out` written.

use std::time::Instant;

use catdog_model::network::EfficientNetClassifier;
use catdog_model::weights::{TrainingSummary, WeightsDtype};
use catdog_model::{ModelFile, ModelHeader, Network};

use crate::calibrate::{self, CalibrationScores};
use crate::config::{
    StorageFigures, TrainConfig, TrainError, TrainReport, TransferFigures, io_error,
};
use crate::export;
use crate::files::write_atomic;
use crate::runlog::RunLog;
use crate::score;
use crate::transfer::{TransferData, evaluation_logits, fit, prepare, variant};

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
    let average_mirror = config.mirror_average && mirror_pays(&plain, &with_mirror);
    eprintln!(
        "validation, calibrated: {:.2}% / log loss {:.4} as the photos are, {:.2}% / {:.4} \
         averaged with their mirror images: {}",
        plain.accuracy * 100.0,
        plain.log_loss,
        with_mirror.accuracy * 100.0,
        with_mirror.log_loss,
        match (average_mirror, config.mirror_average) {
            (true, _) => "the model will average (twice the work per photo)",
            (false, true) => "not worth twice the work",
            (false, false) => "not averaged (--no-mirror-average)",
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
                _ => export::export(&best, &path, dtype, Default::default())?.bytes,
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
            None => export::export(&best, out, config.out_precision, Default::default())?.bytes,
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

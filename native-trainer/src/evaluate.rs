//! Using a trained model: `evaluate` (accuracy, log loss, per-class precision and recall,
//! confusion matrix, worst mistakes), `predict`, `explain` (a Grad-CAM heatmap over the
//! photo), Kaggle's `submission`, and `inspect` (a contact sheet of a dataset before training
//! on it). They share loading a model, scoring and the pictures, so they share a file; each
//! is under 120 lines.

use std::path::{Path, PathBuf};

use catdog_model::preprocess::decode_photo;
use catdog_model::{Backend, Classifier, Explanation, Label, Prediction};
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use serde::Serialize;

use crate::dataset::{DatasetError, PackedPhotos};
use crate::files::write_atomic;
use crate::photos::{PhotoRef, PhotoSet};
use crate::plot::{self, Tile};
use crate::score::{self, Scores};

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Model {
        path: PathBuf,
        source: catdog_model::WeightsError,
    },
    #[error("{path}: {reason}")]
    Photo { path: PathBuf, reason: String },
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{0}")]
    Backend(#[from] catdog_model::BackendError),
    #[error("{0}")]
    Run(#[from] crate::config::TrainError),
    #[error("{run}: the run has no {} photos (trained with that split at 0)", split.name())]
    NoSplit { run: PathBuf, split: HeldOut },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> EvaluateError + use<> {
    let path = path.to_path_buf();
    move |source| EvaluateError::Io { path, source }
}

/// Loads a weight file onto a backend (the default CPU one unless named).
pub fn load_model(path: &Path, backend: Option<Backend>) -> Result<Classifier, EvaluateError> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    let device = backend.unwrap_or(Backend::DEFAULT_CPU).device()?;
    Classifier::load(&bytes, &device).map_err(|source| EvaluateError::Model {
        path: path.to_path_buf(),
        source,
    })
}

/// The longest side of the picture `explain` writes: large enough to see the animal, small
/// enough for a camera's 24-megapixel photo to give a PNG of a few megabytes at most.
const EXPLAIN_SIDE: u32 = 1024;

/// Classifies a photo and writes it with its Grad-CAM heatmap laid over it to `out` (PNG).
pub fn explain(
    classifier: &Classifier,
    photo: &Path,
    out: &Path,
) -> Result<Explanation, EvaluateError> {
    let bytes = std::fs::read(photo).map_err(io_error(photo))?;
    let refused = |reason: String| EvaluateError::Photo {
        path: photo.to_path_buf(),
        reason,
    };
    let explanation = classifier
        .explain_blocking(&bytes)
        .map_err(|error| refused(error.to_string()))?;
    let image = decode_photo(&bytes).map_err(|error| refused(error.to_string()))?;
    let (width, height) = image.dimensions();
    let image = if width.max(height) > EXPLAIN_SIDE {
        let scale = EXPLAIN_SIDE as f32 / width.max(height) as f32;
        let side = |pixels: u32| ((pixels as f32 * scale).round() as u32).max(1);
        image::imageops::resize(
            &image,
            side(width),
            side(height),
            image::imageops::FilterType::Triangle,
        )
    } else {
        image
    };
    let png = catdog_model::explain::rgb_png(&explanation.heatmap.overlay(&image));
    write_atomic(out, &png).map_err(io_error(out))?;
    Ok(explanation)
}

/// Precision and recall of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScores {
    pub class: &'static str,
    pub photos: u64,
    pub precision: f64,
    pub recall: f64,
}

/// What `evaluate` measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub n: usize,
    pub accuracy: f64,
    pub log_loss: f64,
    pub classes: Vec<ClassScores>,
    /// `confusion[actual][predicted]`, cat = 0, dog = 1.
    pub confusion: [[u64; 2]; 2],
    /// The run's split scored (`validation` or `test`), or none for every photo given.
    pub split: Option<&'static str>,
    /// Unusable files in the photos' folder: with a run's split, in no split at all.
    pub skipped: usize,
    /// `skipped.tsv`: each unusable file and why.
    pub skipped_report: PathBuf,
    pub confusion_png: PathBuf,
    pub mistakes_png: PathBuf,
}

/// The photos `evaluate` scores.
#[derive(Debug, Clone, Copy)]
pub enum Photos<'a> {
    /// Every labelled photo in a folder or zip.
    All(&'a Path),
    /// One held-out split of a training run (its folder): the same photos, seed and split
    /// the run had, whatever input size or crop the model file sees them at.
    Held { run: &'a Path, split: HeldOut },
}

/// A run's split that no training saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HeldOut {
    /// What made the run's decisions (best epoch, calibration): what new decisions look at.
    Validation,
    /// Measured once, at the end.
    Test,
}

impl HeldOut {
    pub fn name(self) -> &'static str {
        match self {
            HeldOut::Validation => "validation",
            HeldOut::Test => "test",
        }
    }
}

/// The photos of `photos`, packed as the model sees them, and which of them to score.
fn photos_to_score(
    photos: Photos,
    preprocess: &catdog_model::Preprocess,
    cache: Option<&Path>,
) -> Result<(PhotoSet, PackedPhotos, Vec<usize>), EvaluateError> {
    match photos {
        Photos::All(data) => {
            let (set, packed) = PackedPhotos::load_labelled(data, preprocess, cache)?;
            let indices = (0..packed.len()).collect();
            Ok((set, packed, indices))
        }
        Photos::Held { run, split } => {
            let config = crate::config::TrainConfig::read(run)?;
            // The run's own cache unless told otherwise: its packing is there already.
            let cache = cache.or(config.cache.as_deref());
            let (set, packed) =
                PackedPhotos::load_labelled(&config.data, &config.preprocess(), cache)?;
            // The split as the run made it, from its own packing (the near-copy check hashes
            // the run's input); the photos are in the same order at any other preprocessing.
            let held = crate::split::Split::new(&packed, config.split_spec());
            let indices = match split {
                HeldOut::Validation => held.validation,
                HeldOut::Test => held.test,
            };
            if indices.is_empty() {
                return Err(EvaluateError::NoSplit {
                    run: run.to_path_buf(),
                    split,
                });
            }
            if *preprocess == config.preprocess() {
                return Ok((set, packed, indices));
            }
            // The same photos in the same order at any size (which photos decode does not
            // depend on it); checked by name, since the indices are the run's.
            let names: Vec<String> = packed.entries.iter().map(|e| e.name.clone()).collect();
            let packed = PackedPhotos::load(&set, preprocess, cache)?;
            if packed.entries.iter().map(|e| &e.name).ne(names.iter()) {
                return Err(EvaluateError::Photo {
                    path: config.data,
                    reason: "the photos changed since the run packed them".into(),
                });
            }
            Ok((set, packed, indices))
        }
    }
}

/// Evaluates `model` on labelled photos, writing `confusion.png` and `mistakes.png` (the
/// worst mistakes, most confident first) into `report_dir`.
pub fn evaluate(
    classifier: &Classifier,
    photos: Photos,
    report_dir: &Path,
    cache: Option<&Path>,
) -> Result<Evaluation, EvaluateError> {
    let preprocess = classifier.header().preprocess;
    let (set, packed, indices) = photos_to_score(photos, &preprocess, cache)?;
    let logits = score::logits(
        |images| classifier.batch_logits(images),
        classifier.device(),
        &packed,
        &indices,
        &preprocess.normalization,
    );
    let labels = packed.labels(&indices);
    let Scores { accuracy, log_loss } = score::scores_from_logits(&logits, &labels);
    let predictions: Vec<Prediction> = logits
        .iter()
        .map(|pair| Prediction::from_logits(pair[0], pair[1]))
        .collect();
    let mut confusion = [[0u64; 2]; 2];
    for (prediction, label) in predictions.iter().zip(&labels) {
        confusion[label.index()][prediction.label.index()] += 1;
    }
    let classes = [Label::Cat, Label::Dog]
        .into_iter()
        .map(|label| {
            let i = label.index();
            let predicted = confusion[0][i] + confusion[1][i];
            let actual = confusion[i][0] + confusion[i][1];
            ClassScores {
                class: label.name(),
                photos: actual,
                precision: ratio(confusion[i][i], predicted),
                recall: ratio(confusion[i][i], actual),
            }
        })
        .collect();

    std::fs::create_dir_all(report_dir).map_err(io_error(report_dir))?;
    let skipped_report = report_dir.join("skipped.tsv");
    packed
        .write_skipped_report(&skipped_report)
        .map_err(io_error(&skipped_report))?;
    let confusion_png = report_dir.join("confusion.png");
    let counts: Vec<Vec<u64>> = confusion.iter().map(|row| row.to_vec()).collect();
    let title = format!(
        "{} photos, accuracy {:.2}%",
        indices.len(),
        accuracy * 100.0
    );
    plot::save_png(
        &plot::confusion_matrix(&title, &["cat", "dog"], &counts),
        &confusion_png,
    )
    .map_err(io_error(&confusion_png))?;

    // The worst mistakes: wrong, and most sure of it.
    let mut mistakes: Vec<usize> = (0..predictions.len())
        .filter(|&i| predictions[i].label != labels[i])
        .collect();
    let wrong_confidence = |i: usize| match labels[i] {
        Label::Cat => predictions[i].dog,
        Label::Dog => predictions[i].cat,
    };
    mistakes.sort_by(|&a, &b| wrong_confidence(b).total_cmp(&wrong_confidence(a)));
    mistakes.truncate(24);
    let mut reader = set.reader().map_err(DatasetError::from)?;
    let tiles: Vec<Tile> = mistakes
        .iter()
        .map(|&i| {
            let entry = &packed.entries[indices[i]];
            let photo = PhotoRef {
                name: entry.name.clone(),
                label: entry.label,
            };
            // The original photo makes a better thumbnail than the network's small input.
            let image = reader
                .read(&photo)
                .ok()
                .and_then(|bytes| decode_photo(&bytes).ok())
                .unwrap_or_else(|| packed.image(indices[i]));
            Tile {
                image,
                caption: format!(
                    "{}\nis {}, {:.0}% {}",
                    short_name(&entry.name),
                    labels[i].name(),
                    wrong_confidence(i) * 100.0,
                    predictions[i].label.name()
                ),
                border: Some([213, 94, 0]),
            }
        })
        .collect();
    let mistakes_png = report_dir.join("mistakes.png");
    let title = format!(
        "worst {} of {} mistakes",
        tiles.len(),
        predictions
            .iter()
            .zip(&labels)
            .filter(|(p, l)| p.label != **l)
            .count()
    );
    plot::save_png(&plot::contact_sheet(&title, &tiles, 6, 160), &mistakes_png)
        .map_err(io_error(&mistakes_png))?;

    Ok(Evaluation {
        n: indices.len(),
        accuracy,
        log_loss,
        classes,
        confusion,
        split: match photos {
            Photos::All(_) => None,
            Photos::Held { split, .. } => Some(split.name()),
        },
        skipped: packed.skipped.len(),
        skipped_report,
        confusion_png,
        mistakes_png,
    })
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

fn short_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// One photo's prediction, or why it has none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhotoPrediction {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cat: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dog: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Classifies files and every file in folders (recursively), in order.
pub fn predict(
    classifier: &Classifier,
    paths: &[PathBuf],
) -> Result<Vec<PhotoPrediction>, EvaluateError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let set = PhotoSet::open(path).map_err(DatasetError::from)?;
            files.extend(set.photos.iter().map(|photo| path.join(&photo.name)));
        } else {
            files.push(path.clone());
        }
    }
    let bar = crate::progress::progress_bar(files.len() as u64, "classifying");
    let predictions = files
        .iter()
        .map(|file| {
            let result = std::fs::read(file)
                .map_err(|error| error.to_string())
                .and_then(|bytes| classifier.input(&bytes).map_err(|error| error.to_string()))
                .and_then(|input| {
                    classifier
                        .classify_inputs(std::slice::from_ref(&input))
                        .map_err(|error| error.to_string())
                });
            bar.inc(1);
            let path = file.display().to_string();
            match result {
                Ok(predictions) => PhotoPrediction {
                    path,
                    label: Some(predictions[0].label.name()),
                    cat: Some(predictions[0].cat),
                    dog: Some(predictions[0].dog),
                    error: None,
                },
                Err(error) => PhotoPrediction {
                    path,
                    label: None,
                    cat: None,
                    dog: None,
                    error: Some(error),
                },
            }
        })
        .collect();
    bar.finish_and_clear();
    Ok(predictions)
}

/// Kaggle's bounds on submitted probabilities: a confident mistake costs at most ln(200).
pub const SUBMISSION_CLIP: (f32, f32) = (0.005, 0.995);

/// What `submission` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub rows: usize,
    /// Photos that could not be read or decoded; they get 0.5.
    pub unreadable: Vec<String>,
}

/// Writes Kaggle's `id,label` CSV for the test photos in `test_dir` (`1.jpg`, `2.jpg`, ...):
/// the dog probability, clipped to [`SUBMISSION_CLIP`], rows sorted by id.
pub fn submission(
    classifier: &Classifier,
    test_dir: &Path,
    out: &Path,
) -> Result<Submission, EvaluateError> {
    let set = PhotoSet::open(test_dir).map_err(DatasetError::from)?;
    let mut rows: Vec<(u64, String)> = Vec::new();
    let mut unreadable = Vec::new();
    let paths: Vec<PathBuf> = set
        .photos
        .iter()
        .filter(|photo| id_of(&photo.name).is_some())
        .map(|photo| test_dir.join(&photo.name))
        .collect();
    for prediction in predict(classifier, &paths)? {
        let id = id_of(&prediction.path).expect("filtered on ids");
        let dog = match prediction.dog {
            Some(dog) => dog.clamp(SUBMISSION_CLIP.0, SUBMISSION_CLIP.1),
            None => {
                unreadable.push(format!(
                    "{}: {}",
                    prediction.path,
                    prediction.error.unwrap_or_default()
                ));
                0.5
            }
        };
        rows.push((id, format!("{dog:.4}")));
    }
    rows.sort_by_key(|(id, _)| *id);
    let mut csv = String::from("id,label\n");
    for (id, label) in &rows {
        csv.push_str(&format!("{id},{label}\n"));
    }
    write_atomic(out, csv.as_bytes()).map_err(io_error(out))?;
    Ok(Submission {
        rows: rows.len(),
        unreadable,
    })
}

/// The numeric id of a Kaggle test photo (`.../123.jpg` → 123).
fn id_of(path: &str) -> Option<u64> {
    let name = path.rsplit(['/', '\\']).next()?;
    name.split('.').next()?.parse().ok()
}

/// What `inspect` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    pub layout: crate::photos::Layout,
    pub cats: usize,
    pub dogs: usize,
    pub unlabelled: usize,
    /// Sampled files that did not decode, with the reason.
    pub unreadable: Vec<String>,
}

/// Counts a dataset's classes and draws `samples` random photos (seeded) with their labels.
pub fn inspect(
    data: &Path,
    out: &Path,
    samples: usize,
    seed: u64,
) -> Result<Inspection, EvaluateError> {
    let set = PhotoSet::open(data).map_err(DatasetError::from)?;
    let (cats, dogs) = set.class_counts();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let chosen: Vec<&PhotoRef> = set.photos.choose_multiple(&mut rng, samples).collect();
    let mut reader = set.reader().map_err(DatasetError::from)?;
    let mut tiles = Vec::new();
    let mut unreadable = Vec::new();
    for photo in chosen {
        match reader
            .read(photo)
            .map_err(|error| error.to_string())
            .and_then(|bytes| decode_photo(&bytes).map_err(|error| error.to_string()))
        {
            Ok(image) => tiles.push(Tile {
                caption: format!(
                    "{}\n{}",
                    photo.label.map_or("unlabelled", Label::name),
                    short_name(&photo.name)
                ),
                border: photo.label.map(|label| match label {
                    Label::Cat => [230, 159, 0],
                    Label::Dog => [0, 114, 178],
                }),
                image,
            }),
            Err(reason) => unreadable.push(format!("{}: {reason}", set.display_name(photo))),
        }
    }
    let title = format!(
        "{}: {cats} cats, {dogs} dogs ({})",
        data.display(),
        set.layout
    );
    plot::save_png(&plot::contact_sheet(&title, &tiles, 6, 160), out).map_err(io_error(out))?;
    Ok(Inspection {
        layout: set.layout,
        cats,
        dogs,
        unlabelled: set.photos.len() - cats - dogs,
        unreadable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kaggle_ids_come_from_the_file_name() {
        assert_eq!(id_of("test1/123.jpg"), Some(123));
        assert_eq!(id_of("/a/b/7.jpeg"), Some(7));
        assert_eq!(id_of("test1/cat.1.jpg"), None);
    }
}

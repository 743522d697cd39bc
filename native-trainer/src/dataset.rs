//! Photos on disk to labelled, preprocessed examples.

use std::path::{Path, PathBuf};

use catdog_model::{InputTensor, Label, Preprocess};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;

/// One preprocessed photo and its label.
#[derive(Debug, Clone)]
pub struct Example {
    pub input: InputTensor,
    pub label: Label,
}

/// A photo that could not be used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedFile {
    pub path: PathBuf,
    pub reason: String,
}

/// Labelled photos, split into training and validation.
#[derive(Debug, Default)]
pub struct Dataset {
    pub train: Vec<Example>,
    pub validation: Vec<Example>,
    pub skipped: Vec<SkippedFile>,
}

/// The label a Kaggle-style file name gives (`cat.123.jpg`, `dog.7.jpg`), if any.
pub fn label_from_name(path: &Path) -> Option<Label> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    if name.starts_with("cat.") {
        Some(Label::Cat)
    } else if name.starts_with("dog.") {
        Some(Label::Dog)
    } else {
        None
    }
}

/// Lists the labelled photos of a Kaggle-layout folder (`cat.N.jpg`, `dog.N.jpg`), sorted.
pub fn list_photos(dir: &Path) -> std::io::Result<Vec<(PathBuf, Label)>> {
    let mut photos = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if let Some(label) = label_from_name(&path) {
            photos.push((path, label));
        }
    }
    photos.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(photos)
}

impl Dataset {
    /// Loads up to `limit` photos (half cats, half dogs) from `dir`, shuffled with `seed`, and
    /// holds out `validation_fraction` of each class. Unreadable photos are skipped and listed.
    pub fn load(
        dir: &Path,
        preprocess: &Preprocess,
        limit: Option<usize>,
        validation_fraction: f64,
        seed: u64,
    ) -> std::io::Result<Self> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut dataset = Dataset::default();
        // One listing of the folder (tens of thousands of entries), split by class.
        let listed = list_photos(dir)?;
        for label in [Label::Cat, Label::Dog] {
            let mut photos: Vec<PathBuf> = listed
                .iter()
                .filter(|(_, l)| *l == label)
                .map(|(path, _)| path.clone())
                .collect();
            photos.shuffle(&mut rng);
            if let Some(limit) = limit {
                photos.truncate(limit / 2);
            }
            let (examples, skipped) = decode_all(&photos, label, preprocess);
            dataset.skipped.extend(skipped);
            let validation = (examples.len() as f64 * validation_fraction).round() as usize;
            let mut examples = examples.into_iter();
            dataset
                .validation
                .extend(examples.by_ref().take(validation));
            dataset.train.extend(examples);
        }
        dataset.train.shuffle(&mut rng);
        Ok(dataset)
    }
}

/// Decodes photos on every core, with a progress bar.
fn decode_all(
    paths: &[PathBuf],
    label: Label,
    preprocess: &Preprocess,
) -> (Vec<Example>, Vec<SkippedFile>) {
    let progress = progress_bar(paths.len() as u64, &format!("decoding {}s", label.name()));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = paths.len().div_ceil(threads).max(1);
    let results: Vec<Result<Example, SkippedFile>> = std::thread::scope(|scope| {
        let workers: Vec<_> = paths
            .chunks(chunk)
            .map(|chunk| {
                let progress = progress.clone();
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|path| {
                            let result = decode_one(path, label, preprocess);
                            progress.inc(1);
                            result
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("decoder thread panicked"))
            .collect()
    });
    progress.finish();
    let mut examples = Vec::new();
    let mut skipped = Vec::new();
    for result in results {
        match result {
            Ok(example) => examples.push(example),
            Err(file) => skipped.push(file),
        }
    }
    (examples, skipped)
}

fn decode_one(path: &Path, label: Label, preprocess: &Preprocess) -> Result<Example, SkippedFile> {
    let skip = |reason: String| SkippedFile {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|error| skip(error.to_string()))?;
    let input = preprocess
        .apply(&bytes)
        .map_err(|error| skip(error.to_string()))?;
    Ok(Example { input, label })
}

/// A progress bar with rate and ETA.
pub fn progress_bar(len: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>16} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {prefix}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

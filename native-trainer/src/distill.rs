//! Knowledge distillation: a student (the CNN, a whole backbone, or a frozen backbone's head on
//! its cached features) learns from the accurate model's probabilities as well as from the
//! labels (Hinton, Vinyals and Dean, 2015).
//!
//! The teacher, a weight file, runs once over every photo of the data (preprocessed as its own
//! header says) and its logits are cached on disk shard by shard, keyed by the file's bytes and
//! the photos: an interrupted pass continues where it stopped, and a resumed run or a second
//! student reads them in seconds. Each training step then adds, to the cross-entropy against
//! the labels, the cross-entropy against the teacher's probabilities, both softened by the same
//! temperature (times its square, so that term's gradients keep their size as it changes).
//! The teacher's probabilities are of the photo as it is while the student sees an augmented
//! crop of it: what the photo shows, not what the crop shows, is what it should learn.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use catdog_model::{Classifier, ModelFile};
use serde::{Deserialize, Serialize};

use crate::calibrate;
use crate::dataset::{DatasetError, PackedPhotos, fnv1a};
use crate::features::{cached_pass, floats};
use crate::fit::cross_entropy;
use crate::photos::PhotoSet;
use crate::progress::progress_bar;

#[derive(Debug, thiserror::Error)]
pub enum DistillError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a usable teacher: {source}")]
    Model {
        path: PathBuf,
        source: catdog_model::WeightsError,
    },
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{teacher}: the teacher's pass over the photos has no {photo}")]
    Missing { teacher: PathBuf, photo: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DistillError + use<> {
    let path = path.to_path_buf();
    move |source| DistillError::Io { path, source }
}

/// What the student learns from, saved in the run's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distill {
    /// The teacher's weight file.
    pub teacher: PathBuf,
    /// The share of the loss that comes from the teacher (the rest from the labels).
    pub weight: f64,
    /// Both distributions are softened by this temperature in the teacher's term.
    pub temperature: f64,
}

impl Distill {
    /// Hinton et al.'s usual mix: half from the teacher, softened at temperature 2, which
    /// keeps some of the teacher's doubt where it is sure (p = 0.99 becomes 0.91).
    pub const WEIGHT: f64 = 0.5;
    pub const TEMPERATURE: f64 = 2.0;

    /// Refuses a teacher file that is not a whole weight file, before a run is started.
    pub fn check(&self) -> Result<(), DistillError> {
        let bytes = std::fs::read(&self.teacher).map_err(io_error(&self.teacher))?;
        ModelFile::parse(&bytes).map_err(|source| DistillError::Model {
            path: self.teacher.clone(),
            source,
        })?;
        Ok(())
    }
}

/// The teacher's logits for every photo of a run's pack, and how to learn from them.
pub struct Teacher {
    /// (cat, dog) logits, indexed like the student's pack.
    logits: Vec<[f32; 2]>,
    weight: f64,
    temperature: f64,
}

impl Teacher {
    /// Runs the teacher over every photo of `student`'s pack (or reads its cached logits),
    /// and says how often it agrees with the labels of the run's training and validation
    /// photos: a teacher that disagrees with them has nothing to teach.
    pub fn load(
        distill: &Distill,
        data: &Path,
        cache: Option<&Path>,
        student: &PackedPhotos,
        splits: [(&str, &[usize]); 2],
        device: &Device,
    ) -> Result<Self, DistillError> {
        let path = &distill.teacher;
        let bytes = std::fs::read(path).map_err(io_error(path))?;
        let classifier =
            Classifier::load(&bytes, device).map_err(|source| DistillError::Model {
                path: path.clone(),
                source,
            })?;
        let preprocess = classifier.header().preprocess;
        let set = PhotoSet::open_labelled(data).map_err(DatasetError::from)?;
        let packed = PackedPhotos::load(&set, &preprocess, cache)?;
        let dir = cache.map(|cache| {
            // The file's bytes name it, as `features::weights_id` does for a backbone.
            let mut key = format!("teacher v1 {:016x}", fnv1a(&bytes)).into_bytes();
            for entry in &packed.entries {
                key.extend_from_slice(entry.name.as_bytes());
            }
            cache.join(format!("teacher-{:016x}", fnv1a(&key)))
        });
        let bar = progress_bar(packed.len() as u64, "teacher logits");
        let values = cached_pass(
            &packed,
            &preprocess.normalization,
            2,
            dir.as_deref(),
            &bar,
            device,
            |images| floats(classifier.batch_logits(images).into_data()),
        )
        .map_err(io_error(dir.as_deref().unwrap_or(path)))?;
        bar.finish_and_clear();
        let by_name: HashMap<&str, [f32; 2]> = packed
            .entries
            .iter()
            .zip(values.chunks_exact(2))
            .map(|(entry, pair)| (entry.name.as_str(), [pair[0], pair[1]]))
            .collect();
        let logits = student
            .entries
            .iter()
            .map(|entry| {
                by_name
                    .get(entry.name.as_str())
                    .copied()
                    .ok_or_else(|| DistillError::Missing {
                        teacher: path.clone(),
                        photo: entry.name.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let teacher = Teacher {
            logits,
            weight: distill.weight,
            temperature: distill.temperature,
        };
        let agreement: Vec<String> = splits
            .iter()
            .filter(|(_, indices)| !indices.is_empty())
            .map(|(name, indices)| {
                let scores =
                    calibrate::scores(&teacher.gather(indices), &student.labels(indices), 1.0);
                format!(
                    "{:.2} % of the {name} photos (log loss {:.4})",
                    100.0 * scores.accuracy,
                    scores.log_loss
                )
            })
            .collect();
        eprintln!(
            "teacher {}: right on {}; weight {}, temperature {}",
            path.display(),
            agreement.join(", "),
            teacher.weight,
            teacher.temperature
        );
        Ok(teacher)
    }

    fn gather(&self, indices: &[usize]) -> Vec<[f32; 2]> {
        indices.iter().map(|&index| self.logits[index]).collect()
    }

    /// The teacher's probabilities for `indices`, softened by the temperature, `[n, 2]`.
    fn soft_targets(&self, indices: &[usize], device: &Device) -> Tensor<2> {
        let t = self.temperature as f32;
        let values: Vec<f32> = self
            .gather(indices)
            .iter()
            .flat_map(|&[cat, dog]| {
                let dog = 1.0 / (1.0 + ((cat - dog) / t).exp());
                [1.0 - dog, dog]
            })
            .collect();
        Tensor::from_data(TensorData::new(values, [indices.len(), 2]), device)
    }

    /// A lesson's training loss: the cross-entropy against the labels, mixed with the
    /// teacher's term where there is a teacher.
    pub fn training_loss(
        teacher: Option<&Teacher>,
        logits: Tensor<2>,
        labels: &[i64],
        indices: &[usize],
    ) -> Tensor<1> {
        let hard = cross_entropy(logits.clone(), labels);
        match teacher {
            Some(teacher) => teacher.loss(hard, logits, indices),
            None => hard,
        }
    }

    /// The training loss of a batch: `hard` (the cross-entropy against the labels) mixed with
    /// the cross-entropy between the teacher's and the student's softened probabilities.
    pub fn loss(&self, hard: Tensor<1>, logits: Tensor<2>, indices: &[usize]) -> Tensor<1> {
        let t = self.temperature;
        let targets = self.soft_targets(indices, &logits.device());
        let soft = (targets * log_softmax(logits / t, 1))
            .sum_dim(1)
            .mean()
            .neg()
            * (t * t);
        hard * (1.0 - self.weight) + soft * self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn teacher(logits: Vec<[f32; 2]>, weight: f64, temperature: f64) -> Teacher {
        Teacher {
            logits,
            weight,
            temperature,
        }
    }

    fn tensor(values: &[[f32; 2]], device: &Device) -> Tensor<2> {
        let flat: Vec<f32> = values.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [values.len(), 2]), device)
    }

    fn value(tensor: Tensor<1>) -> f64 {
        tensor.into_scalar::<f32>() as f64
    }

    #[test]
    fn the_teachers_term_is_least_where_the_student_agrees_with_the_teacher() {
        let device = Device::default();
        let teacher_logits = vec![[2.0, -1.0], [-0.5, 3.0], [0.2, 0.1]];
        let t = 2.0;
        let only_teacher = teacher(teacher_logits.clone(), 1.0, t);
        let zero = Tensor::<1>::zeros([1], &device);
        let at = |logits: &[[f32; 2]]| {
            value(only_teacher.loss(zero.clone(), tensor(logits, &device), &[0, 1, 2]))
        };
        // Where the student's logits are the teacher's, the term is T² times the entropy of
        // the teacher's softened probabilities: its minimum.
        let entropy: f64 = teacher_logits
            .iter()
            .map(|&[cat, dog]| {
                let dog = 1.0 / (1.0 + (((cat - dog) as f64) / t).exp());
                -(dog * dog.ln() + (1.0 - dog) * (1.0 - dog).ln())
            })
            .sum::<f64>()
            / 3.0;
        let matched = at(&teacher_logits);
        assert!(
            (matched - t * t * entropy).abs() < 1e-5,
            "{matched} against {entropy}"
        );
        // Only the difference of the logits matters, and moving it either way costs.
        let shifted: Vec<[f32; 2]> = teacher_logits
            .iter()
            .map(|&[c, d]| [c + 5.0, d + 5.0])
            .collect();
        assert!((at(&shifted) - matched).abs() < 1e-5);
        for delta in [-1.0, 1.0] {
            let moved: Vec<[f32; 2]> = teacher_logits
                .iter()
                .map(|&[c, d]| [c + delta, d])
                .collect();
            assert!(at(&moved) > matched + 1e-3, "delta {delta}");
        }
        // A student sure of the teacher's answer still pays for ignoring its doubt.
        let overconfident = [[20.0, -20.0], [-20.0, 20.0], [20.0, -20.0]];
        assert!(at(&overconfident) > matched + 1.0);
    }

    #[test]
    fn the_weight_mixes_the_labels_term_and_the_teachers() {
        let device = Device::default();
        let logits = [[1.0, -1.0], [0.0, 2.0]];
        let hard = Tensor::<1>::from_data(TensorData::new(vec![0.7f32], [1]), &device);
        let soft_only = value(teacher(vec![[3.0, 0.0], [0.0, 1.0]], 1.0, 2.0).loss(
            Tensor::zeros([1], &device),
            tensor(&logits, &device),
            &[0, 1],
        ));
        let mixed = value(teacher(vec![[3.0, 0.0], [0.0, 1.0]], 0.25, 2.0).loss(
            hard,
            tensor(&logits, &device),
            &[0, 1],
        ));
        assert!((mixed - (0.75 * 0.7 + 0.25 * soft_only)).abs() < 1e-5);
    }
}

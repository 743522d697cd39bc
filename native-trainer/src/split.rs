//! The seeded, stratified train/validation/test split of packed photos, without copies of
//! training photos among the held-out ones.

use std::collections::HashSet;

use catdog_model::Label;
use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::dataset::PackedPhotos;

/// Indices into a [`PackedPhotos`]: the seeded, stratified train/validation/test split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    /// What training and tuning decisions look at: early stopping, the best epoch, the
    /// hyper-parameter search, the calibration temperature.
    pub validation: Vec<usize>,
    /// Held out from every decision and measured once at the end; empty unless asked for.
    pub test: Vec<usize>,
    /// Held-out photos dropped because a near-identical copy is in the training split.
    pub duplicates: Vec<usize>,
}

/// How much of each class a [`Split`] holds out, and from what.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitSpec {
    pub validation_fraction: f64,
    pub test_fraction: f64,
    /// Use at most this many photos (half of each class).
    pub limit: Option<usize>,
    pub seed: u64,
}

impl Split {
    /// Shuffles each class with the seed (optionally keeping only `limit` photos, half of each
    /// class), takes the test photos first and the validation photos next, then drops
    /// held-out photos whose perceptual hash equals a training photo's. Without a test
    /// fraction the split is the same as before there was one, so old runs resume unchanged.
    pub fn new(packed: &PackedPhotos, spec: SplitSpec) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed);
        let mut train = Vec::new();
        let mut validation = Vec::new();
        let mut test = Vec::new();
        for label in [Label::Cat, Label::Dog] {
            let mut indices: Vec<usize> = (0..packed.len())
                .filter(|&i| packed.entries[i].label == Some(label))
                .collect();
            indices.shuffle(&mut rng);
            if let Some(limit) = spec.limit {
                indices.truncate(limit / 2);
            }
            let count = |fraction: f64| (indices.len() as f64 * fraction).round() as usize;
            let tested = count(spec.test_fraction);
            let held_out = (tested + count(spec.validation_fraction)).min(indices.len());
            test.extend_from_slice(&indices[..tested]);
            validation.extend_from_slice(&indices[tested..held_out]);
            train.extend_from_slice(&indices[held_out..]);
        }
        let train_hashes: HashSet<u64> = train.iter().map(|&i| packed.entries[i].hash).collect();
        let mut duplicates = Vec::new();
        for held_out in [&mut validation, &mut test] {
            let (copies, kept): (Vec<usize>, Vec<usize>) = held_out
                .drain(..)
                .partition(|&i| train_hashes.contains(&packed.entries[i].hash));
            duplicates.extend(copies);
            *held_out = kept;
        }
        train.sort_unstable();
        Split {
            train,
            validation,
            test,
            duplicates,
        }
    }
}

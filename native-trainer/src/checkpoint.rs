//! The checkpoint of a photo-by-photo run (`checkpoint.ckpt`): where the run stands, the
//! network and the optimiser's state, in one file written atomically, so a kill at any moment
//! leaves the previous checkpoint whole and `--resume` continues from it.

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use catdog_model::Network;
use serde::{Deserialize, Serialize};

use crate::config::{TrainConfig, TrainError, io_error};
use crate::files::write_atomic;
use crate::runlog::EpochRecord;
use crate::selection::Selection;

/// Where a run stands: saved in the checkpoint with the network and optimiser.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// The epoch in progress (1-based).
    pub(crate) epoch: usize,
    /// Batches of that epoch already done.
    pub(crate) batch: usize,
    /// Optimiser steps so far, for the learning-rate schedule.
    pub(crate) step: usize,
    /// This epoch's running totals.
    pub(crate) loss_sum: f64,
    pub(crate) correct: usize,
    pub(crate) seen: usize,
    pub(crate) history: Vec<EpochRecord>,
    /// The best epoch and early stopping (for checkpoints from before it, taken from the
    /// history).
    #[serde(default)]
    pub(crate) selection: Selection,
    pub(crate) stopped_early: bool,
    pub(crate) seconds: f64,
}

pub(crate) const CHECKPOINT_MAGIC: &[u8; 8] = b"CATDOGCK";

pub(crate) fn save_checkpoint(
    config: &TrainConfig,
    progress: &Progress,
    network: &Network,
    optimizer: &ModuleOptimizer,
) -> Result<(), TrainError> {
    let path = config.run.join("checkpoint.ckpt");
    let fail = |reason: String| TrainError::BadCheckpoint {
        path: path.clone(),
        reason,
    };
    let state = serde_json::to_vec(progress).expect("progress always serialises");
    let model = network
        .valid()
        .into_weights()
        .into_bytes()
        .map_err(|error| fail(error.to_string()))?;
    let optim = optimizer
        .into_bytes()
        .map_err(|error| fail(error.to_string()))?;
    let mut bytes = Vec::with_capacity(32 + state.len() + model.len() + optim.len());
    bytes.extend_from_slice(CHECKPOINT_MAGIC);
    for part in [&state[..], &model[..], &optim[..]] {
        bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
        bytes.extend_from_slice(part);
    }
    // One file written atomically: a kill at any moment leaves the previous checkpoint whole.
    write_atomic(&path, &bytes).map_err(io_error(&path))
}

pub(crate) fn parse_checkpoint(bytes: &[u8]) -> Result<(Progress, Vec<u8>, Vec<u8>), String> {
    let mut rest = bytes
        .strip_prefix(CHECKPOINT_MAGIC)
        .ok_or("not a catdog checkpoint")?;
    let mut parts = Vec::new();
    for _ in 0..3 {
        let len = rest
            .get(..8)
            .map(|len| u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize)
            .ok_or("truncated checkpoint")?;
        let part = rest.get(8..8 + len).ok_or("truncated checkpoint")?;
        parts.push(part.to_vec());
        rest = &rest[8 + len..];
    }
    let mut progress: Progress =
        serde_json::from_slice(&parts[0]).map_err(|error| error.to_string())?;
    if progress.selection.best.is_none() {
        progress.selection = Selection::from_history(&progress.history);
    }
    let optim = parts.pop().expect("three parts");
    let model = parts.pop().expect("three parts");
    Ok((progress, model, optim))
}

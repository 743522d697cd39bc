//! The one rule every way of training picks its best epoch and stops early by: the best epoch
//! is the one with the lowest validation log loss (what calibration and `tune` decide on too:
//! it moves with every photo's probability, where accuracy moves in steps of one photo), and
//! early stopping counts the epochs since the best one.

use serde::{Deserialize, Serialize};

use crate::runlog::EpochRecord;

/// The best epoch so far and the epochs since; saved in a photo-by-photo run's checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The best epoch and its validation log loss.
    pub best: Option<(usize, f64)>,
    /// Epochs since the best one.
    pub stale: usize,
}

impl Selection {
    /// The selection a run's history implies: for checkpoints written before the selection
    /// was saved in them.
    pub fn from_history(history: &[EpochRecord]) -> Self {
        let mut selection = Self::default();
        for record in history {
            selection.observe(record.epoch, record.validation_loss);
        }
        selection
    }

    /// Records an epoch's validation log loss and says whether it is the best so far. Without
    /// a validation split (`None`) the newest epoch is the best.
    pub fn observe(&mut self, epoch: usize, log_loss: Option<f64>) -> bool {
        let better = match (log_loss, self.best) {
            (Some(loss), Some((_, best))) => loss < best,
            _ => true,
        };
        if better {
            self.best = Some((epoch, log_loss.unwrap_or(f64::NAN)));
            self.stale = 0;
        } else {
            self.stale += 1;
        }
        better
    }

    /// Whether `patience` epochs have passed without a better one (`--early-stopping`).
    pub fn patience_spent(&self, patience: Option<usize>) -> bool {
        patience.is_some_and(|patience| self.stale >= patience)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_log_loss_wins_and_patience_counts_from_it() {
        let mut selection = Selection::default();
        assert!(selection.observe(1, Some(0.5)));
        assert!(selection.observe(2, Some(0.4)));
        assert!(!selection.observe(3, Some(0.4)), "a tie is not better");
        assert!(!selection.patience_spent(Some(2)));
        assert!(!selection.observe(4, Some(0.45)));
        assert!(selection.patience_spent(Some(2)));
        assert!(!selection.patience_spent(None));
        assert_eq!(selection.best, Some((2, 0.4)));
        assert!(selection.observe(5, Some(0.3)));
        assert_eq!((selection.best, selection.stale), (Some((5, 0.3)), 0));
        // No validation split: every epoch is the newest best.
        let mut blind = Selection::default();
        assert!(blind.observe(1, None) && blind.observe(2, None));
    }
}

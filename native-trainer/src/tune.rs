//! `tune`: a seeded random search over the transfer run's hyper-parameters (the Keras Tuner
//! workflow): learning rate, optimiser, dropout, hidden units, weight decay and how many
//! blocks to unfreeze. The photos, split and frozen features are prepared once and shared by
//! every trial. A trial whose validation log loss is worse than the median of the earlier
//! trials at the same epoch is stopped there (the median stopping rule). Trials are ranked by
//! validation log loss; the test split is never looked at.

use std::path::Path;
use std::time::Instant;

use catdog_model::HeadConfig;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::{OptimizerKind, TrainConfig, TrainError, io_error};
use crate::files::write_atomic;
use crate::plot::{self, LineChart, Series};
use crate::runlog::EpochRecord;
use crate::transfer;

/// The search: the base configuration (data, split, epochs, batch) and how many trials.
#[derive(Debug, Clone)]
pub struct TuneConfig {
    pub base: TrainConfig,
    pub trials: usize,
    pub seed: u64,
    /// Epochs every trial runs before it can be stopped early.
    pub grace_epochs: usize,
    /// The numbers of blocks to unfreeze that trials may pick.
    pub unfreeze_choices: Vec<usize>,
}

/// One trial's hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialParams {
    pub learning_rate: f64,
    pub optimizer: OptimizerKind,
    pub dropout: f64,
    pub hidden: usize,
    pub weight_decay: f64,
    pub unfreeze: usize,
}

impl TrialParams {
    /// Draws a trial: the learning rate log-uniform in [1e-4, 1e-2] (ten times that range
    /// for SGD, which needs larger steps), the rest uniform over their choices.
    pub fn sample(rng: &mut impl Rng, unfreeze_choices: &[usize]) -> Self {
        let optimizer = [
            OptimizerKind::Adam,
            OptimizerKind::AdamW,
            OptimizerKind::Sgd,
        ][rng.random_range(0..3)];
        let exponent = rng.random_range(-4.0..-2.0)
            + if optimizer == OptimizerKind::Sgd {
                1.0
            } else {
                0.0
            };
        Self {
            learning_rate: 10f64.powf(exponent),
            optimizer,
            dropout: (rng.random_range(0.0..0.5f64) * 20.0).round() / 20.0,
            hidden: [0, 0, 128, 256, 512][rng.random_range(0..5)],
            weight_decay: [0.0, 1e-5, 1e-4, 1e-3][rng.random_range(0..4)],
            unfreeze: unfreeze_choices[rng.random_range(0..unfreeze_choices.len())],
        }
    }

    /// The base configuration with these hyper-parameters.
    pub fn apply(&self, base: &TrainConfig) -> TrainConfig {
        TrainConfig {
            learning_rate: self.learning_rate,
            optimizer: self.optimizer,
            weight_decay: self.weight_decay,
            head: HeadConfig {
                hidden: self.hidden,
                dropout: self.dropout,
                pet_filter: None,
                ..base.head.clone()
            },
            unfreeze: self.unfreeze,
            ..base.clone()
        }
    }

    /// The `train` options that reproduce this trial.
    pub fn train_args(&self) -> String {
        format!(
            "--learning-rate {:.3e} --optimizer {} --dropout {} --hidden {} --weight-decay {} --unfreeze {}",
            self.learning_rate,
            match self.optimizer {
                OptimizerKind::Adam => "adam",
                OptimizerKind::AdamW => "adamw",
                OptimizerKind::Sgd => "sgd",
            },
            self.dropout,
            self.hidden,
            self.weight_decay,
            self.unfreeze
        )
    }
}

/// One finished (or stopped) trial.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trial {
    pub number: usize,
    pub params: TrialParams,
    pub best_epoch: usize,
    pub validation_accuracy: f64,
    pub validation_loss: f64,
    /// Stopped by the median rule (or by patience) before its last epoch.
    pub stopped_early: bool,
    pub seconds: f64,
    pub history: Vec<EpochRecord>,
}

/// The search's result, best first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Leaderboard {
    pub trials: Vec<Trial>,
    pub seed: u64,
    pub train_photos: usize,
    pub validation_photos: usize,
    pub test_photos_left_untouched: usize,
}

/// Runs the search and writes `leaderboard.md`, `leaderboard.json`, `leaderboard.png` and
/// `best.json` (the best trial's hyper-parameters) into the base configuration's run folder.
pub fn tune(config: &TuneConfig) -> Result<Leaderboard, TrainError> {
    let dir = &config.base.run;
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let data = transfer::prepare(&config.base, config.unfreeze_choices.contains(&0))?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed);
    let mut trials: Vec<Trial> = Vec::new();
    for number in 1..=config.trials {
        let params = TrialParams::sample(&mut rng, &config.unfreeze_choices);
        let trial_config = params.apply(&config.base);
        eprintln!("trial {number}/{}: {}", config.trials, params.train_args());
        let started = Instant::now();
        let earlier: Vec<&[EpochRecord]> = trials.iter().map(|t| t.history.as_slice()).collect();
        let mut best_so_far = f64::INFINITY;
        let fitted = transfer::fit(&trial_config, &data, |record| {
            let loss = record.validation_loss.unwrap_or(f64::INFINITY);
            best_so_far = best_so_far.min(loss);
            let median = median_best_at(&earlier, record.epoch);
            let go_on = record.epoch < config.grace_epochs
                || median.is_none_or(|median| best_so_far <= median);
            if !go_on {
                eprintln!(
                    "trial {number}: worse than the median trial at epoch {}: stopped",
                    record.epoch
                );
            }
            go_on
        })?;
        trials.push(Trial {
            number,
            params,
            best_epoch: fitted.best_epoch,
            validation_accuracy: fitted.best.accuracy,
            validation_loss: fitted.best.log_loss,
            stopped_early: fitted.stopped_early,
            seconds: started.elapsed().as_secs_f64(),
            history: fitted.history,
        });
        // Rewritten after every trial: a search cut short keeps what it found.
        write(&leaderboard(&trials, config.seed, &data), dir)?;
    }
    Ok(leaderboard(&trials, config.seed, &data))
}

fn leaderboard(trials: &[Trial], seed: u64, data: &transfer::TransferData) -> Leaderboard {
    let split = &data.run.split;
    let mut ranked = trials.to_vec();
    ranked.sort_by(|a, b| a.validation_loss.total_cmp(&b.validation_loss));
    Leaderboard {
        trials: ranked,
        seed,
        train_photos: split.train.len(),
        validation_photos: split.validation.len(),
        test_photos_left_untouched: split.test.len(),
    }
}

/// The median over earlier trials of their best validation loss up to `epoch` (trials that
/// stopped before it count with their best).
fn median_best_at(earlier: &[&[EpochRecord]], epoch: usize) -> Option<f64> {
    let mut bests: Vec<f64> = earlier
        .iter()
        .map(|history| {
            history
                .iter()
                .take(epoch)
                .filter_map(|record| record.validation_loss)
                .fold(f64::INFINITY, f64::min)
        })
        .filter(|loss| loss.is_finite())
        .collect();
    if bests.is_empty() {
        return None;
    }
    bests.sort_by(f64::total_cmp);
    let middle = bests.len() / 2;
    Some(if bests.len() % 2 == 1 {
        bests[middle]
    } else {
        (bests[middle - 1] + bests[middle]) / 2.0
    })
}

/// The leaderboard as a Markdown table, best first.
pub fn table(board: &Leaderboard) -> String {
    let mut out = String::from(
        "| rank | trial | lr | optimiser | dropout | hidden | weight decay | unfreeze | epochs (best) | val. accuracy | val. log loss | stopped early | seconds |\n\
         |---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|\n",
    );
    for (rank, trial) in board.trials.iter().enumerate() {
        let p = &trial.params;
        out.push_str(&format!(
            "| {} | {} | {:.2e} | {:?} | {:.2} | {} | {} | {} | {} ({}) | {:.2}% | {:.4} | {} | {:.0} |\n",
            rank + 1,
            trial.number,
            p.learning_rate,
            p.optimizer,
            p.dropout,
            p.hidden,
            p.weight_decay,
            p.unfreeze,
            trial.history.len(),
            trial.best_epoch,
            trial.validation_accuracy * 100.0,
            trial.validation_loss,
            if trial.stopped_early { "yes" } else { "no" },
            trial.seconds
        ));
    }
    out
}

fn write(board: &Leaderboard, dir: &Path) -> Result<(), TrainError> {
    let save = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        write_atomic(&path, bytes).map_err(io_error(&path))
    };
    save("leaderboard.md", table(board).as_bytes())?;
    save(
        "leaderboard.json",
        &serde_json::to_vec_pretty(board).expect("a leaderboard serialises"),
    )?;
    if let Some(best) = board.trials.first() {
        save(
            "best.json",
            &serde_json::to_vec_pretty(&best.params).expect("parameters serialise"),
        )?;
    }
    let chart = LineChart {
        title: "tune: validation log loss per trial (lower is better)".into(),
        x_label: "epoch".into(),
        y_label: "validation log loss".into(),
        series: board
            .trials
            .iter()
            .map(|trial| Series {
                name: format!(
                    "#{}{}",
                    trial.number,
                    if trial.stopped_early {
                        " (stopped)"
                    } else {
                        ""
                    }
                ),
                points: trial
                    .history
                    .iter()
                    .filter_map(|r| r.validation_loss.map(|loss| (r.epoch as f64, loss)))
                    .collect(),
            })
            .collect(),
    };
    for name in ["leaderboard.png", "leaderboard.svg"] {
        let path = dir.join(name);
        plot::save_charts(std::slice::from_ref(&chart), 800, 500, &path)
            .map_err(io_error(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(losses: &[f64]) -> Vec<EpochRecord> {
        losses
            .iter()
            .enumerate()
            .map(|(i, &loss)| EpochRecord {
                epoch: i + 1,
                train_loss: loss,
                train_accuracy: 0.5,
                validation_loss: Some(loss),
                validation_accuracy: Some(0.5),
                learning_rate: 1e-3,
                seconds: 1.0,
                images_per_second: 1.0,
            })
            .collect()
    }

    #[test]
    fn the_median_rule_compares_with_the_earlier_trials_best_so_far() {
        let a = history(&[0.5, 0.3, 0.2]);
        let b = history(&[0.4, 0.35]);
        let c = history(&[0.9, 0.8, 0.1]);
        let earlier: Vec<&[EpochRecord]> = vec![&a, &b, &c];
        // After epoch 1 the bests are 0.5, 0.4, 0.9; after epoch 3, 0.2, 0.35 (stopped), 0.1.
        assert_eq!(median_best_at(&earlier, 1), Some(0.5));
        assert_eq!(median_best_at(&earlier, 3), Some(0.2));
        assert_eq!(median_best_at(&earlier[..2], 2), Some((0.3 + 0.35) / 2.0));
        assert_eq!(median_best_at(&[], 1), None);
    }

    #[test]
    fn trials_are_seeded_and_reproducible_with_train() {
        let draw = |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            (0..5)
                .map(|_| TrialParams::sample(&mut rng, &[0, 1]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        for params in draw(7) {
            assert!((1e-4..=1e-1).contains(&params.learning_rate), "{params:?}");
            let args = params.train_args();
            assert!(
                args.contains(&format!("--unfreeze {}", params.unfreeze)),
                "{args}"
            );
        }
    }
}

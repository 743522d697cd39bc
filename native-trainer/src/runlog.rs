//! Per-epoch records of a run, written as CSV, JSON and the curves (PNG and SVG), and the
//! comparison of several runs (what people open TensorBoard for).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::write_atomic;
use crate::plot::{self, LineChart, Series};

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    /// On the augmented training photos, as seen during the epoch.
    pub train_accuracy: f64,
    pub validation_loss: Option<f64>,
    pub validation_accuracy: Option<f64>,
    pub learning_rate: f64,
    pub seconds: f64,
    pub images_per_second: f64,
}

impl EpochRecord {
    pub fn describe(&self) -> String {
        let validation = match (self.validation_loss, self.validation_accuracy) {
            (Some(loss), Some(accuracy)) => {
                format!(
                    "validation loss {loss:.4} accuracy {:.2}%",
                    accuracy * 100.0
                )
            }
            _ => "no validation split".to_string(),
        };
        format!(
            "epoch {}: train loss {:.4} accuracy {:.2}%, {validation}; lr {:.2e}, {:.0} s, \
             {:.1} images/s",
            self.epoch,
            self.train_loss,
            self.train_accuracy * 100.0,
            self.learning_rate,
            self.seconds,
            self.images_per_second
        )
    }
}

/// Writes a run's log files into its folder.
pub struct RunLog {
    dir: PathBuf,
}

impl RunLog {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// Rewrites `log.csv`, `log.json`, `curves.png` and `curves.svg` with the whole history.
    pub fn write(&self, history: &[EpochRecord]) -> std::io::Result<()> {
        let mut csv = String::from(
            "epoch,train_loss,train_accuracy,validation_loss,validation_accuracy,learning_rate,seconds,images_per_second\n",
        );
        let optional = |value: Option<f64>| value.map_or(String::new(), |v| format!("{v:.6}"));
        for r in history {
            csv.push_str(&format!(
                "{},{:.6},{:.6},{},{},{:.6e},{:.2},{:.2}\n",
                r.epoch,
                r.train_loss,
                r.train_accuracy,
                optional(r.validation_loss),
                optional(r.validation_accuracy),
                r.learning_rate,
                r.seconds,
                r.images_per_second
            ));
        }
        write_atomic(&self.dir.join("log.csv"), csv.as_bytes())?;
        let json = serde_json::to_vec_pretty(history).map_err(std::io::Error::other)?;
        write_atomic(&self.dir.join("log.json"), &json)?;
        let charts = curves(&[("", history)]);
        for name in ["curves.png", "curves.svg"] {
            plot::save_charts(&charts, CHART_WIDTH, CHART_HEIGHT, &self.dir.join(name))?;
        }
        Ok(())
    }
}

/// The size of each chart of [`curves`].
pub const CHART_WIDTH: u32 = 640;
pub const CHART_HEIGHT: u32 = 400;

/// The loss and accuracy charts (drawn side by side) for one or more runs (named by `label`).
pub fn curves(runs: &[(&str, &[EpochRecord])]) -> [LineChart; 2] {
    let name = |run: &str, what: &str| {
        if run.is_empty() {
            what.to_string()
        } else {
            format!("{run} {what}")
        }
    };
    let points = |history: &[EpochRecord], value: &dyn Fn(&EpochRecord) -> Option<f64>| {
        history
            .iter()
            .filter_map(|r| value(r).map(|v| (r.epoch as f64, v)))
            .collect::<Vec<_>>()
    };
    let mut loss = Vec::new();
    let mut accuracy = Vec::new();
    for (run, history) in runs {
        // With several runs, training curves would double the lines; validation is what
        // runs are compared on.
        if runs.len() == 1 {
            loss.push(Series {
                name: name(run, "train"),
                points: points(history, &|r| Some(r.train_loss)),
            });
            accuracy.push(Series {
                name: name(run, "train"),
                points: points(history, &|r| Some(r.train_accuracy * 100.0)),
            });
        }
        loss.push(Series {
            name: name(run, "validation"),
            points: points(history, &|r| r.validation_loss),
        });
        accuracy.push(Series {
            name: name(run, "validation"),
            points: points(history, &|r| r.validation_accuracy.map(|a| a * 100.0)),
        });
    }
    let loss = LineChart {
        title: "loss".into(),
        x_label: "epoch".into(),
        y_label: "cross-entropy".into(),
        series: loss,
    };
    let accuracy = LineChart {
        title: "accuracy".into(),
        x_label: "epoch".into(),
        y_label: "%".into(),
        series: accuracy,
    };
    [loss, accuracy]
}

/// One run's history, read back from its `log.json`.
pub fn read_history(run: &Path) -> std::io::Result<Vec<EpochRecord>> {
    let path = run.join("log.json");
    let bytes = std::fs::read(&path).map_err(|error| {
        std::io::Error::new(error.kind(), format!("{}: {error}", path.display()))
    })?;
    serde_json::from_slice(&bytes).map_err(|error| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {error}", path.display()),
        )
    })
}

/// A table comparing runs: epochs, best and last validation accuracy, time, speed.
pub fn compare_table(runs: &[(String, Vec<EpochRecord>)]) -> String {
    let mut table = format!(
        "{:<32} {:>6} {:>10} {:>6} {:>10} {:>10} {:>9} {:>8}\n",
        "run", "epochs", "best val", "at", "last val", "val loss", "minutes", "img/s"
    );
    for (name, history) in runs {
        let best = history
            .iter()
            .filter_map(|r| r.validation_accuracy.map(|a| (a, r.epoch)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let last = history.last();
        let percent =
            |value: Option<f64>| value.map_or("-".into(), |v| format!("{:.2}%", v * 100.0));
        let minutes = history.iter().map(|r| r.seconds).sum::<f64>() / 60.0;
        let speed =
            history.iter().map(|r| r.images_per_second).sum::<f64>() / history.len().max(1) as f64;
        table.push_str(&format!(
            "{:<32} {:>6} {:>10} {:>6} {:>10} {:>10} {:>9.1} {:>8.1}\n",
            name,
            history.len(),
            percent(best.map(|b| b.0)),
            best.map_or("-".into(), |b| b.1.to_string()),
            percent(last.and_then(|r| r.validation_accuracy)),
            last.and_then(|r| r.validation_loss)
                .map_or("-".into(), |l| format!("{l:.4}")),
            minutes,
            speed
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize, accuracy: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: 0.7 / epoch as f64,
            train_accuracy: accuracy - 0.05,
            validation_loss: Some(0.8 / epoch as f64),
            validation_accuracy: Some(accuracy),
            learning_rate: 1e-3,
            seconds: 60.0,
            images_per_second: 50.0,
        }
    }

    #[test]
    fn compare_table_reports_each_runs_best_epoch() {
        let runs = vec![
            (
                "small".to_string(),
                vec![record(1, 0.6), record(2, 0.7), record(3, 0.65)],
            ),
            ("wide".to_string(), vec![record(1, 0.8)]),
        ];
        let table = compare_table(&runs);
        let small = table.lines().find(|l| l.starts_with("small")).unwrap();
        assert!(
            small.contains("70.00%") && small.contains("65.00%"),
            "{small}"
        );
        let fields: Vec<&str> = small.split_whitespace().collect();
        assert_eq!(fields[1], "3", "epochs");
        assert_eq!(fields[3], "2", "best epoch");
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("wide") && l.contains("80.00%"))
        );
    }

    #[test]
    fn log_files_round_trip() {
        let dir = std::env::temp_dir().join(format!("catdog-runlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let history = vec![record(1, 0.6), record(2, 0.7)];
        RunLog::new(&dir).write(&history).unwrap();
        assert_eq!(read_history(&dir).unwrap(), history);
        let csv = std::fs::read_to_string(dir.join("log.csv")).unwrap();
        assert_eq!(csv.lines().count(), 3);
        let png = image::open(dir.join("curves.png")).unwrap();
        assert!(png.width() >= 1280);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

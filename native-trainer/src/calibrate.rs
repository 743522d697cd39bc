//! Temperature scaling: one number that makes the shown probabilities honest.
//!
//! A network trained to low loss is often over-confident. Dividing its logits by a
//! temperature `T` fitted on the validation split (the `T` with the lowest log loss there)
//! leaves every decision unchanged and fixes the confidence; the trainer then folds `T` into
//! the output layer, so the model file needs nothing extra at inference.

use catdog_model::{Label, Prediction};
use serde::{Deserialize, Serialize};

/// Confidence bins of the expected calibration error.
const BINS: usize = 15;

/// How well probabilities match outcomes on a set of photos.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationScores {
    pub accuracy: f64,
    pub log_loss: f64,
    /// Expected calibration error: the gap between confidence and accuracy, averaged over
    /// 15 confidence bins weighted by their photos.
    pub ece: f64,
}

/// Accuracy, log loss and ECE of (cat, dog) logits divided by `temperature`.
pub fn scores(logits: &[[f32; 2]], labels: &[Label], temperature: f64) -> CalibrationScores {
    let mut correct = 0usize;
    let mut loss = 0.0;
    let mut bins = [(0usize, 0.0f64, 0usize); BINS];
    for (pair, label) in logits.iter().zip(labels) {
        let t = temperature as f32;
        let prediction = Prediction::from_logits(pair[0] / t, pair[1] / t);
        let right = prediction.label == *label;
        correct += usize::from(right);
        let p = f64::from(match label {
            Label::Cat => prediction.cat,
            Label::Dog => prediction.dog,
        });
        loss -= p.max(1e-15).ln();
        let confidence = f64::from(prediction.cat.max(prediction.dog));
        // Binary confidence lies in [0.5, 1]: the bins split that range.
        let bin = (((confidence - 0.5) * 2.0 * BINS as f64) as usize).min(BINS - 1);
        bins[bin].0 += 1;
        bins[bin].1 += confidence;
        bins[bin].2 += usize::from(right);
    }
    let n = logits.len().max(1) as f64;
    let ece = bins
        .iter()
        .filter(|(count, _, _)| *count > 0)
        .map(|&(count, confidence, right)| {
            let count_f = count as f64;
            (right as f64 / count_f - confidence / count_f).abs() * count_f / n
        })
        .sum();
    CalibrationScores {
        accuracy: correct as f64 / n,
        log_loss: loss / n,
        ece,
    }
}

/// The temperature with the lowest log loss on these logits: a golden-section search over
/// `ln T` in [ln 0.05, ln 20] (log loss is unimodal in `T` for a fixed set of logits).
pub fn fit_temperature(logits: &[[f32; 2]], labels: &[Label]) -> f64 {
    let loss = |log_t: f64| scores(logits, labels, log_t.exp()).log_loss;
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut lo, mut hi) = (0.05f64.ln(), 20f64.ln());
    let mut a = hi - ratio * (hi - lo);
    let mut b = lo + ratio * (hi - lo);
    let (mut fa, mut fb) = (loss(a), loss(b));
    for _ in 0..60 {
        if fa < fb {
            hi = b;
            (b, fb) = (a, fa);
            a = hi - ratio * (hi - lo);
            fa = loss(a);
        } else {
            lo = a;
            (a, fa) = (b, fb);
            b = lo + ratio * (hi - lo);
            fb = loss(b);
        }
    }
    ((lo + hi) / 2.0).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits that are right 90% of the time but claim ~99.7% confidence: the fitted
    /// temperature must soften them, lower the log loss and the ECE, and change no decision.
    #[test]
    fn temperature_scaling_fixes_over_confidence_without_changing_decisions() {
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for i in 0..200 {
            let label = if i % 2 == 0 { Label::Cat } else { Label::Dog };
            let right = i % 10 != 0;
            let margin = 6.0 + (i % 7) as f32 * 0.1;
            let cat_wins = (label == Label::Cat) == right;
            logits.push(if cat_wins {
                [margin, 0.0]
            } else {
                [0.0, margin]
            });
            labels.push(label);
        }
        let before = scores(&logits, &labels, 1.0);
        let temperature = fit_temperature(&logits, &labels);
        let after = scores(&logits, &labels, temperature);
        assert!(temperature > 2.0, "softened: T = {temperature}");
        assert!(
            after.log_loss < before.log_loss - 0.1,
            "{before:?} -> {after:?}"
        );
        assert!(after.ece < before.ece / 4.0, "{before:?} -> {after:?}");
        assert_eq!(after.accuracy, before.accuracy);
        assert!((before.accuracy - 0.9).abs() < 1e-9);
    }
}

//! What a weight file may declare. A model file is what users download from strangers, and its
//! header decides how much memory the network takes before a single weight is read: an input
//! size of 200,000 px or channel counts of 65,536 would abort the process (or the page's wasm)
//! on allocation, a dropout of 5 or an input of 0 px would panic inside Burn, and a zero
//! standard deviation would turn every verdict into NaN. So every field is checked against the
//! ranges below, and the declared network's size is counted from its configuration, before
//! anything is allocated.
//!
//! The limits are sized for a phone's browser tab: the largest network they admit holds at
//! most 32 M parameters (128 MB as f32) and at most 256 MiB of activations for one photo,
//! while the shipped models need a small part of that (the accurate one, Lite1 at 272 px with
//! its "neither" check, under 6 M parameters; the small one, Lite0 ending after stage 6 at 128
//! px, 2.49 M / 2.1 MiB), counted by the model tests.

use std::ops::RangeInclusive;

use crate::efficientnet::Depth;
use crate::network::{Architecture, HeadConfig};
use crate::preprocess::Preprocess;
use crate::weights::{ModelHeader, WeightsError};

/// Side of the square input, in pixels.
pub const INPUT_SIZE: RangeInclusive<u32> = 16..=512;
/// Blocks of the from-scratch CNN. Each halves the input, so the input must also be at least
/// `2^blocks` pixels.
pub const CNN_BLOCKS: RangeInclusive<usize> = 1..=8;
/// Output channels of each CNN block.
pub const CNN_CHANNELS: RangeInclusive<usize> = 1..=1024;
/// Units of a head's hidden layer (0: a linear head).
pub const HEAD_HIDDEN: RangeInclusive<usize> = 0..=4096;
/// A dropout probability: 1 would drop everything.
pub const DROPOUT: RangeInclusive<f64> = 0.0..=0.99;
/// A normalisation mean, on pixels scaled to `[0, 1]`.
pub const MEAN: RangeInclusive<f32> = -10.0..=10.0;
/// A normalisation standard deviation: far from 0, so inputs stay finite.
pub const STD: RangeInclusive<f32> = 0.001..=100.0;
/// The share of the shorter side a centre crop keeps, or of each side a crop after squashing.
pub const CROP_FRACTION: RangeInclusive<f32> = 0.05..=1.0;
/// The "neither" check's threshold on a probability.
pub const PET_THRESHOLD: RangeInclusive<f32> = 0.0..=1.0;
/// The dimensions of the "neither" check's factored ImageNet classifier: at most its full
/// rank, min(1280 features, 1000 classes) (the factors are smaller than the whole one only
/// below about 560).
pub const PET_RANK: RangeInclusive<usize> = 1..=1000;
/// Parameters of the declared network (Burn's count: batch-norm statistics included).
pub const MAX_PARAMETERS: u64 = 32_000_000;
/// Bytes of activations one photo passes through at its largest layer (f32 values).
pub const MAX_ACTIVATION_BYTES: u64 = 256 << 20;

/// What a network declares before any tensor exists, counted from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footprint {
    /// Burn's parameter count, batch-norm running statistics included.
    pub parameters: u64,
    /// The most f32 values one photo's activations hold at once, at the largest layer: its
    /// input and outputs.
    pub activations: u64,
}

impl Footprint {
    /// The larger activations and the summed parameters of two parts of one network.
    pub fn then(self, next: Footprint) -> Footprint {
        Footprint {
            parameters: self.parameters.saturating_add(next.parameters),
            activations: self.activations.max(next.activations),
        }
    }
}

/// Checks every field of a parsed header against the limits above, then the size of the
/// network it declares. The first field out of range is named with its value and range.
pub fn check(header: &ModelHeader) -> Result<(), WeightsError> {
    check_preprocess(&header.preprocess)?;
    let input_size = header.preprocess.input_size;
    match &header.architecture {
        Architecture::Cnn(cnn) => {
            within(
                "architecture.channels (count)",
                cnn.channels.len(),
                &CNN_BLOCKS,
            )?;
            for &channels in &cnn.channels {
                within("architecture.channels", channels, &CNN_CHANNELS)?;
            }
            within("architecture.dropout", cnn.dropout, &DROPOUT)?;
            let smallest = 1u32 << cnn.channels.len();
            if input_size < smallest {
                return Err(out_of_range(
                    "preprocess.input_size",
                    input_size,
                    format!(
                        "at least {smallest} for {} blocks that each halve it",
                        cnn.channels.len()
                    ),
                ));
            }
        }
        Architecture::EfficientnetLite0(head) | Architecture::EfficientnetLite1(head) => {
            check_head(head)?
        }
    }
    let footprint = header.architecture.footprint(input_size);
    if footprint.parameters > MAX_PARAMETERS {
        return Err(out_of_range(
            "architecture (parameters)",
            footprint.parameters,
            format!("at most {MAX_PARAMETERS}"),
        ));
    }
    // A model that averages each photo with its mirror image runs both at once.
    let views = if header.average_mirror { 2 } else { 1 };
    let activation_bytes = footprint.activations.saturating_mul(4 * views);
    if activation_bytes > MAX_ACTIVATION_BYTES {
        return Err(out_of_range(
            "architecture (activation bytes per photo)",
            activation_bytes,
            format!("at most {MAX_ACTIVATION_BYTES}"),
        ));
    }
    Ok(())
}

fn check_preprocess(preprocess: &Preprocess) -> Result<(), WeightsError> {
    within("preprocess.input_size", preprocess.input_size, &INPUT_SIZE)?;
    let normalization = &preprocess.normalization;
    for &mean in &normalization.mean {
        within("preprocess.normalization.mean", mean, &MEAN)?;
    }
    for &std in &normalization.std {
        within("preprocess.normalization.std", std, &STD)?;
    }
    if let Some(fraction) = preprocess.geometry.fraction() {
        within("preprocess.geometry.fraction", fraction, &CROP_FRACTION)?;
    }
    Ok(())
}

fn check_head(head: &HeadConfig) -> Result<(), WeightsError> {
    within("architecture.hidden", head.hidden, &HEAD_HIDDEN)?;
    within("architecture.dropout", head.dropout, &DROPOUT)?;
    if let Some(stage) = head.last_stage {
        within("architecture.last_stage", stage, &Depth::EARLY_STAGES)?;
        if head.pet_filter.is_some() {
            // The ImageNet classifier reads the whole backbone's 1280 features.
            return Err(out_of_range(
                "architecture.pet_filter",
                "present",
                "only on a whole backbone (no last_stage)".to_string(),
            ));
        }
    }
    if let Some(filter) = head.pet_filter {
        within(
            "architecture.pet_filter.threshold",
            filter.threshold,
            &PET_THRESHOLD,
        )?;
        if let Some(rank) = filter.rank {
            within("architecture.pet_filter.rank", rank, &PET_RANK)?;
        }
    }
    Ok(())
}

/// `value` inside `range`; NaN is inside no range.
fn within<T: PartialOrd + std::fmt::Display>(
    field: &'static str,
    value: T,
    range: &RangeInclusive<T>,
) -> Result<(), WeightsError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(out_of_range(
            field,
            value,
            format!("{} to {}", range.start(), range.end()),
        ))
    }
}

fn out_of_range(
    field: &'static str,
    value: impl std::fmt::Display,
    allowed: String,
) -> WeightsError {
    WeightsError::OutOfRange {
        field,
        value: value.to_string(),
        allowed,
    }
}

//! Training-time augmentation on packed photos: random resized crop, horizontal flip and
//! colour jitter, written straight into the network's normalised channels-first input.
//!
//! Validation and evaluation use no augmentation: [`Normalization::append_chw`] on the packed
//! pixels, which are the photo already resized as inference resizes it.

use catdog_model::Normalization;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How strongly to augment. `Augment::NONE` turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Smallest crop, as a fraction of the photo's area (1 = no cropping).
    pub min_crop_area: f32,
    pub flip: bool,
    /// Brightness, contrast and saturation each vary by up to this fraction.
    pub jitter: f32,
}

impl Default for Augment {
    fn default() -> Self {
        Self {
            min_crop_area: 0.6,
            flip: true,
            jitter: 0.2,
        }
    }
}

impl Augment {
    pub const NONE: Augment = Augment {
        min_crop_area: 1.0,
        flip: false,
        jitter: 0.0,
    };

    /// Appends one augmented photo (`size x size` RGB bytes) to `out` as normalised CHW.
    pub fn apply(
        &self,
        pixels: &[u8],
        size: usize,
        normalization: &Normalization,
        rng: &mut impl Rng,
        out: &mut Vec<f32>,
    ) {
        // The crop: a random area and aspect ratio (3:4 to 4:3), at a random place; none at
        // all when cropping is off.
        let (area, aspect) = if self.min_crop_area >= 1.0 {
            (1.0, 1.0)
        } else {
            let area = rng.random_range(self.min_crop_area..=1.0);
            let aspect = (rng.random_range((0.75f32).ln()..=(4.0f32 / 3.0).ln())).exp();
            (area, aspect)
        };
        let crop_w = (size as f32 * (area * aspect).sqrt()).min(size as f32);
        let crop_h = (size as f32 * (area / aspect).sqrt()).min(size as f32);
        let x0 = rng.random_range(0.0..=(size as f32 - crop_w));
        let y0 = rng.random_range(0.0..=(size as f32 - crop_h));
        let flip = self.flip && rng.random_bool(0.5);
        let mut jitter = || 1.0 + rng.random_range(-self.jitter..=self.jitter);
        let (brightness, contrast, saturation) = (jitter(), jitter(), jitter());

        let plane = size * size;
        let start = out.len();
        out.resize(start + 3 * plane, 0.0);
        let mut rgb = vec![[0f32; 3]; plane];
        let mut mean_luma = 0.0;
        for y in 0..size {
            for x in 0..size {
                let out_x = if flip { size - 1 - x } else { x };
                // Sample the crop at the centre of each output pixel.
                let sx = x0 + (x as f32 + 0.5) * crop_w / size as f32 - 0.5;
                let sy = y0 + (y as f32 + 0.5) * crop_h / size as f32 - 0.5;
                let pixel = bilinear(pixels, size, sx, sy).map(|v| v * brightness);
                mean_luma += luma(pixel);
                rgb[y * size + out_x] = pixel;
            }
        }
        mean_luma /= plane as f32;
        let Normalization { mean, std } = normalization;
        for (index, pixel) in rgb.iter().enumerate() {
            let grey = luma(*pixel);
            for channel in 0..3 {
                let saturated = grey + (pixel[channel] - grey) * saturation;
                let value = (mean_luma + (saturated - mean_luma) * contrast).clamp(0.0, 1.0);
                out[start + channel * plane + index] = (value - mean[channel]) / std[channel];
            }
        }
    }
}

/// The photo's colour at a fractional position, in `[0, 1]`, edges clamped.
fn bilinear(pixels: &[u8], size: usize, x: f32, y: f32) -> [f32; 3] {
    let max = (size - 1) as f32;
    let (x, y) = (x.clamp(0.0, max), y.clamp(0.0, max));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(size - 1), (y0 + 1).min(size - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |x: usize, y: usize, c: usize| f32::from(pixels[(y * size + x) * 3 + c]) / 255.0;
    std::array::from_fn(|c| {
        let top = at(x0, y0, c) * (1.0 - fx) + at(x1, y0, c) * fx;
        let bottom = at(x0, y1, c) * (1.0 - fx) + at(x1, y1, c) * fx;
        top * (1.0 - fy) + bottom * fy
    })
}

fn luma([r, g, b]: [f32; 3]) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn gradient(size: usize) -> Vec<u8> {
        (0..size * size)
            .flat_map(|i| {
                let (x, y) = (i % size, i / size);
                [
                    (x * 255 / (size - 1)) as u8,
                    (y * 255 / (size - 1)) as u8,
                    128,
                ]
            })
            .collect()
    }

    #[test]
    fn no_augmentation_is_the_inference_preprocessing() {
        let size = 16;
        let pixels = gradient(size);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let (mut augmented, mut expected) = (Vec::new(), Vec::new());
        Augment::NONE.apply(
            &pixels,
            size,
            &Normalization::IMAGENET,
            &mut rng,
            &mut augmented,
        );
        Normalization::IMAGENET.append_chw(&pixels, &mut expected);
        assert_eq!(augmented.len(), expected.len());
        for (a, e) in augmented.iter().zip(&expected) {
            assert!((a - e).abs() < 1e-4, "{a} vs {e}");
        }
    }

    #[test]
    fn flip_mirrors_the_red_gradient() {
        let size = 16;
        let pixels = gradient(size);
        let flip_only = Augment {
            flip: true,
            ..Augment::NONE
        };
        let identity = Normalization {
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        // Over a few seeds both orientations occur; each is either the plain photo or its mirror.
        let mut seen = [false; 2];
        for seed in 0..16 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut out = Vec::new();
            flip_only.apply(&pixels, size, &identity, &mut rng, &mut out);
            let left_red = out[0];
            let right_red = out[size - 1];
            if left_red < right_red {
                seen[0] = true;
            } else {
                assert!(left_red > right_red);
                seen[1] = true;
            }
        }
        assert_eq!(seen, [true, true]);
    }

    #[test]
    fn augmentation_stays_in_range_and_varies() {
        let size = 24;
        let pixels = gradient(size);
        let identity = Normalization {
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (mut first, mut second) = (Vec::new(), Vec::new());
        Augment::default().apply(&pixels, size, &identity, &mut rng, &mut first);
        Augment::default().apply(&pixels, size, &identity, &mut rng, &mut second);
        assert!(first.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_ne!(first, second);
    }
}

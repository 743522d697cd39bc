//! Grad-CAM heatmaps: which parts of the photo the verdict came from, drawn over the photo.
//!
//! The map comes from [`Network::forward_explained`](crate::Network::forward_explained) at the
//! last convolutional block's resolution (7 x 7 for the accurate model); here it is kept on
//! the predicted side, scaled to `[0, 1]`, smoothly enlarged and coloured.

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

/// One photo's Grad-CAM heatmap over the part of the photo the network saw (all of it,
/// squashed to a square, or the centred part a cropping model keeps): the map stretches back
/// over that part the same way.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    /// Columns of the map.
    pub width: usize,
    /// Rows of the map.
    pub height: usize,
    /// Row-major values in `[0, 1]`, the largest 1 (all zero when nothing supports the
    /// verdict).
    pub values: Vec<f32>,
    /// Where the map lies over the photo, `[left, top, right, bottom]` as fractions of its
    /// width and height ([`Preprocess::seen_area`](crate::Preprocess::seen_area)); outside
    /// it the network saw nothing.
    pub area: [f32; 4],
}

impl Heatmap {
    /// From a dog-minus-cat map: the side of the predicted label, without what speaks against
    /// it (Grad-CAM's ReLU), scaled so that the hottest cell is 1.
    pub fn from_log_odds_map(width: usize, height: usize, map: &[f32], dog: bool) -> Self {
        assert_eq!(map.len(), width * height, "a {width}x{height} map");
        let sign = if dog { 1.0 } else { -1.0 };
        let kept: Vec<f32> = map.iter().map(|value| (sign * value).max(0.0)).collect();
        let hottest = kept.iter().copied().fold(0.0, f32::max);
        let values = if hottest > 0.0 && hottest.is_finite() {
            kept.iter().map(|value| value / hottest).collect()
        } else {
            vec![0.0; kept.len()]
        };
        Self {
            width,
            height,
            values,
            area: [0.0, 0.0, 1.0, 1.0],
        }
    }

    /// The same map laid over `area` of the photo instead of all of it.
    pub fn over(self, area: [f32; 4]) -> Self {
        Self { area, ..self }
    }

    /// The map over a `width` x `height` photo: enlarged over its [`area`](Self::area) by
    /// bilinear interpolation between cell centres, the way the browser scales it, and zero
    /// outside it.
    pub fn resized(&self, width: u32, height: u32) -> Vec<f32> {
        self.placed(width, height)
            .into_iter()
            .map(|value| value.unwrap_or(0.0))
            .collect()
    }

    /// Each pixel's value of the enlarged map, `None` outside the area (what the network did
    /// not see): the one rule for where the map lies, which `resized` and `overlay` share.
    fn placed(&self, width: u32, height: u32) -> Vec<Option<f32>> {
        let [left, top, right, bottom] = self.area;
        // A pixel's position within the area, in cells; `None` outside it.
        let sample = |pixel: u32, pixels: u32, cells: usize, from: f32, to: f32| {
            let position = (pixel as f32 + 0.5) / pixels as f32;
            if position < from || position > to || to <= from {
                return None;
            }
            let x = ((position - from) / (to - from) * cells as f32 - 0.5)
                .clamp(0.0, (cells - 1) as f32);
            let low = x.floor() as usize;
            Some((low, (low + 1).min(cells - 1), x - low as f32))
        };
        let mut out = Vec::with_capacity((width * height) as usize);
        for y in 0..height {
            let row = sample(y, height, self.height, top, bottom);
            for x in 0..width {
                let column = sample(x, width, self.width, left, right);
                let (Some((top, bottom, fy)), Some((left, right, fx))) = (row, column) else {
                    out.push(None);
                    continue;
                };
                let at = |row: usize, column: usize| self.values[row * self.width + column];
                let upper = at(top, left) * (1.0 - fx) + at(top, right) * fx;
                let lower = at(bottom, left) * (1.0 - fx) + at(bottom, right) * fx;
                out.push(Some(upper * (1.0 - fy) + lower * fy));
            }
        }
        out
    }

    /// The share of the heatmap's total mass inside a box given as fractions of the photo's
    /// width and height, `[left, top, right, bottom]`.
    pub fn mass_inside(&self, [left, top, right, bottom]: [f32; 4]) -> f32 {
        // Fine enough that the box edges fall within a pixel of where they are meant.
        const SIDE: u32 = 224;
        let values = self.resized(SIDE, SIDE);
        let total: f32 = values.iter().sum();
        if total <= 0.0 {
            return 0.0;
        }
        let inside: f32 = values
            .iter()
            .enumerate()
            .filter(|(index, _)| {
                let x = (*index as u32 % SIDE) as f32 + 0.5;
                let y = (*index as u32 / SIDE) as f32 + 0.5;
                let side = SIDE as f32;
                x >= left * side && x <= right * side && y >= top * side && y <= bottom * side
            })
            .map(|(_, value)| value)
            .sum();
        inside / total
    }

    /// The heatmap drawn over the photo: hot parts in warm colours, cold parts faintly blue,
    /// and what the network did not see (outside [`area`](Self::area)) left as it is, as the
    /// page shows it.
    pub fn overlay(&self, photo: &RgbImage) -> RgbImage {
        let (width, height) = photo.dimensions();
        let heat = self.placed(width, height);
        let mut out = photo.clone();
        for (pixel, &value) in out.pixels_mut().zip(&heat) {
            let Some(value) = value else { continue };
            let Rgba([r, g, b, a]) = colour(value);
            let alpha = f32::from(a) / 255.0;
            let blend = |under: u8, over: u8| {
                (f32::from(under) * (1.0 - alpha) + f32::from(over) * alpha).round() as u8
            };
            *pixel = Rgb([blend(pixel[0], r), blend(pixel[1], g), blend(pixel[2], b)]);
        }
        out
    }

    /// The heatmap at its own resolution as a PNG with transparency, for the page to lay over
    /// the photo and let the browser enlarge smoothly.
    pub fn to_png(&self) -> Vec<u8> {
        let image = RgbaImage::from_fn(self.width as u32, self.height as u32, |x, y| {
            colour(self.values[y as usize * self.width + x as usize])
        });
        encode_png(&image)
    }
}

/// A photo (the overlay) as PNG bytes.
pub fn rgb_png(image: &RgbImage) -> Vec<u8> {
    encode_png(image)
}

fn encode_png<P>(image: &image::ImageBuffer<P, Vec<u8>>) -> Vec<u8>
where
    P: image::Pixel<Subpixel = u8> + image::PixelWithColorType,
{
    let mut bytes = Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, ImageFormat::Png)
        .expect("encoding a PNG in memory cannot fail");
    bytes.into_inner()
}

/// Heat to colour: transparent blue when cold, through opaque yellow to red when hot.
fn colour(value: f32) -> Rgba<u8> {
    let value = value.clamp(0.0, 1.0);
    // Three stops of a "hot" ramp; opacity grows with the heat so cold parts stay visible.
    let stops = [
        (0.0, [40.0, 60.0, 200.0]),
        (0.5, [250.0, 220.0, 40.0]),
        (1.0, [230.0, 30.0, 20.0]),
    ];
    let (low, high) = if value < 0.5 {
        (stops[0], stops[1])
    } else {
        (stops[1], stops[2])
    };
    let t = (value - low.0) / (high.0 - low.0);
    let channel = |i: usize| (low.1[i] + (high.1[i] - low.1[i]) * t).round() as u8;
    let alpha = (40.0 + 170.0 * value).round() as u8;
    Rgba([channel(0), channel(1), channel(2), alpha])
}

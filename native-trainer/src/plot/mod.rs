//! Pictures for the trainer: learning curves, a confusion matrix and contact sheets of photos,
//! drawn with `plotters` (anti-aliased lines and text), as PNG for run folders and as SVG for
//! pages and the README.
//!
//! The text is drawn with a font compiled into the binary (`assets/DejaVuSans-subset.ttf`,
//! through plotters' `ab_glyph` renderer) rather than found on the system: a run on a
//! headless machine with no fonts installed still leaves readable pictures, and they come
//! out the same on every machine.

use std::io::Cursor;
use std::path::Path;
use std::sync::Once;

use image::{ImageFormat, Rgb, RgbImage};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

mod canvas;
mod chart;
mod confusion;
mod sheet;

use canvas::Canvas;

pub use chart::{LineChart, Series, charts_png, charts_svg, save_charts};
pub use confusion::confusion_matrix;
pub use sheet::{Tile, contact_sheet};

const FONT: &str = "sans-serif";
const FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");

pub(crate) const GRID: RGBColor = RGBColor(228, 228, 228);
pub(crate) const AXIS: RGBColor = RGBColor(60, 60, 60);
pub(crate) const TILE_BACKGROUND: Rgb<u8> = Rgb([236, 236, 236]);
/// The darkest shade of a confusion-matrix cell (a whole row's share).
pub(crate) const STRONG_BLUE: [u8; 3] = [8, 69, 148];
/// Line colours, distinct for the colour-blind (Okabe-Ito), in series order.
const SERIES_COLOURS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
    RGBColor(0, 0, 0),
];
/// Space around a picture's content and between pictures or tiles.
pub(crate) const PAD: i32 = 12;
pub(crate) const GAP: u32 = 16;
/// How far a tile's border reaches outside it.
pub(crate) const BORDER: i32 = 4;

/// Registers the embedded font under plotters' generic family name, once per process.
pub(crate) fn font(size: f64) -> TextStyle<'static> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        if plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_err() {
            panic!("the embedded font assets/DejaVuSans-subset.ttf is not a valid TrueType font");
        }
    });
    (FONT, size).into_font().color(&BLACK)
}

pub(crate) fn series_colour(index: usize) -> RGBColor {
    SERIES_COLOURS[index % SERIES_COLOURS.len()]
}

/// Draws on an `RgbImage` through plotters' bitmap backend (text placed by [`Canvas`]); a drawing error (a picture too
/// small for its text, say) leaves what was drawn so far.
pub(crate) fn draw_on(
    image: &mut RgbImage,
    draw: impl FnOnce(&DrawingArea<Canvas<'_>, Shift>) -> Result<(), String>,
) {
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 {
        return;
    }
    let area =
        Canvas(BitMapBackend::with_buffer(image.as_mut(), (width, height))).into_drawing_area();
    let _ = draw(&area).and_then(|()| area.present().map_err(|error| error.to_string()));
}

/// Plotters' errors carry the backend's error type; the pictures only need to know one
/// happened.
pub(crate) fn failed(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// The width of `text` in `style`, in pixels: the font's own layout, which every backend
/// draws by, so no picture is needed to measure.
pub(crate) fn text_width(text: &str, style: &TextStyle) -> i32 {
    style
        .font
        .box_size(text)
        .map_or(0, |(width, _)| width as i32)
}

/// `text`, cut with "..." until it fits `max_width` pixels.
pub(crate) fn truncate_to_width(text: &str, max_width: i32, style: &TextStyle) -> String {
    if text_width(text, style) <= max_width {
        return text.to_string();
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let cut: String = chars.iter().collect::<String>() + "...";
        if text_width(&cut, style) <= max_width {
            return cut;
        }
    }
    String::new()
}

/// Encodes `image` as PNG and writes it atomically, so an interrupted run never leaves a
/// truncated picture behind. Errors name the path: the trainer writes several pictures and
/// a bare "permission denied" would not say which.
pub fn save_png(image: &RgbImage, path: &Path) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    let encoded = image.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png);
    let named = |what: &str, e: &dyn std::fmt::Display| format!("{what} {}: {e}", path.display());
    encoded.map_err(|e| std::io::Error::other(named("encoding", &e)))?;
    crate::files::write_atomic(path, &bytes)
        .map_err(|e| std::io::Error::new(e.kind(), named("writing", &e)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plot::chart::tests::{chart, epochs};

    /// The pixels of exactly `colour`.
    pub(crate) fn pixels_of(img: &RgbImage, colour: Rgb<u8>) -> Vec<(u32, u32)> {
        let matching = img.enumerate_pixels().filter(|p| *p.2 == colour);
        matching.map(|p| (p.0, p.1)).collect()
    }

    /// Pixels darker than mid-grey: text and lines.
    pub(crate) fn ink(img: &RgbImage) -> usize {
        img.pixels()
            .filter(|p| p.0.iter().map(|&c| u32::from(c)).sum::<u32>() < 3 * 128)
            .count()
    }

    #[test]
    fn text_is_drawn_with_the_embedded_font() {
        let mut image = RgbImage::from_pixel(200, 40, Rgb([255, 255, 255]));
        draw_on(&mut image, |area| {
            area.draw_text("epoch 10", &font(20.0), (4, 4))
                .map_err(failed)
        });
        assert!(ink(&image) > 50, "the text is drawn");
        // Anti-aliased: edges blend into the background.
        assert!(image.pixels().any(|p| p.0[0] > 40 && p.0[0] < 215));
    }

    #[test]
    fn save_png_round_trips_and_names_the_path_on_error() {
        let dir = std::env::temp_dir().join(format!("catdog-plot-test-{}", std::process::id()));
        let path = dir.join("chart.png");
        let img = charts_png(&[chart(vec![epochs(|e| 1.0 / e)])], 320, 200);
        save_png(&img, &path).unwrap();
        let back = image::load_from_memory(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back.to_rgb8(), img);
        let blocked = path.join("under-a-file.png");
        let message = save_png(&img, &blocked).unwrap_err().to_string();
        assert!(
            message.contains(&blocked.display().to_string()),
            "{message}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

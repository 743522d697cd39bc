//! PNG pictures for the trainer: learning curves, a confusion matrix and contact sheets of
//! photos.
//!
//! Everything is drawn with plain pixel loops into an [`RgbImage`], and text with a 5x7
//! bitmap font compiled into this file. That keeps the trainer free of font files, font
//! rendering crates and system libraries: a run on a headless machine still leaves pictures
//! to look at, and they come out the same on every machine. The price is blocky text, which
//! is why every text size here is a whole-number multiple of the font.

use std::io::Cursor;
use std::path::Path;

use image::imageops::{self, FilterType};
use image::{ImageFormat, Rgb, RgbImage};

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
const AXIS: Rgb<u8> = Rgb([60, 60, 60]);
const GRID: Rgb<u8> = Rgb([228, 228, 228]);
const TILE_BACKGROUND: Rgb<u8> = Rgb([236, 236, 236]);
/// The darkest confusion-matrix shade, for a cell holding its whole row.
const STRONG_BLUE: [u8; 3] = [8, 69, 148];
/// Okabe-Ito colours, told apart under the common colour-vision deficiencies. Their yellow is
/// left out: it all but vanishes on white.
const SERIES_COLOURS: [[u8; 3]; 7] = [
    [0, 114, 178],
    [213, 94, 0],
    [0, 158, 115],
    [204, 121, 167],
    [230, 159, 0],
    [86, 180, 233],
    [0, 0, 0],
];
/// Margin around every picture.
const PAD: i64 = 12;
/// Space between pictures, tiles and contact-sheet rows.
const GAP: i64 = 16;
/// Data stays this far inside the chart frame, so points on the axis bounds stay visible.
const INSET: i64 = 8;
/// Width of a contact-sheet border; it sits outside the thumbnail so it hides no pixels.
const BORDER: i64 = 4;

const GLYPH_W: i64 = 5;
/// Seven rows for capitals and digits plus one for descenders.
const GLYPH_H: i64 = 8;
const ADVANCE: i64 = GLYPH_W + 1;

/// Printable ASCII from ' ' to '~': one glyph per number, one byte per row with the top row
/// most significant, bit 4 of a byte the leftmost column. Anything else is drawn as '?', so
/// odd file names still show where they differ.
#[rustfmt::skip]
const FONT: [u64; 95] = [
    0x0000000000000000, 0x0404040404000400, 0x0a0a000000000000, 0x0a0a1f0a1f0a0a00, // sp ! " #
    0x040f140e051e0400, 0x1819020408130300, 0x0c12140815120d00, 0x0404080000000000, // $ % & '
    0x0204080808040200, 0x0804020202040800, 0x0004150e15040000, 0x0004041f04040000, // ( ) * +
    0x00000000000c0408, 0x0000001f00000000, 0x00000000000c0c00, 0x0001020408100000, // , - . /
    0x0e11131519110e00, 0x040c040404040e00, 0x0e11010204081f00, 0x1f02040201110e00, // 0 1 2 3
    0x02060a121f020200, 0x1f101e0101110e00, 0x0608101e11110e00, 0x1f01020408080800, // 4 5 6 7
    0x0e11110e11110e00, 0x0e11110f01020c00, 0x000c0c000c0c0000, 0x000c0c000c040800, // 8 9 : ;
    0x0204081008040200, 0x00001f001f000000, 0x0804020102040800, 0x0e11010204000400, // < = > ?
    0x0e11010d15150e00, 0x0e11111f11111100, 0x1e11111e11111e00, 0x0e11101010110e00, // @ A B C
    0x1c12111111121c00, 0x1f10101e10101f00, 0x1f10101e10101000, 0x0e11101711110f00, // D E F G
    0x1111111f11111100, 0x0e04040404040e00, 0x0702020202120c00, 0x1112141814121100, // H I J K
    0x1010101010101f00, 0x111b151511111100, 0x1111191513111100, 0x0e11111111110e00, // L M N O
    0x1e11111e10101000, 0x0e11111115120d00, 0x1e11111e14121100, 0x0f10100e01011e00, // P Q R S
    0x1f04040404040400, 0x1111111111110e00, 0x11111111110a0400, 0x1111111515150a00, // T U V W
    0x11110a040a111100, 0x11110a0404040400, 0x1f01020408101f00, 0x0e08080808080e00, // X Y Z [
    0x0010080402010000, 0x0e02020202020e00, 0x040a110000000000, 0x000000000000001f, // \ ] ^ _
    0x0804020000000000, 0x00000e010f110f00, 0x1010161911111e00, 0x00000e1010110e00, // ` a b c
    0x01010d1311110f00, 0x00000e111f100e00, 0x0609081c08080800, 0x00000f11110f010e, // d e f g
    0x1010161911111100, 0x04000c0404040e00, 0x020006020202120c, 0x1010121418141200, // h i j k
    0x0c04040404040e00, 0x00001a1515111100, 0x0000161911111100, 0x00000e1111110e00, // l m n o
    0x00001e11111e1010, 0x00000f11110f0101, 0x0000161910101000, 0x00000f100e011e00, // p q r s
    0x08081c0808090600, 0x0000111111130d00, 0x00001111110a0400, 0x0000111115150a00, // t u v w
    0x0000110a040a1100, 0x00001111110f010e, 0x00001f0204081f00, 0x0304040804040300, // x y z {
    0x0404040404040400, 0x1804040204041800, 0x0000081502000000, // | } ~
];

fn glyph(c: char) -> u64 {
    let code = u32::from(c);
    let code = if (32..=126).contains(&code) {
        code
    } else {
        u32::from('?')
    };
    FONT[code as usize - 32]
}

fn text_width(text: &str, scale: i64) -> i64 {
    (text.chars().count() as i64 * ADVANCE - 1).max(0) * scale
}

fn fill_rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, colour: Rgb<u8>) {
    let x1 = (x + w).min(img.width().into());
    let y1 = (y + h).min(img.height().into());
    for py in y.max(0)..y1 {
        for px in x.max(0)..x1 {
            img.put_pixel(px as u32, py as u32, colour);
        }
    }
}

/// Draws the set pixels of `text`; `place` maps a font pixel's top-left corner in scaled text
/// coordinates to the image, which is all that differs between upright and rotated text.
fn draw_glyphs(
    img: &mut RgbImage,
    text: &str,
    s: i64,
    c: Rgb<u8>,
    place: impl Fn(i64, i64) -> (i64, i64),
) {
    for (i, ch) in text.chars().enumerate() {
        let bits = glyph(ch);
        for (row, col) in (0..GLYPH_H).flat_map(|row| (0..GLYPH_W).map(move |col| (row, col))) {
            if bits >> (8 * (7 - row) + GLYPH_W - 1 - col) & 1 == 1 {
                let (x, y) = place((i as i64 * ADVANCE + col) * s, row * s);
                fill_rect(img, x, y, s, s, c);
            }
        }
    }
}

fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, s: i64, c: Rgb<u8>) {
    draw_glyphs(img, text, s, c, |gx, gy| (x + gx, y + gy));
}

fn draw_text_centred(img: &mut RgbImage, cx: i64, y: i64, text: &str, s: i64, c: Rgb<u8>) {
    draw_text(img, cx - text_width(text, s) / 2, y, text, s, c);
}

/// Text reading bottom to top, left edge at `x`, centred on `cy`: the y-axis titles.
fn draw_text_up(img: &mut RgbImage, x: i64, cy: i64, text: &str, s: i64, c: Rgb<u8>) {
    let bottom = cy + text_width(text, s) / 2;
    draw_glyphs(img, text, s, c, |gx, gy| (x + gy, bottom - gx - s));
}

/// Shortens `text` with "..." to fit `max_width` pixels, because a caption that spills into
/// the next tile reads as that tile's.
fn truncate_to_width(text: &str, max_width: i64, s: i64) -> String {
    if text_width(text, s) <= max_width {
        return text.to_string();
    }
    let room = (max_width / s / ADVANCE).max(0) as usize;
    let mut kept: String = text.chars().take(room).collect();
    while text_width(&format!("{kept}..."), s) > max_width {
        if kept.pop().is_none() {
            return String::new();
        }
    }
    format!("{kept}...")
}

/// A thick line as a run of small squares: plenty for charts a few hundred pixels wide.
/// Far-off or non-finite ends are skipped rather than walked pixel by pixel.
fn draw_line(img: &mut RgbImage, a: (f64, f64), b: (f64, f64), c: Rgb<u8>) {
    let far = |v: f64| !v.is_finite() || v.abs() >= 1e6;
    if [a.0, a.1, b.0, b.1].into_iter().any(far) {
        return;
    }
    let steps = (b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil().max(1.0);
    for i in 0..=steps as i64 {
        let t = i as f64 / steps;
        let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
        fill_rect(img, x.round() as i64 - 1, y.round() as i64 - 1, 2, 2, c);
    }
}

/// Circle, square or diamond by series index, so lines stay apart even in greyscale.
fn draw_marker(img: &mut RgbImage, (x, y): (f64, f64), shape: usize, r: i64, c: Rgb<u8>) {
    for (dx, dy) in (-r..=r).flat_map(|dx| (-r..=r).map(move |dy| (dx, dy))) {
        let inside = match shape % 3 {
            0 => dx * dx + dy * dy <= r * r + 1,
            1 => dx.abs() < r && dy.abs() < r,
            _ => dx.abs() + dy.abs() <= r,
        };
        if inside {
            fill_rect(img, x.round() as i64 + dx, y.round() as i64 + dy, 1, 1, c);
        }
    }
}

fn series_colour(index: usize) -> Rgb<u8> {
    Rgb(SERIES_COLOURS[index % SERIES_COLOURS.len()])
}

/// One named line on a chart: (x, y) points in order. Non-finite points (a diverged loss)
/// are left out and break the line there instead of wrecking the scale.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart: axes with tick labels, one coloured line (with point markers) per series,
/// and a legend above the plot, where it can never hide data.
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// One axis: its range and round-numbered ticks.
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    decimals: usize,
}

impl Axis {
    /// About `target` ticks at 1, 2 or 5 times a power of ten. `integer` keeps steps whole
    /// (epochs); `snap` widens the range to the outer ticks so the frame starts and ends on
    /// labelled values.
    fn new(min: f64, max: f64, integer: bool, snap: bool, target: f64) -> Axis {
        let (mut lo, mut hi) = (min, max);
        if hi - lo <= 0.0 {
            let pad = if integer || lo == 0.0 {
                1.0
            } else {
                lo.abs() * 0.1
            };
            (lo, hi) = (lo - pad, hi + pad);
        }
        let raw = (hi - lo) / target.max(1.0);
        let magnitude = 10f64.powf(raw.log10().floor());
        let nice = [(1.5, 1.0), (3.0, 2.0), (7.0, 5.0)]
            .iter()
            .find(|b| raw / magnitude < b.0);
        let step = nice.map_or(10.0, |b| b.1) * magnitude;
        let step = if integer { step.max(1.0) } else { step };
        // A range too wide for f64 gets no ticks rather than a broken frame.
        let usable = step.is_finite() && step > 0.0;
        if snap && usable {
            lo = (lo / step + 1e-9).floor() * step;
            hi = (hi / step - 1e-9).ceil() * step;
        }
        let first = (lo / step - 1e-9).ceil() as i64;
        let last = (hi / step + 1e-9).floor() as i64;
        let ticks = (first..=last).take(if usable { 50 } else { 0 });
        let ticks = ticks.map(|k| k as f64 * step);
        // Rounding can land a tick at -0.0, which would print as "-0.0".
        let ticks = ticks
            .map(|t| if t.abs() < step * 1e-9 { 0.0 } else { t })
            .collect();
        let decimals = (-(step.log10() + 1e-9).floor()).clamp(0.0, 9.0) as usize;
        Axis {
            lo,
            hi,
            ticks,
            decimals,
        }
    }

    fn label(&self, value: f64) -> String {
        format!("{value:.*}", self.decimals)
    }

    /// Maps a value onto the pixel span `from..to` (which runs backwards for y).
    fn map(&self, value: f64, from: i64, to: i64) -> f64 {
        from as f64 + (value - self.lo) / (self.hi - self.lo) * (to - from) as f64
    }
}

impl LineChart {
    /// Renders at `width` x `height` pixels; 640x400 suits a report. Text is twice the font
    /// size from 480x300 up and the plain font below, so small charts keep room for data.
    /// The y range widens to round ticks; whole-number x values (epochs) get whole-number
    /// ticks, never "2.5". A chart with no finite points draws empty axes.
    pub fn render(&self, width: u32, height: u32) -> RgbImage {
        let mut img = RgbImage::from_pixel(width, height, WHITE);
        let (w, h) = (i64::from(width), i64::from(height));
        let s = if width >= 480 && height >= 300 { 2 } else { 1 };
        let line = GLYPH_H * s;
        let mut top = PAD;
        if !self.title.is_empty() {
            let title_s = if width >= 320 { 2 } else { 1 };
            draw_text_centred(&mut img, w / 2, top, &self.title, title_s, BLACK);
            top += GLYPH_H * title_s + 10;
        }
        self.draw_legend(&mut img, top, s);
        top += self.legend_rows(s, w - 2 * PAD).len() as i64 * (line + 8) + 4;
        let x_title = if self.x_label.is_empty() { 0 } else { line + 6 };
        let bottom = h - PAD - line - 8 - x_title;

        let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
        let points: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|series| series.points.iter().filter(finite))
            .copied()
            .collect();
        let range = |f: fn(&(f64, f64)) -> f64| {
            let values = points.iter().map(f);
            let lo = values.clone().fold(f64::INFINITY, f64::min);
            let hi = values.fold(f64::NEG_INFINITY, f64::max);
            if lo > hi { (0.0, 1.0) } else { (lo, hi) }
        };
        let ((x_min, x_max), (y_min, y_max)) = (range(|p| p.0), range(|p| p.1));
        let integer_x = points.iter().all(|p| p.0.fract() == 0.0);

        let y_target = ((bottom - top) as f64 / (line * 3) as f64).clamp(2.0, 8.0);
        let y_axis = Axis::new(y_min, y_max, false, true, y_target);
        let y_labels: Vec<String> = y_axis.ticks.iter().map(|&t| y_axis.label(t)).collect();
        let y_labels_w = y_labels.iter().map(|l| text_width(l, s)).max().unwrap_or(0);
        let y_title = if self.y_label.is_empty() { 0 } else { line + 8 };
        let left = PAD + y_title + y_labels_w + 8;
        // Label widths decide how many x ticks fit; guess them from the range's ends.
        let guess = Axis::new(x_min, x_max, integer_x, false, 5.0);
        let guess_w = text_width(&guess.label(x_min), s).max(text_width(&guess.label(x_max), s));
        let x_target = ((w - left - PAD) as f64 / (guess_w + 24 * s) as f64).clamp(2.0, 12.0);
        let x_axis = Axis::new(x_min, x_max, integer_x, false, x_target);
        let x_labels: Vec<String> = x_axis.ticks.iter().map(|&t| x_axis.label(t)).collect();
        let last_w = x_labels.last().map_or(0, |l| text_width(l, s));
        let right = w - PAD - (last_w / 2 - INSET).max(0);
        if right - left <= 2 * INSET || bottom - top <= 2 * INSET {
            return img;
        }
        let to_pixel = |(x, y): (f64, f64)| {
            let px = x_axis.map(x, left + INSET, right - INSET);
            (px, y_axis.map(y, bottom - INSET, top + INSET))
        };

        for (tick, label) in y_axis.ticks.iter().zip(&y_labels) {
            let y = to_pixel((x_min, *tick)).1.round() as i64;
            fill_rect(&mut img, left + 1, y, right - left - 1, 1, GRID);
            fill_rect(&mut img, left - 4, y, 4, 1, AXIS);
            let x = left - 8 - text_width(label, s);
            draw_text(&mut img, x, y - 7 * s / 2, label, s, BLACK);
        }
        for (tick, label) in x_axis.ticks.iter().zip(&x_labels) {
            let x = to_pixel((*tick, y_min)).0.round() as i64;
            fill_rect(&mut img, x, top + 1, 1, bottom - top - 1, GRID);
            fill_rect(&mut img, x, bottom, 1, 5, AXIS);
            draw_text_centred(&mut img, x, bottom + 8, label, s, BLACK);
        }
        for (x, y, rect_w, rect_h) in [
            (left, top, right - left, 1),
            (left, bottom, right - left + 1, 1),
            (left, top, 1, bottom - top),
            (right, top, 1, bottom - top),
        ] {
            fill_rect(&mut img, x, y, rect_w, rect_h, AXIS);
        }
        let (centre, x_title_y) = ((left + right) / 2, bottom + 8 + line + 6);
        draw_text_centred(&mut img, centre, x_title_y, &self.x_label, s, BLACK);
        draw_text_up(&mut img, PAD, (top + bottom) / 2, &self.y_label, s, BLACK);

        for (index, series) in self.series.iter().enumerate() {
            let pixel_of = |p: &(f64, f64)| finite(&p).then(|| to_pixel(*p));
            let pixels: Vec<Option<(f64, f64)>> = series.points.iter().map(pixel_of).collect();
            for pair in pixels.windows(2) {
                if let [Some(a), Some(b)] = pair {
                    draw_line(&mut img, *a, *b, series_colour(index));
                }
            }
            // Markers only while they stay apart (a per-batch curve would be a smear), but
            // always for a lone point, which has no line to show it.
            let marked = pixels.iter().flatten();
            if marked.clone().count() as i64 <= ((right - left) / 6).max(1) {
                marked.for_each(|&p| draw_marker(&mut img, p, index, 2 + s, series_colour(index)));
            }
        }
        img
    }

    /// Legend entries as (series index, width), wrapped into rows no wider than `max_w`.
    fn legend_rows(&self, s: i64, max_w: i64) -> Vec<Vec<(usize, i64)>> {
        let mut rows: Vec<Vec<(usize, i64)>> = Vec::new();
        for (index, series) in self.series.iter().enumerate() {
            let item = (index, 34 + text_width(&series.name, s));
            let row_w = rows
                .last()
                .map(|row| row.iter().map(|i| i.1 + 20).sum::<i64>());
            match rows.last_mut() {
                Some(row) if row_w.unwrap_or(0) + item.1 <= max_w => row.push(item),
                _ => rows.push(vec![item]),
            }
        }
        rows
    }

    /// Each row centred: a stretch of line with its marker, then the series name.
    fn draw_legend(&self, img: &mut RgbImage, top: i64, s: i64) {
        let w = i64::from(img.width());
        for (row_index, row) in self.legend_rows(s, w - 2 * PAD).iter().enumerate() {
            let mut x = (w - row.iter().map(|i| i.1 + 20).sum::<i64>() + 20) / 2;
            let y = top + row_index as i64 * (GLYPH_H * s + 8);
            for &(index, item_w) in row {
                let (colour, mid) = (series_colour(index), (y + 7 * s / 2) as f64);
                draw_line(img, (x as f64, mid), ((x + 28) as f64, mid), colour);
                draw_marker(img, ((x + 14) as f64, mid), index, 2 + s, colour);
                draw_text(img, x + 34, y, &self.series[index].name, s, BLACK);
                x += item_w + 20;
            }
        }
    }
}

/// Places images left to right on a white background, vertically centred, with a small gap:
/// the loss chart next to the accuracy chart reads as one figure. No images gives a single
/// white pixel, so the result can still be saved.
pub fn side_by_side(images: &[RgbImage]) -> RgbImage {
    let gaps = GAP as u32 * (images.len().max(1) as u32 - 1);
    let width = images.iter().map(RgbImage::width).sum::<u32>() + gaps;
    let height = images.iter().map(RgbImage::height).max().unwrap_or(0);
    let mut out = RgbImage::from_pixel(width.max(1), height.max(1), WHITE);
    let mut x = 0;
    for image in images {
        imageops::replace(&mut out, image, x, ((height - image.height()) / 2).into());
        x += i64::from(image.width()) + GAP;
    }
    out
}

/// A confusion matrix picture: `counts[actual][predicted]`. Cells are shaded by their share
/// of the row (white to a strong blue) rather than by count, so a rare class's mistakes show
/// as clearly as a common one's; each cell also spells out the count and that share.
/// Missing class names become their index; missing counts are zero.
pub fn confusion_matrix(title: &str, classes: &[&str], counts: &[Vec<u64>]) -> RgbImage {
    render_confusion(title, classes, counts).0
}

/// Also returns where the cells lie, for the tests: the grid's left and top, a cell's side.
fn render_confusion(title: &str, classes: &[&str], counts: &[Vec<u64>]) -> (RgbImage, [i64; 3]) {
    let (s, n) = (2, classes.len().max(counts.len()));
    let line = GLYPH_H * s;
    let name = |i: usize| {
        classes
            .get(i)
            .map_or(i.to_string(), |c| truncate_to_width(c, 240, s))
    };
    let names: Vec<String> = (0..n).map(name).collect();
    // (actual, predicted, count, share of the row as text, share)
    let mut cells = Vec::new();
    for a in 0..n {
        let row = counts.get(a).map_or(&[][..], Vec::as_slice);
        let total = row.iter().take(n).fold(0, |t: u64, &c| t.saturating_add(c));
        for p in 0..n {
            let c = row.get(p).copied().unwrap_or(0);
            let share = c as f64 / total.max(1) as f64;
            cells.push((
                a as i64,
                p as i64,
                c.to_string(),
                format!("{:.1}%", share * 100.0),
                share,
            ));
        }
    }
    let widest = cells
        .iter()
        .map(|c| text_width(&c.2, s).max(text_width(&c.3, s)))
        .max();
    let names_w = names
        .iter()
        .map(|name| text_width(name, s))
        .max()
        .unwrap_or(0);
    let cell = (widest.unwrap_or(0) + 24).max(100);
    let (left, top) = (PAD + line + 12 + names_w + 10, PAD + 3 * line + 32);
    let grid = n as i64 * cell;
    let width = (left + grid + PAD).max(2 * PAD + text_width(title, s));
    let height = if n == 0 {
        2 * PAD + line
    } else {
        top + grid + PAD
    };
    let mut img = RgbImage::from_pixel(width as u32, height as u32, WHITE);
    draw_text_centred(&mut img, width / 2, PAD, title, s, BLACK);
    if n > 0 {
        let (mid, predicted_y) = (left + grid / 2, PAD + line + 16);
        draw_text_centred(&mut img, mid, predicted_y, "predicted", s, BLACK);
        draw_text_up(&mut img, PAD, top + grid / 2, "actual", s, BLACK);
        fill_rect(
            &mut img,
            left,
            top,
            grid + 1,
            grid + 1,
            Rgb([190, 190, 190]),
        );
    }
    for (i, name) in (0..).zip(&names) {
        let short = truncate_to_width(name, cell - 6, s);
        draw_text_centred(
            &mut img,
            left + i * cell + cell / 2,
            top - line - 6,
            &short,
            s,
            BLACK,
        );
        let (x, y) = (
            left - 10 - text_width(name, s),
            top + i * cell + (cell - 7 * s) / 2,
        );
        draw_text(&mut img, x, y, name, s, BLACK);
    }
    for (a, p, number, percent, share) in cells {
        let shade = STRONG_BLUE.map(|c| (255.0 - (255.0 - f64::from(c)) * share).round() as u8);
        let (x, y) = (left + p * cell, top + a * cell);
        fill_rect(&mut img, x + 1, y + 1, cell - 1, cell - 1, Rgb(shade));
        let (ink, mid) = (if share > 0.5 { WHITE } else { BLACK }, x + cell / 2);
        draw_text_centred(&mut img, mid, y + cell / 2 - line - 2, &number, s, ink);
        draw_text_centred(&mut img, mid, y + cell / 2 + 4, &percent, s, ink);
    }
    (img, [left, top, cell])
}

/// One thumbnail on a contact sheet; `border` marks it (say red for a mistake).
pub struct Tile {
    pub image: RgbImage,
    pub caption: String,
    pub border: Option<[u8; 3]>,
}

/// Scales `image` to fit a `size` square with its aspect ratio kept.
fn fit(image: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = (u64::from(image.width()), u64::from(image.height()));
    let long = w.max(h).max(1);
    let scaled = |side: u64| ((side * u64::from(size) + long / 2) / long).max(1) as u32;
    if w == 0 || h == 0 || (scaled(w), scaled(h)) == image.dimensions() {
        return image.clone();
    }
    imageops::resize(image, scaled(w), scaled(h), FilterType::Triangle)
}

/// A grid of tiles, `columns` wide (fewer if there are fewer tiles), each thumbnail fitted
/// and centred in a `tile_size` square of light grey, so odd shapes still show as such.
/// Captions go under the thumbnails, up to two lines split on '\n', each cut with "..." to
/// the tile width; they are drawn at twice the font size from 192-pixel tiles up. A title
/// line heads the sheet; no tiles gives just the title.
pub fn contact_sheet(title: &str, tiles: &[Tile], columns: u32, tile_size: u32) -> RgbImage {
    let tile = i64::from(tile_size.max(16));
    let columns = (columns.max(1) as usize).min(tiles.len()).max(1);
    let rows = tiles.len().div_ceil(columns) as i64;
    let s = if tile >= 192 { 2 } else { 1 };
    let line_h = (GLYPH_H + 3) * s;
    fn lines(caption: &str) -> impl Iterator<Item = &str> {
        caption
            .split('\n')
            .take(if caption.is_empty() { 0 } else { 2 })
    }
    let max_lines = tiles
        .iter()
        .map(|t| lines(&t.caption).count())
        .max()
        .unwrap_or(0) as i64;
    let cell_h = tile + (8 + max_lines * line_h) * i64::from(max_lines > 0);
    let header = PAD + GLYPH_H * 2 + PAD;
    let grid_w = (GAP + columns as i64 * (tile + GAP)) * i64::from(!tiles.is_empty());
    let width = grid_w.max(2 * PAD + text_width(title, 2)).max(1);
    let height = header + rows * (cell_h + GAP);
    let mut img = RgbImage::from_pixel(width as u32, height as u32, WHITE);
    draw_text(&mut img, PAD, PAD, title, 2, BLACK);
    for (index, item) in tiles.iter().enumerate() {
        let x = GAP + (index % columns) as i64 * (tile + GAP);
        let y = header + (index / columns) as i64 * (cell_h + GAP);
        if let Some(colour) = item.border {
            let side = tile + 2 * BORDER;
            fill_rect(&mut img, x - BORDER, y - BORDER, side, side, Rgb(colour));
        }
        fill_rect(&mut img, x, y, tile, tile, TILE_BACKGROUND);
        let thumb = fit(&item.image, tile as u32);
        let (dx, dy) = (
            tile - i64::from(thumb.width()),
            tile - i64::from(thumb.height()),
        );
        imageops::replace(&mut img, &thumb, x + dx / 2, y + dy / 2);
        for (n, text) in (0..).zip(lines(&item.caption)) {
            let (text, text_y) = (truncate_to_width(text, tile, s), y + tile + 8 + n * line_h);
            draw_text_centred(&mut img, x + tile / 2, text_y, &text, s, BLACK);
        }
    }
    img
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
mod tests {
    use super::*;

    fn chart(series: Vec<Series>) -> LineChart {
        let (title, x_label, y_label) = ("loss".into(), "epoch".into(), "loss".into());
        LineChart {
            title,
            x_label,
            y_label,
            series,
        }
    }

    fn series(points: Vec<(f64, f64)>) -> Series {
        Series {
            name: "s".into(),
            points,
        }
    }

    fn epochs(f: impl Fn(f64) -> f64) -> Series {
        series((1..=10).map(|e| (f64::from(e), f(f64::from(e)))).collect())
    }

    fn pixels_of(img: &RgbImage, colour: Rgb<u8>) -> Vec<(u32, u32)> {
        let matching = img.enumerate_pixels().filter(|p| *p.2 == colour);
        matching.map(|p| (p.0, p.1)).collect()
    }

    fn tile(image: RgbImage, caption: &str) -> Tile {
        Tile {
            image,
            caption: caption.into(),
            border: None,
        }
    }

    fn tiles(n: usize, caption: &str) -> Vec<Tile> {
        let image = RgbImage::from_pixel(40, 30, Rgb([0, 0, 255]));
        (0..n).map(|_| tile(image.clone(), caption)).collect()
    }

    #[test]
    fn font_has_a_distinct_five_pixel_glyph_for_each_printable_character() {
        for (i, &a) in FONT.iter().enumerate() {
            assert_eq!(a & !0x1f1f_1f1f_1f1f_1f1f, 0, "glyph {i} too wide");
            assert_eq!(a != 0, i != 0, "only the space is blank");
            assert!(
                FONT[i + 1..].iter().all(|&b| b != a),
                "glyph {i} has a twin"
            );
        }
        assert_eq!(glyph('é'), glyph('?'));
    }

    #[test]
    fn chart_has_requested_size_and_draws_each_series_in_its_colour() {
        let img = chart(vec![epochs(|_| 1.0), epochs(|_| 0.0)]).render(640, 400);
        assert_eq!(img.dimensions(), (640, 400));
        let high = pixels_of(&img, series_colour(0));
        let low = pixels_of(&img, series_colour(1));
        let mean_y = |p: &[(u32, u32)]| p.iter().map(|q| q.1).sum::<u32>() / p.len() as u32;
        assert!(
            !low.is_empty() && mean_y(&high) < mean_y(&low),
            "larger is higher"
        );
        let xs = high.iter().map(|p| p.0);
        assert!(
            xs.clone().max().unwrap() - xs.min().unwrap() > 320,
            "spans the plot"
        );
    }

    #[test]
    fn a_lone_point_is_marked_even_beside_a_dense_series() {
        let dense = || series((0..2000).map(|i| (f64::from(i), 0.0)).collect());
        let render = |lone| chart(vec![dense(), series(lone)]).render(640, 400);
        let drawn = |img: RgbImage| pixels_of(&img, series_colour(1)).len();
        assert!(drawn(render(vec![(5.0, 1.0)])) > drawn(render(vec![])));
    }

    #[test]
    fn degenerate_charts_do_not_panic() {
        let bad = vec![(1.0, f64::NAN), (f64::INFINITY, 2.0)];
        let huge = vec![(-1e300, -1e308), (1e300, 1e308)];
        let cases = [
            vec![],
            vec![series(vec![])],
            vec![series(bad)],
            vec![series(huge)],
        ];
        for c in cases
            .into_iter()
            .chain([vec![series(vec![(3.0, 0.5)])]])
            .map(chart)
        {
            for (w, h) in [(640, 400), (200, 120), (10, 10), (0, 0)] {
                assert_eq!(c.render(w, h).dimensions(), (w, h));
            }
        }
    }

    #[test]
    fn flat_series_is_drawn_inside_the_plot() {
        let img = chart(vec![epochs(|_| 0.5)]).render(640, 400);
        let ys = pixels_of(&img, series_colour(0)).into_iter().map(|p| p.1);
        assert!(ys.filter(|&y| y > 400 / 3 && y < 400 * 9 / 10).count() > 100);
    }

    #[test]
    fn ticks_are_round_cover_the_data_and_stay_whole_for_epochs() {
        let x = Axis::new(1.0, 10.0, true, false, 7.0);
        let whole = |t: &f64| t.fract() == 0.0 && (1.0..=10.0).contains(t);
        assert!(x.ticks.len() >= 2 && x.ticks.iter().all(whole));
        assert_eq!(x.label(x.ticks[0]), (x.ticks[0] as i64).to_string());
        let y = Axis::new(0.231, 0.707, false, true, 5.0);
        assert!(y.lo <= 0.231 && y.hi >= 0.707 && y.ticks.windows(2).all(|w| w[0] < w[1]));
        let labels: Vec<String> = y.ticks.iter().map(|&t| y.label(t)).collect();
        assert!(labels.windows(2).all(|w| w[0] != w[1]), "{labels:?}");
        let flat = Axis::new(0.5, 0.5, false, true, 5.0);
        assert!(flat.lo < 0.5 && flat.hi > 0.5);
    }

    #[test]
    fn confusion_cells_are_shaded_by_share_of_their_row() {
        let counts = [vec![9, 1], vec![300, 700]];
        let (img, [left, top, cell]) = render_confusion("t", &["cat", "dog"], &counts);
        let ink = |a: i64, p: i64| {
            let pixel = img.get_pixel((left + p * cell + 3) as u32, (top + a * cell + 3) as u32);
            pixel.0.iter().map(|&c| u32::from(c)).sum::<u32>()
        };
        assert!(ink(0, 0) < ink(0, 1), "the larger count in a row is darker");
        assert!(
            ink(0, 0) < ink(1, 0),
            "90% of a small row beats 30% of a big one"
        );
        assert!(ink(1, 1) < ink(1, 0));
    }

    #[test]
    fn confusion_matrix_copes_with_odd_shapes() {
        assert!(confusion_matrix("one", &["cat"], &[vec![5]]).width() > 0);
        assert!(confusion_matrix("none", &[], &[]).width() > 0);
        let ragged = [vec![1], vec![], vec![0, 0, u64::MAX, 7]];
        let three = confusion_matrix("t", &["a", "b", "c"], &ragged);
        let two = confusion_matrix("t", &["a", "b"], &[vec![1, 2], vec![3, 4]]);
        assert!(three.width() > two.width() && three.height() > two.height());
    }

    #[test]
    fn contact_sheet_grows_by_whole_columns_and_rows() {
        let w = |cols| contact_sheet("t", &tiles(6, "x"), cols, 64).width();
        assert!(w(3) - w(2) == w(2) - w(1) && w(2) - w(1) > 64);
        let h = |n| contact_sheet("t", &tiles(n, "x"), 2, 64).height();
        assert!(h(5) - h(3) == h(3) - h(1) && h(4) == h(3) && h(3) - h(1) > 64);
        let only_title = contact_sheet("no photos", &[], 4, 64);
        assert!(only_title.height() < h(1));
        assert!(only_title.width() >= text_width("no photos", 2) as u32);
    }

    #[test]
    fn long_captions_are_cut_to_the_tile() {
        let long = "a caption far too long for a sixty-four pixel tile";
        let cut = truncate_to_width(long, 64, 1);
        assert!(cut.ends_with("...") && text_width(&cut, 1) <= 64);
        assert_eq!(truncate_to_width("short", 64, 1), "short");
        let img = contact_sheet("", &tiles(1, &format!("{long}\n{long}")), 1, 64);
        let mut beside_tile = img.enumerate_pixels().filter(|p| p.0 >= (GAP + 64) as u32);
        assert!(
            beside_tile.all(|p| *p.2 == WHITE),
            "caption spilled past the tile"
        );
        assert!(img.pixels().any(|p| *p == BLACK), "the caption is drawn");
    }

    #[test]
    fn thumbnails_keep_their_aspect_and_are_centred() {
        let red = Rgb([255, 0, 0]);
        let img = contact_sheet("", &[tile(RgbImage::from_pixel(200, 100, red), "")], 1, 100);
        let (xs, ys): (Vec<u32>, Vec<u32>) = pixels_of(&img, red).into_iter().unzip();
        let (x0, x1) = (*xs.iter().min().unwrap(), *xs.iter().max().unwrap());
        let (y0, y1) = (*ys.iter().min().unwrap(), *ys.iter().max().unwrap());
        assert_eq!((x1 - x0 + 1, y1 - y0 + 1), (100, 50));
        let grey = |ys: &mut dyn Iterator<Item = u32>| {
            ys.take_while(|&y| *img.get_pixel(x0, y) == TILE_BACKGROUND)
                .count()
        };
        assert_eq!(grey(&mut (0..y0).rev()), grey(&mut (y1 + 1..img.height())));
    }

    #[test]
    fn borders_mark_only_their_tiles() {
        let mark = Rgb([200, 30, 30]);
        let mut marked = tiles(2, "x");
        marked[1].border = Some(mark.0);
        assert!(!pixels_of(&contact_sheet("t", &marked, 2, 64), mark).is_empty());
        assert!(pixels_of(&contact_sheet("t", &tiles(2, "x"), 2, 64), mark).is_empty());
    }

    #[test]
    fn side_by_side_keeps_every_picture() {
        let (a, b) = (Rgb([1, 2, 3]), Rgb([4, 5, 6]));
        let images = [
            RgbImage::from_pixel(30, 20, a),
            RgbImage::from_pixel(10, 40, b),
        ];
        let both = side_by_side(&images);
        assert_eq!(both.dimensions(), (30 + GAP as u32 + 10, 40));
        assert_eq!(pixels_of(&both, a).len(), 30 * 20);
        assert_eq!(pixels_of(&both, b).len(), 10 * 40);
        assert_eq!(side_by_side(&[]).dimensions(), (1, 1));
    }

    #[test]
    fn save_png_round_trips_and_names_the_path_on_error() {
        let dir = std::env::temp_dir().join(format!("catdog-plot-test-{}", std::process::id()));
        let path = dir.join("chart.png");
        let img = chart(vec![epochs(|e| 1.0 / e)]).render(320, 200);
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

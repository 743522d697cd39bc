//! The confusion matrix picture.

use image::{Rgb, RgbImage};
use plotters::prelude::*;
use plotters::style::FontTransform;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{PAD, STRONG_BLUE, draw_on, failed, font, text_width, truncate_to_width};

/// A confusion matrix picture: `counts[actual][predicted]`. Cells are shaded by their share
/// of the row (white to a strong blue) rather than by count, so a rare class's mistakes show
/// as clearly as a common one's; each cell also spells out the count and that share.
/// Missing class names become their index; missing counts are zero.
pub fn confusion_matrix(title: &str, classes: &[&str], counts: &[Vec<u64>]) -> RgbImage {
    render_confusion(title, classes, counts).0
}

/// Also returns where the cells lie, for the tests: the grid's left and top, a cell's side.
fn render_confusion(title: &str, classes: &[&str], counts: &[Vec<u64>]) -> (RgbImage, [i32; 3]) {
    let n = classes.len().max(counts.len());
    let text = font(18.0);
    // (actual, predicted, count, share of the row as text, share)
    let mut cells = Vec::new();
    for a in 0..n {
        let row = counts.get(a).map_or(&[][..], Vec::as_slice);
        let total = row.iter().take(n).fold(0, |t: u64, &c| t.saturating_add(c));
        for p in 0..n {
            let c = row.get(p).copied().unwrap_or(0);
            let share = c as f64 / total.max(1) as f64;
            let percent = format!("{:.1}%", share * 100.0);
            cells.push((a as i32, p as i32, c.to_string(), percent, share));
        }
    }
    let width = |t: &str| text_width(t, &text);
    let names: Vec<String> = (0..n)
        .map(|i| {
            classes
                .get(i)
                .map_or(i.to_string(), |c| truncate_to_width(c, 240, &text))
        })
        .collect();
    let widest = cells.iter().map(|c| width(&c.2).max(width(&c.3))).max();
    let names_width = names.iter().map(|name| width(name)).max().unwrap_or(0);
    let (widest, title_width) = (widest.unwrap_or(0), width(title));
    let line = 22;
    let cell = (widest + 24).max(100);
    let (left, top) = (PAD + line + 12 + names_width + 10, PAD + 3 * line + 20);
    let grid = n as i32 * cell;
    let width = (left + grid + PAD).max(2 * PAD + title_width);
    let height = if n == 0 {
        2 * PAD + line
    } else {
        top + grid + PAD
    };
    let mut image = RgbImage::from_pixel(width as u32, height as u32, Rgb([255, 255, 255]));
    draw_on(&mut image, |area| {
        let top_centre = Pos::new(HPos::Center, VPos::Top);
        let (dark, light) = (
            text.color(&BLACK).pos(top_centre),
            text.color(&WHITE).pos(top_centre),
        );
        area.draw_text(title, &dark, (width / 2, PAD))
            .map_err(failed)?;
        if n == 0 {
            return Ok(());
        }
        area.draw_text("predicted", &dark, (left + grid / 2, PAD + line + 12))
            .map_err(failed)?;
        let up = text
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Center, VPos::Top));
        area.draw_text("actual", &up, (PAD, top + grid / 2))
            .map_err(failed)?;
        let outline = RGBColor(190, 190, 190);
        area.draw(&Rectangle::new(
            [(left, top), (left + grid, top + grid)],
            outline.filled(),
        ))
        .map_err(failed)?;
        for (i, name) in (0..).zip(&names) {
            let short = truncate_to_width(name, cell - 6, &text);
            let column = (left + i * cell + cell / 2, top - line - 4);
            area.draw_text(&short, &dark, column).map_err(failed)?;
            let right_middle = text.pos(Pos::new(HPos::Right, VPos::Center));
            area.draw_text(name, &right_middle, (left - 10, top + i * cell + cell / 2))
                .map_err(failed)?;
        }
        for (a, p, number, percent, share) in &cells {
            let shade = STRONG_BLUE.map(|c| (255.0 - (255.0 - f64::from(c)) * share).round() as u8);
            let (x, y) = (left + p * cell, top + a * cell);
            let fill = RGBColor(shade[0], shade[1], shade[2]).filled();
            area.draw(&Rectangle::new(
                [(x + 1, y + 1), (x + cell - 1, y + cell - 1)],
                fill,
            ))
            .map_err(failed)?;
            let ink = if *share > 0.5 { &light } else { &dark };
            let mid = x + cell / 2;
            area.draw_text(number, ink, (mid, y + cell / 2 - line - 2))
                .map_err(failed)?;
            area.draw_text(percent, ink, (mid, y + cell / 2 + 4))
                .map_err(failed)?;
        }
        Ok(())
    });
    (image, [left, top, cell])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_cells_are_shaded_by_share_of_their_row() {
        let counts = [vec![9, 1], vec![300, 700]];
        let (img, [left, top, cell]) = render_confusion("t", &["cat", "dog"], &counts);
        let ink = |a: i32, p: i32| {
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
}

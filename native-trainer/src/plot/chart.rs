//! Line charts: the learning curves and `tune`'s leaderboard.

use std::path::Path;

use image::{Rgb, RgbImage};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{AXIS, GRID, PAD, draw_on, failed, font, save_png, series_colour, text_width};

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

impl LineChart {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        area.fill(&WHITE).map_err(failed)?;
        let (width, height) = area.dim_in_pixel();
        let size = if width >= 480 && height >= 300 {
            15.0
        } else {
            11.0
        };
        let text = font(size);
        let title = font(size * 1.3);
        let mut top = PAD;
        if !self.title.is_empty() {
            let centre = Pos::new(HPos::Center, VPos::Top);
            area.draw_text(&self.title, &title.pos(centre), (width as i32 / 2, top))
                .map_err(failed)?;
            top += (size * 1.3) as i32 + 10;
        }
        top = self.draw_legend(area, top, &text)?;
        let (_, plot) = area.split_vertically(top);

        let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
        let points: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|series| series.points.iter().filter(finite))
            .copied()
            .collect();
        let integer_x = points.iter().all(|p| p.0.fract() == 0.0);
        let (x_range, y_range) = (
            padded_range(points.iter().map(|p| p.0), integer_x),
            padded_range(points.iter().map(|p| p.1), false),
        );
        let (x_range_shown, y_range_shown) =
            (x_range.start..=x_range.end, y_range.start..=y_range.end);
        // Whole-number ticks for epochs: at most one per epoch, so the steps stay whole.
        let x_ticks = if integer_x {
            (x_range.end - x_range.start).min(9.0) as usize + 1
        } else {
            8
        };
        let mut chart = ChartBuilder::on(&plot)
            .margin(PAD as u32)
            .x_label_area_size((size * 2.8) as u32)
            .y_label_area_size((size * 4.5) as u32)
            .build_cartesian_2d(x_range, y_range.clone())
            .map_err(failed)?;
        // One number of decimals for every y label: those of the tick step (1, 2 or 5 times a
        // power of ten, at most 6 ticks, as plotters picks it).
        let raw_step = (y_range.end - y_range.start) / 6.0;
        let magnitude = 10f64.powf(raw_step.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * magnitude)
            .find(|&step| step >= raw_step)
            .unwrap_or(raw_step);
        let y_decimals = (-step.log10() - 1e-9).ceil().clamp(0.0, 6.0) as usize;
        let y_format = |y: &f64| format!("{y:.y_decimals$}");
        let x_format = |x: &f64| {
            if integer_x {
                format!("{x:.0}")
            } else {
                format!("{x}")
            }
        };
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .x_labels(x_ticks)
            .y_labels(6)
            .x_label_formatter(&x_format)
            .y_label_formatter(&y_format)
            .label_style(text.clone())
            .axis_desc_style(text.clone())
            .axis_style(AXIS)
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(failed)?;
        let plot_width = chart.plotting_area().dim_in_pixel().0 as usize;
        // Finite and inside the axes: a range that fell back to 0..1 (a span too wide for
        // f64) leaves its points out rather than overflowing the pixel mapping.
        let (xs, ys) = (x_range_shown.clone(), y_range_shown.clone());
        let drawable = |p: &(f64, f64)| xs.contains(&p.0) && ys.contains(&p.1);
        for (index, series) in self.series.iter().enumerate() {
            let colour = series_colour(index);
            // A run of drawable points is one line; any other point breaks it.
            for run in series.points.split(|p| !drawable(p)) {
                chart
                    .draw_series(LineSeries::new(run.iter().copied(), colour.stroke_width(2)))
                    .map_err(failed)?;
            }
            // Markers only while they stay apart (a per-batch curve would be a smear), but
            // always for a lone point, which has no line to show it.
            let marked: Vec<(f64, f64)> = series.points.iter().copied().filter(drawable).collect();
            if marked.len() <= (plot_width / 6).max(1) {
                chart
                    .draw_series(marked.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                    .map_err(failed)?;
            }
        }
        Ok(())
    }

    /// The legend, each row centred: a stretch of line with its marker, then the series
    /// name, wrapped into rows that fit. Returns where the plot may start.
    fn draw_legend<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        top: i32,
        text: &TextStyle,
    ) -> Result<i32, String> {
        let width = area.dim_in_pixel().0 as i32;
        let line_height = text_width("M", text).max(8) * 2;
        let item_width = |name: &str| 34 + text_width(name, text);
        let mut rows: Vec<Vec<usize>> = Vec::new();
        let mut row_width = 0;
        for (index, series) in self.series.iter().enumerate() {
            let item = item_width(&series.name) + 20;
            match rows.last_mut() {
                Some(row) if row_width + item <= width - 2 * PAD => row.push(index),
                _ => {
                    rows.push(vec![index]);
                    row_width = 0;
                }
            }
            row_width += item;
        }
        let left_middle = Pos::new(HPos::Left, VPos::Center);
        for (row_index, row) in rows.iter().enumerate() {
            let total: i32 = row
                .iter()
                .map(|&i| item_width(&self.series[i].name) + 20)
                .sum();
            let mut x = (width - total + 20) / 2;
            let y = top + row_index as i32 * line_height + line_height / 2;
            for &index in row {
                let colour = series_colour(index);
                area.draw(&PathElement::new(
                    vec![(x, y), (x + 28, y)],
                    colour.stroke_width(2),
                ))
                .map_err(failed)?;
                area.draw(&Circle::new((x + 14, y), 3, colour.filled()))
                    .map_err(failed)?;
                let name = &self.series[index].name;
                area.draw_text(name, &text.pos(left_middle), (x + 34, y))
                    .map_err(failed)?;
                x += item_width(name) + 20;
            }
        }
        Ok(top + rows.len() as i32 * line_height + 4)
    }
}

/// Charts side by side, each `width` x `height` pixels (640x400 suits a report), as an image
/// for a PNG: the loss chart next to the accuracy chart reads as one figure. Whole-number x
/// values (epochs) get whole-number ticks, never "2.5"; a chart with no finite points draws
/// empty axes.
pub fn charts_png(charts: &[LineChart], width: u32, height: u32) -> RgbImage {
    let total = width * charts.len().max(1) as u32;
    let mut image = RgbImage::from_pixel(total, height, Rgb([255, 255, 255]));
    draw_on(&mut image, |area| draw_row(area, charts));
    image
}

/// The same charts as SVG, for a page or the README (the text stays text).
pub fn charts_svg(charts: &[LineChart], width: u32, height: u32) -> String {
    let total = width * charts.len().max(1) as u32;
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (total, height)).into_drawing_area();
        let _ = draw_row(&area, charts).and_then(|()| area.present().map_err(failed));
    }
    svg
}

/// Writes the charts as SVG if `path` ends in `.svg`, else as PNG, atomically.
pub fn save_charts(
    charts: &[LineChart],
    width: u32,
    height: u32,
    path: &Path,
) -> std::io::Result<()> {
    if path.extension().is_some_and(|extension| extension == "svg") {
        let svg = charts_svg(charts, width, height);
        crate::files::write_atomic(path, svg.as_bytes()).map_err(|error| {
            std::io::Error::new(error.kind(), format!("writing {}: {error}", path.display()))
        })
    } else {
        save_png(&charts_png(charts, width, height), path)
    }
}

fn draw_row<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    charts: &[LineChart],
) -> Result<(), String> {
    area.fill(&WHITE).map_err(failed)?;
    for (chart, cell) in charts
        .iter()
        .zip(area.split_evenly((1, charts.len().max(1))))
    {
        chart.draw(&cell)?;
    }
    Ok(())
}

/// The range a chart shows for `values`: their extent, widened a little (by one either side
/// for whole numbers, where a single epoch would otherwise have no width). No values, or a
/// span too wide for f64, gives 0 to 1.
fn padded_range(values: impl Iterator<Item = f64> + Clone, integer: bool) -> std::ops::Range<f64> {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    let span = hi - lo;
    if !span.is_finite() || lo > hi {
        return 0.0..1.0;
    }
    if integer {
        let pad = if span == 0.0 { 1.0 } else { 0.0 };
        return lo - pad..hi + pad;
    }
    let pad = if span > 0.0 {
        span * 0.05
    } else if lo == 0.0 {
        1.0
    } else {
        lo.abs() * 0.1
    };
    lo - pad..hi + pad
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plot::tests::pixels_of;

    pub(crate) fn chart(series: Vec<Series>) -> LineChart {
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

    pub(crate) fn epochs(f: impl Fn(f64) -> f64) -> Series {
        series((1..=10).map(|e| (f64::from(e), f(f64::from(e)))).collect())
    }

    fn rgb(colour: RGBColor) -> Rgb<u8> {
        Rgb([colour.0, colour.1, colour.2])
    }

    #[test]
    fn chart_has_requested_size_and_draws_each_series_in_its_colour() {
        let img = charts_png(&[chart(vec![epochs(|_| 1.0), epochs(|_| 0.0)])], 640, 400);
        assert_eq!(img.dimensions(), (640, 400));
        let high = pixels_of(&img, rgb(series_colour(0)));
        let low = pixels_of(&img, rgb(series_colour(1)));
        let mean_y = |p: &[(u32, u32)]| p.iter().map(|q| q.1).sum::<u32>() / p.len() as u32;
        assert!(
            !low.is_empty() && !high.is_empty() && mean_y(&high) < mean_y(&low),
            "larger is higher"
        );
        let xs = high.iter().map(|p| p.0);
        assert!(
            xs.clone().max().unwrap() - xs.min().unwrap() > 320,
            "spans the plot"
        );
    }

    #[test]
    fn the_svg_has_the_text_as_text() {
        let svg = charts_svg(&[chart(vec![epochs(|e| 1.0 / e)])], 640, 400);
        assert!(svg.starts_with("<svg") && svg.contains("epoch") && svg.contains("<polyline"));
    }

    #[test]
    fn a_lone_point_is_marked_even_beside_a_dense_series() {
        let dense = || series((0..2000).map(|i| (f64::from(i), 0.0)).collect());
        let render = |lone| charts_png(&[chart(vec![dense(), series(lone)])], 640, 400);
        let drawn = |img: RgbImage| pixels_of(&img, rgb(series_colour(1))).len();
        assert!(drawn(render(vec![(5.0, 1.0)])) > drawn(render(vec![])) + 4);
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
                assert_eq!(
                    charts_png(std::slice::from_ref(&c), w, h).dimensions(),
                    (w, h)
                );
                assert!(charts_svg(std::slice::from_ref(&c), w, h).starts_with("<svg"));
            }
        }
    }

    #[test]
    fn flat_series_is_drawn_inside_the_plot() {
        let img = charts_png(&[chart(vec![epochs(|_| 0.5)])], 640, 400);
        let ys = pixels_of(&img, rgb(series_colour(0)))
            .into_iter()
            .map(|p| p.1);
        assert!(ys.filter(|&y| y > 400 / 3 && y < 400 * 9 / 10).count() > 100);
    }

    #[test]
    fn whole_number_x_ranges_stay_whole_and_empty_ranges_widen() {
        let epochs = padded_range([1.0, 10.0].into_iter(), true);
        assert_eq!(epochs, 1.0..10.0);
        assert_eq!(padded_range([3.0].into_iter(), true), 2.0..4.0);
        let flat = padded_range([0.5].into_iter(), false);
        assert!(flat.start < 0.5 && flat.end > 0.5);
        assert_eq!(padded_range([].into_iter(), false), 0.0..1.0);
        assert_eq!(padded_range([-1e308, 1e308].into_iter(), false), 0.0..1.0);
    }

    #[test]
    fn charts_sit_side_by_side_and_save_as_png_or_svg() {
        let both = charts_png(
            &[chart(vec![epochs(|_| 1.0)]), chart(vec![epochs(|_| 0.0)])],
            320,
            200,
        );
        assert_eq!(both.dimensions(), (640, 200));
        let xs: Vec<u32> = pixels_of(&both, rgb(series_colour(0)))
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert!(
            xs.iter().any(|&x| x < 320) && xs.iter().any(|&x| x >= 320),
            "one line in each"
        );
        let dir = std::env::temp_dir().join(format!("catdog-charts-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let svg = dir.join("curves.svg");
        save_charts(&[chart(vec![epochs(|e| e)])], 320, 200, &svg).unwrap();
        assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

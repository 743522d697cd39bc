//! Contact sheets: photos in a grid with captions (evaluation's mistakes, predictions).

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    BORDER, GAP, PAD, TILE_BACKGROUND, draw_on, failed, font, text_width, truncate_to_width,
};

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
/// the tile width; larger from 192-pixel tiles up. A title line heads the sheet; no tiles
/// gives just the title.
pub fn contact_sheet(title: &str, tiles: &[Tile], columns: u32, tile_size: u32) -> RgbImage {
    let tile = tile_size.max(16) as i32;
    let columns = (columns.max(1) as usize).min(tiles.len()).max(1);
    let rows = tiles.len().div_ceil(columns) as i32;
    let caption_size = if tile >= 192 { 18.0 } else { 12.0 };
    let (caption, heading) = (font(caption_size), font(20.0));
    let line_height = caption_size as i32 + 4;
    fn lines(caption: &str) -> impl Iterator<Item = &str> {
        caption
            .split('\n')
            .take(if caption.is_empty() { 0 } else { 2 })
    }
    let max_lines = tiles
        .iter()
        .map(|t| lines(&t.caption).count())
        .max()
        .unwrap_or(0) as i32;
    let cell_height = tile + (8 + max_lines * line_height) * i32::from(max_lines > 0);
    let header = PAD + 24 + PAD;
    let grid_width =
        (GAP as i32 + columns as i32 * (tile + GAP as i32)) * i32::from(!tiles.is_empty());
    let width = grid_width.max(2 * PAD + text_width(title, &heading)).max(1);
    let height = header + rows * (cell_height + GAP as i32);
    let mut image = RgbImage::from_pixel(width as u32, height as u32, Rgb([255, 255, 255]));
    let origin = |index: usize| {
        let x = GAP as i32 + (index % columns) as i32 * (tile + GAP as i32);
        (
            x,
            header + (index / columns) as i32 * (cell_height + GAP as i32),
        )
    };
    // The photos go in as pixels; the text is drawn over them.
    for (index, item) in tiles.iter().enumerate() {
        let (x, y) = origin(index);
        if let Some(colour) = item.border {
            let side = (tile + 2 * BORDER) as u32;
            let border = RgbImage::from_pixel(side, side, Rgb(colour));
            imageops::replace(
                &mut image,
                &border,
                (x - BORDER).into(),
                (y - BORDER).into(),
            );
        }
        let background = RgbImage::from_pixel(tile as u32, tile as u32, TILE_BACKGROUND);
        imageops::replace(&mut image, &background, x.into(), y.into());
        let thumb = fit(&item.image, tile as u32);
        let (dx, dy) = (tile - thumb.width() as i32, tile - thumb.height() as i32);
        imageops::replace(&mut image, &thumb, (x + dx / 2).into(), (y + dy / 2).into());
    }
    draw_on(&mut image, |area| {
        area.draw_text(title, &heading, (PAD, PAD))
            .map_err(failed)?;
        let centred = caption.pos(Pos::new(HPos::Center, VPos::Top));
        for (index, item) in tiles.iter().enumerate() {
            let (x, y) = origin(index);
            for (n, text) in (0..).zip(lines(&item.caption)) {
                let text = truncate_to_width(text, tile, &caption);
                let at = (x + tile / 2, y + tile + 8 + n * line_height);
                area.draw_text(&text, &centred, at).map_err(failed)?;
            }
        }
        Ok(())
    });
    image
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::tests::{ink, pixels_of};

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
    fn contact_sheet_grows_by_whole_columns_and_rows() {
        let w = |cols| contact_sheet("t", &tiles(6, "x"), cols, 64).width();
        assert!(w(3) - w(2) == w(2) - w(1) && w(2) - w(1) > 64);
        let h = |n| contact_sheet("t", &tiles(n, "x"), 2, 64).height();
        assert!(h(5) - h(3) == h(3) - h(1) && h(4) == h(3) && h(3) - h(1) > 64);
        let only_title = contact_sheet("no photos at all", &[], 4, 64);
        assert!(only_title.height() < h(1));
        assert!(ink(&only_title) > 0, "the title is drawn");
    }

    #[test]
    fn long_captions_are_cut_to_the_tile() {
        let long = "a caption far too long for a sixty-four pixel tile";
        let img = contact_sheet("", &tiles(1, &format!("{long}\n{long}")), 1, 64);
        let white = Rgb([255, 255, 255]);
        let mut beside_tile = img.enumerate_pixels().filter(|p| p.0 >= GAP + 64);
        assert!(
            beside_tile.all(|p| *p.2 == white),
            "caption spilled past the tile"
        );
        let below_tile = img.enumerate_pixels().filter(|p| p.1 >= 12 + 24 + 12 + 64);
        assert!(
            below_tile.into_iter().any(|p| p.2.0[0] < 128),
            "the caption is drawn"
        );
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
}

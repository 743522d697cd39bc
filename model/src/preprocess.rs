//! Photo bytes to network input: decode any common format, apply the EXIF orientation, convert
//! to RGB, resize to the model's square input and normalise.
//!
//! This is plain Rust over the `image` crate, with no Burn types, so that the very same code
//! runs in the trainer, in the browser and in the build script that computes the reference
//! tensors the wasm tests compare against.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

/// The largest photo we decode, in pixels. A decompression bomb (a small file that claims a
/// huge size) is refused before any pixel is allocated.
pub const MAX_PIXELS: u64 = 64_000_000;

/// Why a photo could not be turned into network input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the file is empty")]
    Empty,
    #[error("not an image in a supported format (JPEG, PNG, WebP, GIF or BMP)")]
    UnknownFormat,
    #[error("the image is {width}x{height} pixels, over the limit of {MAX_PIXELS} pixels")]
    TooLarge { width: u32, height: u32 },
    #[error("the image is {width}x{height} pixels: it has no pixels to look at")]
    NoPixels { width: u32, height: u32 },
    #[error("the {format} data could not be decoded: {reason}")]
    Corrupt { format: String, reason: String },
}

/// Per-channel normalisation applied after scaling pixels to `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "inference", derive(serde::Serialize, serde::Deserialize))]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// The ImageNet statistics: what the from-scratch CNN trains with, and what the accurate
    /// model's first files (before the per-backbone preprocessing) fed EfficientNet-Lite.
    pub const IMAGENET: Normalization = Normalization {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };

    /// `(x - 127) / 128` on 0-255 pixels, every channel: what the TensorFlow EfficientNet-Lite
    /// models were trained with (`shared/weights/README.md`: a linear probe on Lite0's features
    /// gets 98.6 % with it against 97.4 % with the ImageNet statistics).
    pub const SYMMETRIC: Normalization = Normalization {
        mean: [127.0 / 255.0; 3],
        std: [128.0 / 255.0; 3],
    };
}

/// The filter that resamples a photo to the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "inference",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Resample {
    /// Bilinear (a triangle filter, widened when shrinking): what every file before the
    /// per-backbone preprocessing used.
    #[default]
    Bilinear,
    /// Bicubic (Catmull-Rom, PIL's and TensorFlow's bicubic): what the EfficientNet-Lite
    /// weights were trained and evaluated with.
    Bicubic,
}

impl Resample {
    fn filter(self) -> FilterType {
        match self {
            Resample::Bilinear => FilterType::Triangle,
            Resample::Bicubic => FilterType::CatmullRom,
        }
    }
}

/// Which part of the photo becomes the square input.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(
    feature = "inference",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "kind", rename_all = "snake_case")
)]
pub enum Geometry {
    /// The whole photo, squashed to a square (the aspect ratio is not kept): what every file
    /// before the per-backbone preprocessing used, and how the from-scratch CNN trains.
    #[default]
    Squash,
    /// A centred square of `fraction` of the photo's shorter side, resized to the input size:
    /// how ImageNet networks are evaluated (TensorFlow's EfficientNet takes `size / (size +
    /// 32)`, 224 of 256 for Lite0), so the pet fills the frame as in the backbone's training.
    CentreCrop { fraction: f32 },
    /// The whole photo squashed to a square, then its centred `fraction` of each side: the
    /// centred `fraction` of the width and of the height, resized to the input size. On a
    /// square photo the same pixels as [`CentreCrop`](Self::CentreCrop); it is how a network
    /// cropping photos that had been squashed to squares before it saw them (Kaggle's
    /// 200 x 200 dogs-vs-cats) should see a full-size photo: as it saw the training photos.
    SquashThenCrop { fraction: f32 },
}

impl Geometry {
    /// The crop fraction, for the two geometries that crop.
    pub fn fraction(self) -> Option<f32> {
        match self {
            Geometry::Squash => None,
            Geometry::CentreCrop { fraction } | Geometry::SquashThenCrop { fraction } => {
                Some(fraction)
            }
        }
    }
}

/// How a photo becomes the network's input; stored in the weight file so the page and the
/// trainer always agree.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "inference", derive(serde::Serialize, serde::Deserialize))]
pub struct Preprocess {
    /// Side of the square input, in pixels.
    pub input_size: u32,
    pub normalization: Normalization,
    /// Absent from files written before it existed: those were made with bilinear.
    #[cfg_attr(feature = "inference", serde(default))]
    pub resample: Resample,
    /// Absent from files written before it existed: those squashed the whole photo.
    #[cfg_attr(feature = "inference", serde(default))]
    pub geometry: Geometry,
}

/// A preprocessed photo: channels-first (`[3, size, size]`) normalised values.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTensor {
    pub size: u32,
    pub data: Vec<f32>,
}

impl InputTensor {
    /// The shape of this input as a batch of one, `[1, 3, size, size]`.
    pub fn batch_shape(&self) -> [usize; 4] {
        let size = self.size as usize;
        [1, 3, size, size]
    }
}

impl Preprocess {
    /// The whole photo squashed to `input_size` with bilinear resampling: the from-scratch
    /// CNN's preprocessing, and what a file without the newer fields means.
    pub const fn squash(input_size: u32, normalization: Normalization) -> Self {
        Self {
            input_size,
            normalization,
            resample: Resample::Bilinear,
            geometry: Geometry::Squash,
        }
    }

    /// Decodes, orients, resizes and normalises one photo.
    pub fn apply(&self, bytes: &[u8]) -> Result<InputTensor, DecodeError> {
        Ok(self.tensor_from_rgb(&decode_photo(bytes)?))
    }

    /// Crops and resizes an already decoded photo to the input size, as [`geometry`] and
    /// [`resample`] say, and normalises it.
    ///
    /// [`geometry`]: Self::geometry
    /// [`resample`]: Self::resample
    pub fn tensor_from_rgb(&self, photo: &RgbImage) -> InputTensor {
        self.normalize(&self.resize(photo))
    }

    /// The square input-sized pixels the network sees, before normalisation. The trainer
    /// caches these, so training sees exactly what inference sees.
    pub fn resize(&self, photo: &RgbImage) -> RgbImage {
        let size = self.input_size;
        let (width, height) = photo.dimensions();
        let cropped;
        let photo = match self.seen_pixels(width, height) {
            [0, 0, w, h] if (w, h) == (width, height) => photo,
            [x, y, w, h] => {
                cropped = image::imageops::crop_imm(photo, x, y, w, h).to_image();
                &cropped
            }
        };
        if photo.dimensions() == (size, size) {
            photo.clone()
        } else {
            image::imageops::resize(photo, size, size, self.resample.filter())
        }
    }

    /// The part of a `width x height` photo the network sees, `[x, y, width, height]` in
    /// pixels: all of it (squashed), the centred square [`Geometry::CentreCrop`] keeps, or
    /// the centred rectangle [`Geometry::SquashThenCrop`] keeps (squashing that rectangle
    /// shows the same part of the photo as cropping it after squashing, resampled once).
    pub fn seen_pixels(&self, width: u32, height: u32) -> [u32; 4] {
        // At least one pixel, at most the whole side, whatever the header says.
        let part = |side: u32, fraction: f32| {
            ((side as f32 * fraction).round() as u32).clamp(1, side.max(1))
        };
        let (w, h) = match self.geometry {
            Geometry::Squash => return [0, 0, width, height],
            Geometry::CentreCrop { fraction } => {
                let side = part(width.min(height), fraction);
                (side, side)
            }
            Geometry::SquashThenCrop { fraction } => {
                (part(width, fraction), part(height, fraction))
            }
        };
        [
            width.saturating_sub(w) / 2,
            height.saturating_sub(h) / 2,
            w,
            h,
        ]
    }

    /// [`seen_pixels`](Self::seen_pixels) as fractions of the photo, `[left, top, right,
    /// bottom]`: where a heatmap of what the network saw lies over the photo.
    pub fn seen_area(&self, width: u32, height: u32) -> [f32; 4] {
        let [x, y, w, h] = self.seen_pixels(width, height);
        let (width, height) = (width.max(1) as f32, height.max(1) as f32);
        [
            x as f32 / width,
            y as f32 / height,
            (x + w) as f32 / width,
            (y + h) as f32 / height,
        ]
    }

    /// Normalises an input-sized photo into the channels-first network input.
    pub fn normalize(&self, resized: &RgbImage) -> InputTensor {
        let size = self.input_size;
        assert_eq!(
            resized.dimensions(),
            (size, size),
            "normalize takes a photo already resized to the input size"
        );
        let mut data = Vec::with_capacity(3 * (size * size) as usize);
        self.normalization.append_chw(resized.as_raw(), &mut data);
        InputTensor { size, data }
    }
}

impl Normalization {
    /// Appends interleaved RGB bytes (one photo, rows top to bottom) to `out` as normalised
    /// channels-first values. Inference and the trainer's packed photos both go through here,
    /// so validation sees exactly what the page sees.
    pub fn append_chw(&self, rgb: &[u8], out: &mut Vec<f32>) {
        let plane = rgb.len() / 3;
        let start = out.len();
        out.resize(start + 3 * plane, 0.0);
        for (index, pixel) in rgb.chunks_exact(3).enumerate() {
            for channel in 0..3 {
                let value = f32::from(pixel[channel]) / 255.0;
                out[start + channel * plane + index] =
                    (value - self.mean[channel]) / self.std[channel];
            }
        }
    }
}

/// Decodes a photo from its bytes, whatever the format, applies its EXIF orientation and
/// converts it to 8-bit RGB (greyscale, CMYK, 16-bit and alpha photos included).
pub fn decode_photo(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| DecodeError::UnknownFormat)?;
    if !supported(format) {
        return Err(DecodeError::UnknownFormat);
    }
    let corrupt = |reason: String| DecodeError::Corrupt {
        format: format_name(format).to_string(),
        reason,
    };
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(corrupt(
            "the file is truncated (no end-of-image marker)".into(),
        ));
    }
    let corrupt = |error: image::ImageError| corrupt(error.to_string());
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(DecodeError::TooLarge { width, height });
    }
    // A GIF or BMP may declare a width or height of 0 and still decode; nothing downstream
    // (cropping, resizing, the page's thumbnail) has anything to work on.
    if width == 0 || height == 0 {
        return Err(DecodeError::NoPixels { width, height });
    }
    // A missing or unreadable EXIF block is not an error: the photo is shown as stored.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut photo = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    photo.apply_orientation(orientation);
    Ok(photo.into_rgb8())
}

/// Whether a JPEG's last scan is followed by its end-of-image marker. The JPEG decoder fills a
/// cut-off photo with grey rather than failing, so truncation is checked here. Inside scan data
/// a 0xFF byte is always escaped, so `FF D9` after the last start-of-scan (`FF DA`) can only be
/// the real end marker, and a thumbnail's markers (in EXIF, before the main scan) do not count.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|pair| pair == [0xFF, 0xDA]);
    last_scan.is_some_and(|start| bytes[start..].windows(2).any(|pair| pair == [0xFF, 0xD9]))
}

fn supported(format: ImageFormat) -> bool {
    matches!(
        format,
        ImageFormat::Jpeg
            | ImageFormat::Png
            | ImageFormat::WebP
            | ImageFormat::Gif
            | ImageFormat::Bmp
    )
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Gif => "GIF",
        ImageFormat::Bmp => "BMP",
        _ => "image",
    }
}

use catdog_model::preprocess::{MAX_PIXELS, decode_photo};
use catdog_model::{DecodeError, Geometry, Normalization, Preprocess, Resample};
use image::RgbImage;

use crate::fixture;

/// Mean absolute difference between two same-sized photos, in 0..=255 levels.
fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.as_raw().len() as f64
}

#[test]
fn decodes_jpeg_photos_at_their_size() {
    assert_eq!(
        decode_photo(&fixture("cat.jpg")).unwrap().dimensions(),
        (240, 160)
    );
    assert_eq!(
        decode_photo(&fixture("dog.jpg")).unwrap().dimensions(),
        (235, 333)
    );
}

#[test]
fn greyscale_jpeg_becomes_grey_rgb() {
    let grey = decode_photo(&fixture("cat-grey.jpg")).unwrap();
    assert_eq!(grey.dimensions(), (240, 160));
    assert!(grey.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
    // It is the cat photo, not a blank: it has the colour photo's spread of light and dark.
    let (min, max) = grey
        .pixels()
        .fold((255, 0), |(lo, hi), p| (p.0[0].min(lo), p.0[0].max(hi)));
    assert!(max - min > 150, "grey range {min}..{max}");
}

#[test]
fn cmyk_jpeg_has_the_colours_of_the_rgb_original() {
    let cmyk = decode_photo(&fixture("dog-cmyk.jpg")).unwrap();
    let rgb = decode_photo(&fixture("dog.jpg")).unwrap();
    // An inverted or channel-swapped CMYK conversion is off by ~100 levels on average.
    let diff = mean_abs_diff(&cmyk, &rgb);
    assert!(
        diff < 12.0,
        "CMYK photo differs from its RGB original by {diff:.1} levels"
    );
}

#[test]
fn png_with_alpha_decodes_to_rgb() {
    assert_eq!(
        decode_photo(&fixture("dog-alpha.png"))
            .unwrap()
            .dimensions(),
        (144, 302)
    );
}

#[test]
fn exif_orientation_is_applied() {
    // The pixels are stored a quarter turn anticlockwise (160x240) with orientation 6.
    let rotated = decode_photo(&fixture("cat-exif-rotated.jpg")).unwrap();
    let upright = decode_photo(&fixture("cat.jpg")).unwrap();
    assert_eq!(rotated.dimensions(), upright.dimensions());
    let diff = mean_abs_diff(&rotated, &upright);
    assert!(
        diff < 6.0,
        "oriented photo differs from the upright one by {diff:.1} levels"
    );
}

#[test]
fn input_tensor_is_channels_first_resized_and_normalised() {
    let preprocess = Preprocess::squash(32, Normalization::IMAGENET);
    let input = preprocess.apply(&fixture("dog.jpg")).unwrap();
    assert_eq!(input.size, 32);
    assert_eq!(input.batch_shape(), [1, 3, 32, 32]);
    assert_eq!(input.data.len(), 3 * 32 * 32);
    // Recompute one pixel by hand from the resized photo: red plane first, then green, blue.
    let resized = image::imageops::resize(
        &decode_photo(&fixture("dog.jpg")).unwrap(),
        32,
        32,
        image::imageops::FilterType::Triangle,
    );
    let pixel = resized.get_pixel(5, 7).0;
    for (channel, &level) in pixel.iter().enumerate() {
        let expected = (f32::from(level) / 255.0 - Normalization::IMAGENET.mean[channel])
            / Normalization::IMAGENET.std[channel];
        let actual = input.data[channel * 32 * 32 + 7 * 32 + 5];
        assert!(
            (actual - expected).abs() < 1e-6,
            "channel {channel}: {actual} vs {expected}"
        );
    }
}

#[test]
fn bad_inputs_give_clear_errors() {
    assert_eq!(decode_photo(&[]), Err(DecodeError::Empty));
    assert_eq!(
        decode_photo(b"Thumbs.db is not a photo at all"),
        Err(DecodeError::UnknownFormat)
    );
    let cat = fixture("cat.jpg");
    // The JPEG decoder would fill a cut-off photo with grey: it must be refused instead.
    for len in [cat.len() / 3, cat.len() - 2] {
        match decode_photo(&cat[..len]) {
            Err(DecodeError::Corrupt { format, .. }) => assert_eq!(format, "JPEG"),
            Err(other) => panic!("a JPEG cut to {len} bytes gave {other:?}"),
            Ok(_) => panic!("a JPEG cut to {len} bytes was accepted"),
        }
    }
    let message = decode_photo(&cat[..cat.len() / 3]).unwrap_err().to_string();
    assert!(message.contains("JPEG"), "{message}");
}

#[test]
fn decompression_bomb_is_refused_before_decoding() {
    // A real PNG header that claims 20000x20000 pixels, with no pixel data: a few bytes.
    let side = 20_000u32;
    assert!(u64::from(side) * u64::from(side) > MAX_PIXELS);
    assert_eq!(
        decode_photo(&png_header(side)),
        Err(DecodeError::TooLarge {
            width: side,
            height: side
        })
    );
}

/// A PNG that claims to be `side` x `side` 8-bit RGB, with a token of pixel data.
fn png_header(side: u32) -> Vec<u8> {
    let mut header = side.to_be_bytes().to_vec();
    header.extend_from_slice(&side.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut png, b"IHDR", &header);
    png_chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    png_chunk(&mut png, b"IEND", &[]);
    png
}

fn png_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    png.extend_from_slice(&body);
    png.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
}

#[test]
fn a_centre_crop_takes_the_middle_of_the_shorter_side() {
    // dog.jpg is 235 x 333 (portrait): a crop of half its shorter side is the 118 x 118 square
    // at its centre, here resized to 59 px.
    let photo = decode_photo(&fixture("dog.jpg")).unwrap();
    let preprocess = Preprocess {
        geometry: Geometry::CentreCrop { fraction: 0.5 },
        ..Preprocess::squash(59, Normalization::SYMMETRIC)
    };
    let cropped = preprocess.resize(&photo);
    assert_eq!(cropped.dimensions(), (59, 59));
    let side = 118;
    let centre = image::imageops::crop_imm(&photo, (235 - side) / 2, (333 - side) / 2, side, side)
        .to_image();
    let expected = image::imageops::resize(&centre, 59, 59, image::imageops::FilterType::Triangle);
    assert_eq!(cropped, expected);
    // The whole photo squashed is another picture.
    let squashed = Preprocess::squash(59, Normalization::SYMMETRIC).resize(&photo);
    assert!(mean_abs_diff(&cropped, &squashed) > 10.0);
}

#[test]
fn squashing_then_cropping_takes_the_middle_of_each_side_and_is_the_crop_on_squares() {
    // dog.jpg is 235 x 333: squashed to a square and cropped to half of each side, it is the
    // centred 118 x 167 rectangle (round(117.5), round(166.5)), here resized to 59 px.
    let photo = decode_photo(&fixture("dog.jpg")).unwrap();
    let squash_then_crop = Preprocess {
        geometry: Geometry::SquashThenCrop { fraction: 0.5 },
        ..Preprocess::squash(59, Normalization::SYMMETRIC)
    };
    assert_eq!(squash_then_crop.seen_pixels(235, 333), [58, 83, 118, 167]);
    let centre = image::imageops::crop_imm(&photo, 58, 83, 118, 167).to_image();
    let expected = image::imageops::resize(&centre, 59, 59, image::imageops::FilterType::Triangle);
    assert_eq!(squash_then_crop.resize(&photo), expected);
    // On a square photo it is the centre crop, pixel for pixel (a model trained on photos
    // squashed to squares with one can be declared to use the other).
    let crop = Preprocess {
        geometry: Geometry::CentreCrop { fraction: 0.5 },
        ..squash_then_crop
    };
    let square = decode_photo(&fixture("dog-224.png")).unwrap();
    assert_eq!(square.dimensions(), (224, 224));
    assert_eq!(squash_then_crop.resize(&square), crop.resize(&square));
    assert_eq!(
        squash_then_crop.seen_area(224, 224),
        crop.seen_area(224, 224)
    );
    // On the portrait photo the crop is a square, this is not.
    assert!(mean_abs_diff(&squash_then_crop.resize(&photo), &crop.resize(&photo)) > 10.0);
}

#[test]
fn bicubic_resampling_is_catmull_rom_and_differs_from_bilinear() {
    let photo = decode_photo(&fixture("cat.jpg")).unwrap();
    let bilinear = Preprocess::squash(100, Normalization::SYMMETRIC);
    let bicubic = Preprocess {
        resample: Resample::Bicubic,
        ..bilinear
    };
    let expected =
        image::imageops::resize(&photo, 100, 100, image::imageops::FilterType::CatmullRom);
    assert_eq!(bicubic.resize(&photo), expected);
    assert_ne!(bicubic.resize(&photo), bilinear.resize(&photo));
}

#[test]
fn symmetric_normalisation_is_x_minus_127_over_128() {
    let preprocess = Preprocess::squash(1, Normalization::SYMMETRIC);
    for level in [0u8, 127, 255] {
        let input = preprocess.normalize(&RgbImage::from_pixel(1, 1, image::Rgb([level; 3])));
        let expected = (f32::from(level) - 127.0) / 128.0;
        for value in input.data {
            assert!((value - expected).abs() < 1e-6, "{level}: {value}");
        }
    }
}

#[test]
fn a_crop_of_a_one_pixel_photo_or_a_bad_fraction_is_still_an_input() {
    // A header may say anything: the crop keeps at least one pixel and at most the photo.
    let pixel = RgbImage::from_pixel(1, 1, image::Rgb([9, 9, 9]));
    let wide = RgbImage::from_pixel(300, 2, image::Rgb([9, 9, 9]));
    for fraction in [0.875, 0.0, -1.0, 3.0, f32::NAN] {
        for geometry in [
            Geometry::CentreCrop { fraction },
            Geometry::SquashThenCrop { fraction },
        ] {
            let preprocess = Preprocess {
                geometry,
                ..Preprocess::squash(8, Normalization::SYMMETRIC)
            };
            for photo in [&pixel, &wide] {
                assert_eq!(
                    preprocess.resize(photo).dimensions(),
                    (8, 8),
                    "{geometry:?}"
                );
            }
        }
    }
}

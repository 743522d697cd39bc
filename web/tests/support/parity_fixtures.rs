// Shared by `build.rs` (native) and `wasm_preprocess.rs` (browser) through `include!`.

/// The fixture photos of the native-vs-browser preprocessing parity test.
pub const PARITY_FIXTURES: [&str; 6] = [
    "cat.jpg",
    "dog.jpg",
    "cat-grey.jpg",
    "dog-cmyk.jpg",
    "dog-alpha.png",
    "cat-exif-rotated.jpg",
];

/// The input size the parity test preprocesses at.
pub const PARITY_INPUT_SIZE: u32 = 128;

/// Every way of preprocessing a model file can ask for, each compared in turn: the whole photo
/// squashed with bilinear resampling and ImageNet statistics (the CNN and older files), and
/// EfficientNet-Lite's centre crop, bicubic resampling and `(x - 127) / 128`, the crop taken
/// from the photo itself and from the photo squashed to a square (the shipped small model).
/// `build.rs` writes the tensors of each fixture one after another in this order.
pub fn parity_preprocesses() -> [catdog_model::Preprocess; 3] {
    use catdog_model::{Geometry, Normalization, Preprocess, Resample};
    let lite = |geometry| Preprocess {
        input_size: PARITY_INPUT_SIZE,
        normalization: Normalization::SYMMETRIC,
        resample: Resample::Bicubic,
        geometry,
    };
    [
        Preprocess::squash(PARITY_INPUT_SIZE, Normalization::IMAGENET),
        lite(Geometry::CentreCrop { fraction: 0.875 }),
        lite(Geometry::SquashThenCrop { fraction: 0.875 }),
    ]
}

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

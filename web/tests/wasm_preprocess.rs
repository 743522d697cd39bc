//! The same photo gives the same input tensor in the browser as natively.
#![cfg(target_family = "wasm")]

use catdog_model::{Normalization, Preprocess};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

include!("support/parity_fixtures.rs");

macro_rules! case {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../tests/fixtures/", $name)),
            include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".f32")),
        )
    };
}

/// (name, photo bytes, tensor computed natively by build.rs)
const CASES: [(&str, &[u8], &[u8]); 6] = [
    case!("cat.jpg"),
    case!("dog.jpg"),
    case!("cat-grey.jpg"),
    case!("dog-cmyk.jpg"),
    case!("dog-alpha.png"),
    case!("cat-exif-rotated.jpg"),
];

#[wasm_bindgen_test]
fn browser_preprocessing_matches_native() {
    assert_eq!(CASES.map(|(name, _, _)| name), PARITY_FIXTURES);
    let preprocess = Preprocess {
        input_size: PARITY_INPUT_SIZE,
        normalization: Normalization::IMAGENET,
    };
    for (name, photo, native) in CASES {
        let native: Vec<f32> = native
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let browser = preprocess.apply(photo).unwrap();
        assert_eq!(browser.data.len(), native.len(), "{name}");
        let worst = browser
            .data
            .iter()
            .zip(&native)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= 1.0 / 255.0,
            "{name}: browser and native differ by up to {worst}"
        );
    }
}

//! The same photo gives the same input tensor in the browser as natively.
#![cfg(target_family = "wasm")]

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
    for (name, photo, native) in CASES {
        let native: Vec<f32> = native
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let mut browser = Vec::new();
        for preprocess in parity_preprocesses() {
            browser.extend(preprocess.apply(photo).unwrap().data);
        }
        assert_eq!(browser.len(), native.len(), "{name}");
        // Each preprocessing, separately, so a failure names it.
        let per = browser.len() / parity_preprocesses().len();
        for (preprocess, (browser, native)) in parity_preprocesses()
            .iter()
            .zip(browser.chunks(per).zip(native.chunks(per)))
        {
            let worst = browser
                .iter()
                .zip(native)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst <= 1.0 / 255.0,
                "{name}, {:?} {:?}: browser and native differ by up to {worst}",
                preprocess.geometry,
                preprocess.resample
            );
        }
    }
}

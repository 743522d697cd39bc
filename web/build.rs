//! Preprocesses the fixture photos natively (on the host, with the same `catdog-model` code the
//! page runs as wasm) so that `tests/wasm_preprocess.rs`, running in the browser, can check the
//! page computes the same input tensors. Cheap: six small photos.

use std::path::PathBuf;

use catdog_model::{Normalization, Preprocess};

include!("tests/support/parity_fixtures.rs");

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let fixtures = root.join("../tests/fixtures");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo::rerun-if-changed=tests/support/parity_fixtures.rs");
    let preprocess = Preprocess {
        input_size: PARITY_INPUT_SIZE,
        normalization: Normalization::IMAGENET,
    };
    for name in PARITY_FIXTURES {
        let path = fixtures.join(name);
        println!("cargo::rerun-if-changed={}", path.display());
        let bytes =
            std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let input = preprocess
            .apply(&bytes)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        let raw: Vec<u8> = input.data.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(out.join(format!("{name}.f32")), raw).unwrap();
    }
}

//! Preprocesses the fixture photos natively (on the host, with the same `catdog-model` code the
//! page runs as wasm) so that `tests/wasm_preprocess.rs`, running in the browser, can check the
//! page computes the same input tensors. Cheap: six small photos.

use std::path::PathBuf;

include!("tests/support/parity_fixtures.rs");

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let fixtures = root.join("../tests/fixtures");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo::rerun-if-changed=tests/support/parity_fixtures.rs");
    for name in PARITY_FIXTURES {
        let path = fixtures.join(name);
        println!("cargo::rerun-if-changed={}", path.display());
        let bytes =
            std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let mut raw: Vec<u8> = Vec::new();
        for preprocess in parity_preprocesses() {
            let input = preprocess
                .apply(&bytes)
                .unwrap_or_else(|error| panic!("{name}: {error}"));
            raw.extend(input.data.iter().flat_map(|x| x.to_le_bytes()));
        }
        std::fs::write(out.join(format!("{name}.f32")), raw).unwrap();
    }
}

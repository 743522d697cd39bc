//! The peer side of the browser benchmark: ONNX Runtime Web running catdog's own networks
//! (exported with the same weights by `bench/onnx_export.py`) in the same headless Chromium,
//! on its wasm and WebGPU execution providers, classifying the same fixture photos the way the
//! page does (`bench/ort/bench.js`). Prints a table and, with `CATDOG_BENCH_JSON=FILE`, writes
//! the rows as JSON.
//!
//! `CATDOG_ORT_SITE`: a folder holding `bench/ort/*`, ONNX Runtime Web's `dist/` files, the
//! fixture photos and `accurate.onnx` / `small.onnx`; `scripts/bench-peers` assembles it. Not
//! run by `cargo test` (`test = false`): it needs that folder.

use std::path::PathBuf;
use std::time::Duration;

use catdog_model::{ModelFile, Preprocess};
use catdog_tests::webdriver::Browser;
use catdog_tests::{median, serve, workspace};
use serde_json::{Value, json};

/// The shipped models (`www/model/`): their names in the bench folder and the input size and
/// normalisation their headers give (Lite0 and Lite1 read (x - 127) / 128, not ImageNet's
/// statistics).
fn models() -> Vec<(&'static str, Preprocess)> {
    [("accurate", "catdog.bpk"), ("small", "catdog-small.bpk")]
        .into_iter()
        .map(|(name, file)| {
            let path = workspace().join("www/model").join(file);
            let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{path:?}: {error}"));
            let header = ModelFile::parse(&bytes).unwrap().header;
            (name, header.preprocess)
        })
        .collect()
}

fn main() {
    let site = PathBuf::from(
        std::env::var("CATDOG_ORT_SITE")
            .expect("CATDOG_ORT_SITE: the folder scripts/bench-peers assembles; run that instead"),
    );
    assert!(
        site.join("index.html").is_file() && site.join("ort.all.min.js").is_file(),
        "{} is not an ONNX Runtime Web bench folder; run scripts/bench-peers",
        site.display()
    );
    let warm: usize = std::env::var("CATDOG_BENCH_PHOTOS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(12);
    let eps = std::env::var("CATDOG_BENCH_EPS").unwrap_or("wasm,webgpu".into());
    let served = serve(site);
    let mut rows = Vec::new();
    for (model, preprocess) in models() {
        let size = preprocess.input_size;
        let list = |values: [f32; 3]| values.map(|value| value.to_string()).join(",");
        let mean = list(preprocess.normalization.mean);
        let std = list(preprocess.normalization.std);
        for ep in eps.split(',') {
            let browser = Browser::start();
            browser
                .goto(&served.url(&format!(
                    "?model={model}&ep={ep}&size={size}&warm={warm}&mean={mean}&std={std}"
                )))
                .unwrap_or_else(|error| panic!("{error}"));
            // Software WebGPU (SwiftShader) took about 8 s a photo for Lite1 at 272 px, so the
            // wait grows with the photos: 300 s in all was too short for 40.
            let result = browser.wait_for_script(
                &format!("ONNX Runtime Web, {model} on {ep}"),
                "return document.body.dataset.result || (document.body.dataset.error \
                 ? 'error: ' + document.body.dataset.error : null)",
                Duration::from_secs(120 + 20 * (warm as u64 + 1)),
            );
            let text = result.as_str().unwrap_or_default();
            let row: Value =
                serde_json::from_str(text).unwrap_or_else(|_| panic!("{model} on {ep}: {text}"));
            rows.push(row);
        }
    }
    println!(
        "ONNX Runtime Web {} in headless Chromium, one thread, {warm} warm photos per row\n",
        std::env::var("CATDOG_ORT_VERSION").unwrap_or_default()
    );
    println!("| model | execution provider | session ready | first photo | warm median |");
    println!("|---|---|---:|---:|---:|");
    for row in &mut rows {
        let warm: Vec<f64> = row["warm_ms"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        let median = median(&warm);
        row["warm_median_ms"] = json!(median);
        println!(
            "| {} | {} | {:.0} ms | {:.0} ms | {median:.0} ms |",
            row["model"].as_str().unwrap_or_default(),
            row["ep"].as_str().unwrap_or_default(),
            row["ready_ms"].as_f64().unwrap_or(f64::NAN),
            row["first_ms"].as_f64().unwrap_or(f64::NAN),
        );
    }
    if let Some(path) = std::env::var_os("CATDOG_BENCH_JSON") {
        std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    }
}

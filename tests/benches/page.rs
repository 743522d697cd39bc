//! How fast the page classifies photos on the CPU in headless Chromium, per shipped model: a
//! table of milliseconds per photo, warm (the first photo, which on the CPU runs on the
//! browser's baseline-compiled code and on WebGPU after the page's warm-up run, is reported
//! apart), as the page itself times them (decode, preprocessing and network).
//!
//! `scripts/bench-page` builds the release site first and runs this; by hand:
//! `CATDOG_DIST=dist-release cargo bench -p catdog-tests --bench page`. `CATDOG_BENCH_PHOTOS`
//! sets how many warm photos per model (default 12); `CATDOG_BENCH_BACKENDS` which backends
//! (default `flex`, the page's CPU backend; `flex,wgpu` adds WebGPU). The rows open the page with
//! `?backend=…`, so flex rows time the page's build without WebGPU and wgpu rows its WebGPU
//! build (index.html); the table names the build and its wasm's size. Under `cargo test` (no `--bench`) it runs once, one warm photo per
//! model on flex: a check that every shipped model loads and classifies in the page.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use catdog_tests::webdriver::Browser;
use catdog_tests::{dist, median, page_code, serve, workspace};

/// The shipped models, as the page's `?model=` names them.
const MODELS: [(&str, &str); 2] = [("accurate", "catdog.bpk"), ("small", "catdog-small.bpk")];
const PHOTOS: [&str; 4] = ["cat.jpg", "dog.jpg", "cat-grey.jpg", "dog-cmyk.jpg"];

struct Row {
    model: &'static str,
    file_bytes: u64,
    backend: String,
    /// The build index.html chose (`webgpu` or `cpu`) and its wasm file's size.
    build: String,
    wasm_bytes: u64,
    ready_seconds: f64,
    /// When the model was ready, in the page's own clock (ms since navigation began).
    ready_in_page_ms: f64,
    first_ms: f64,
    warm_ms: Vec<f64>,
    /// Where the time to ready went: [`STEPS`] in the page's clock.
    steps_ms: Vec<f64>,
}

/// The moments of the page's start, in order, with what happened up to each: the page's wasm
/// and HTML (Resource Timing) and the marks the page puts on the performance timeline.
const STEPS: [(&str, &str); 6] = [
    ("wasm arrived", "resource:.wasm"),
    ("code started", "catdog:started"),
    ("model arrived", "catdog:downloaded"),
    ("loading began", "catdog:loading"),
    ("network built", "catdog:loaded"),
    ("ready (warmed up on WebGPU)", "catdog:ready"),
];

/// [`STEPS`] as the page's clock says them, in ms since navigation began: the last of each
/// mark, which is the load that finished (a load that fell back from WebGPU marks twice).
fn steps_ms(browser: &Browser) -> Vec<f64> {
    let names: Vec<&str> = STEPS.iter().map(|(_, name)| *name).collect();
    let found = browser.execute(
        "return arguments[0].map(name => name === 'resource:.wasm' \
           ? Math.max(...performance.getEntriesByType('resource') \
               .filter(e => e.name.endsWith('.wasm')).map(e => e.responseEnd)) \
           : (performance.getEntriesByName(name).at(-1) || {}).startTime ?? null)",
        serde_json::json!([names]),
    );
    found
        .as_array()
        .expect("one time per step")
        .iter()
        .zip(STEPS)
        .map(|(ms, (what, _))| ms.as_f64().unwrap_or_else(|| panic!("no time for {what}")))
        .collect()
}

fn main() {
    let dist = dist();
    let timing = std::env::args().any(|arg| arg == "--bench");
    let warm: usize = std::env::var("CATDOG_BENCH_PHOTOS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if timing { 12 } else { 1 });
    let backends = std::env::var("CATDOG_BENCH_BACKENDS").unwrap_or("flex".into());
    let site = serve(dist.clone());
    let fixtures = workspace().join("tests/fixtures");
    let mut rows = Vec::new();
    for (model, file) in MODELS {
        let file_bytes = std::fs::metadata(dist.join("model").join(file))
            .unwrap_or_else(|error| panic!("{}/model/{file}: {error}", dist.display()))
            .len();
        for backend in backends.split(',') {
            let url = site.url(&format!("?model={model}&backend={backend}"));
            let browser = Browser::start();
            let started = Instant::now();
            browser.goto(&url).unwrap_or_else(|error| panic!("{error}"));
            let status =
                browser.wait_for_element("#model-status[data-backend]", Duration::from_secs(300));
            let ready_seconds = started.elapsed().as_secs_f64();
            let backend = browser.attribute(&status, "data-backend");
            let ready_in_page_ms: f64 = browser
                .attribute(&status, "data-ready-ms")
                .parse()
                .expect("the page's ready time in data-ready-ms");
            let (build, wasm) = page_code(&browser);
            let steps_ms = steps_ms(&browser);
            let wasm_bytes = wasm
                .iter()
                .map(|name| {
                    std::fs::metadata(dist.join(name))
                        .unwrap_or_else(|error| panic!("{name}: {error}"))
                        .len()
                })
                .sum();
            let input =
                browser.wait_for_element("#photo-input:not([disabled])", Duration::from_secs(60));
            let mut times = Vec::new();
            for round in 0..=warm {
                let name = PHOTOS[round % PHOTOS.len()];
                let path: PathBuf = fixtures.join(name).canonicalize().unwrap();
                // One photo at a time: the card of the n-th photo given is `#photo-n`.
                browser.set_file(&input, &path);
                let shown = browser.wait_for_element(
                    &format!("#photo-{}[data-state=\"done\"]", round + 1),
                    Duration::from_secs(300),
                );
                let label = browser.attribute(&shown, "data-label");
                assert!(["cat", "dog"].contains(&label.as_str()), "{model}: {label}");
                let ms: f64 = browser
                    .attribute(&shown, "data-ms")
                    .parse()
                    .expect("the page's timing in data-ms");
                times.push(ms);
            }
            let first_ms = times.remove(0);
            eprintln!("{model} on {backend}: {times:?} ms");
            rows.push(Row {
                model,
                file_bytes,
                backend,
                build,
                wasm_bytes,
                ready_seconds,
                ready_in_page_ms,
                first_ms,
                warm_ms: times,
                steps_ms,
            });
        }
    }
    println!(
        "page in headless Chromium ({}), site {}, {} warm photos per row; \
         first verdict = model ready in the page's clock + the first photo\n",
        std::env::var("CHROME_BIN").unwrap_or("/usr/bin/chromium".into()),
        dist.display(),
        warm
    );
    println!(
        "| model | file | backend | page build (wasm) | model ready | first verdict | first photo | warm median | warm min | warm max |"
    );
    println!("|---|---:|---|---|---:|---:|---:|---:|---:|---:|");
    let mut json = Vec::new();
    for row in &rows {
        let median = median(&row.warm_ms);
        let (min, max) = row
            .warm_ms
            .iter()
            .fold((f64::NAN, f64::NAN), |(lo, hi), &ms| {
                (ms.min(lo), ms.max(hi))
            });
        let first_verdict_ms = row.ready_in_page_ms + row.first_ms;
        println!(
            "| {} | {:.2} MB | {} | {} ({:.1} MB) | {:.2} s | {:.2} s | {:.0} ms | {median:.0} ms | {min:.0} ms | {max:.0} ms |",
            row.model,
            row.file_bytes as f64 / 1e6,
            row.backend,
            row.build,
            row.wasm_bytes as f64 / 1e6,
            row.ready_in_page_ms / 1e3,
            first_verdict_ms / 1e3,
            row.first_ms,
        );
        json.push(serde_json::json!({
            "model": row.model, "backend": row.backend, "file_bytes": row.file_bytes,
            "build": row.build, "wasm_bytes": row.wasm_bytes,
            "ready_ms": row.ready_seconds * 1e3, "ready_in_page_ms": row.ready_in_page_ms,
            "first_verdict_ms": first_verdict_ms, "first_ms": row.first_ms,
            "warm_ms": row.warm_ms, "warm_median_ms": median,
            "steps_ms": STEPS.iter().zip(&row.steps_ms)
                .map(|((what, _), ms)| (what.to_string(), serde_json::json!(ms)))
                .collect::<serde_json::Map<_, _>>(),
        }));
    }
    println!("\nwhere the time to ready went, in ms since navigation began (the page's clock):\n");
    let heads: Vec<&str> = STEPS.iter().map(|(what, _)| *what).collect();
    println!("| model | backend | {} |", heads.join(" | "));
    println!("|---|---|{}", "---:|".repeat(STEPS.len()));
    for row in &rows {
        let times: Vec<String> = row.steps_ms.iter().map(|ms| format!("{ms:.0}")).collect();
        println!(
            "| {} | {} | {} |",
            row.model,
            row.backend,
            times.join(" | ")
        );
    }
    // For scripts/bench-peers, which sets it.
    if let Some(path) = std::env::var_os("CATDOG_BENCH_JSON") {
        std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    }
}

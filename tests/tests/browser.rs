//! The built page in headless Chromium: served as static files from a sub-path of a server on
//! 127.0.0.1, a real photo chosen through the file input, a prediction shown, once on WebGPU
//! and once forced to the CPU, both giving the same label.
//!
//! Needs the site built into `dist/` (`trunk build`, or `CATDOG_DIST=...`), Debian's
//! `chromium` and `chromedriver` (or `CHROME_BIN` / `CHROMEDRIVER`). `CATDOG_SCREENSHOT=FILE`
//! saves a picture of the WebGPU result (the README's screenshot).
#![cfg(not(target_family = "wasm"))]

use std::path::{Path, PathBuf};
use std::time::Duration;

use catdog_tests::webdriver::Browser;
use catdog_tests::{SUB_PATH, dist, serve, workspace};

/// What the page showed for one photo.
#[derive(Debug)]
struct Shown {
    model_backend: String,
    label: String,
    prediction_backend: String,
    text: String,
}

/// Opens the page in a fresh browser, waits for the model, chooses `photo` and waits for the
/// prediction. `screenshot`: where to save a picture of the result, if anywhere.
fn classify_in_page(url: &str, photo: &Path, screenshot: Option<PathBuf>) -> Shown {
    let mut browser = Browser::start();
    // Headless Chromium on this 2-core machine has now and then stopped answering while loading
    // the 74 MB debug wasm (about 1 load in 4 under load, never twice in a row). One more try in
    // a fresh browser, said out loud, rather than a red run; a second failure fails the test.
    if let Err(error) = browser.goto(url) {
        eprintln!("WARNING: the page did not load ({error}); retrying once in a fresh browser");
        drop(browser);
        browser = Browser::start();
        browser.goto(url).unwrap_or_else(|error| panic!("{error}"));
    }
    let status = browser.wait_for_element("#model-status[data-backend]", Duration::from_secs(180));
    let model_backend = browser.attribute(&status, "data-backend");
    let input = browser.wait_for_element("#photo-input:not([disabled])", Duration::from_secs(30));
    browser.set_file(&input, photo);
    let prediction = browser.wait_for_element("#prediction[data-label]", Duration::from_secs(180));
    if let Some(path) = screenshot {
        std::fs::write(path, browser.screenshot()).unwrap();
    }
    Shown {
        model_backend,
        label: browser.attribute(&prediction, "data-label"),
        prediction_backend: browser.attribute(&prediction, "data-backend"),
        text: browser.text(&prediction),
    }
}

#[test]
fn page_classifies_a_chosen_photo_on_webgpu_and_on_cpu() {
    let port = serve(dist());
    let page = format!("http://127.0.0.1:{port}{SUB_PATH}");
    let photo = workspace()
        .join("tests/fixtures/cat.jpg")
        .canonicalize()
        .unwrap();
    // Each run in its own browser, as two visitors would.
    let screenshot = std::env::var_os("CATDOG_SCREENSHOT").map(PathBuf::from);
    let gpu = classify_in_page(&page, &photo, screenshot);
    let cpu = classify_in_page(&format!("{page}?backend=cpu"), &photo, None);

    assert_eq!(gpu.model_backend, "wgpu", "no WebGPU in the page: {gpu:?}");
    assert_eq!(gpu.prediction_backend, "wgpu");
    assert_eq!(cpu.model_backend, "flex", "{cpu:?}");
    assert_eq!(cpu.prediction_backend, "flex");
    assert!(["cat", "dog"].contains(&gpu.label.as_str()), "{gpu:?}");
    assert_eq!(
        gpu.label, cpu.label,
        "WebGPU and CPU disagree: {gpu:?} vs {cpu:?}"
    );
    for shown in [&gpu, &cpu] {
        assert!(shown.text.contains("cat.jpg"), "{shown:?}");
        assert!(
            shown.text.contains('%') && shown.text.contains(" ms on "),
            "{shown:?}"
        );
    }
    // Both probabilities as shown (one decimal) agree between the backends.
    let percentages = |text: &str| -> Vec<String> {
        text.split_whitespace()
            .filter(|word| word.ends_with('%'))
            .map(String::from)
            .collect()
    };
    assert_eq!(percentages(&gpu.text), percentages(&cpu.text));
}

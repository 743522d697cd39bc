//! The built page in headless Chromium, served as static files from a sub-path of a server on
//! 127.0.0.1 that records every request: real photos given as a user would (several at once in
//! the file dialog, dropped, pasted, from the camera), verdicts checked against their true
//! labels with the shipped model on WebGPU and on the CPU, broken files, switching models and
//! backends, the user's own weight file, teaching, nothing sent anywhere, a second visit
//! offline and the page installable as an app; a folder of hundreds of photos sorted (pause,
//! cancel, filters, orders, the CSV and the zip downloaded) and the grid of 50 photos.
//!
//! Needs the site built into `dist/` (`trunk build`, or `CATDOG_DIST=...`), Debian's
//! `chromium` and `chromedriver` (or `CHROME_BIN` / `CHROMEDRIVER`).
//! `CATDOG_SCREENSHOTS=DIR` (absolute: the tests run in `tests/`) saves the README's pictures
//! there: the page at desktop and phone width, the lesson, a folder being sorted.
#![cfg(not(target_family = "wasm"))]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use catdog_tests::hostile::reported_models;
use catdog_tests::webdriver::Browser;
use catdog_tests::{SUB_PATH, Site, dist, page_code, serve, workspace};
use serde_json::{Value, json};

/// One browser at a time: two Chromiums loading the debug wasm at once overload two cores.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// Holds [`ONE_BROWSER`] for a test (a test that failed while holding it does not stop the
/// others).
fn one_browser() -> MutexGuard<'static, ()> {
    ONE_BROWSER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const MODEL_READY: Duration = Duration::from_secs(240);
const CLASSIFIED: Duration = Duration::from_secs(300);

/// Real photos of every accepted format, named by their true label, and two files that are not
/// photos a model can read.
struct Photos {
    _dir: TempDir,
    good: Vec<PathBuf>,
    bad: Vec<PathBuf>,
}

fn photos() -> Photos {
    let dir = TempDir::new("photos");
    let fixtures = workspace().join("tests/fixtures");
    let mut good = Vec::new();
    for name in [
        "cat.jpg",
        "dog.jpg",
        "cat-exif-rotated.jpg",
        "cat-grey.jpg",
        "dog-alpha.png",
        "dog-cmyk.jpg",
        // The accurate model gives it cat 66 %: "not sure".
        "cat-unsure.jpg",
    ] {
        let path = dir.0.join(name);
        std::fs::copy(fixtures.join(name), &path).unwrap();
        good.push(path);
    }
    // The other accepted formats, encoded here from the real photos.
    for (from, to) in [
        ("cat.jpg", "cat-lossless.webp"),
        ("dog.jpg", "dog.gif"),
        ("cat-grey.jpg", "cat.bmp"),
    ] {
        let path = dir.0.join(to);
        image::open(fixtures.join(from))
            .unwrap()
            .to_rgb8()
            .save(&path)
            .unwrap();
        good.push(path);
    }
    let cat = std::fs::read(fixtures.join("cat.jpg")).unwrap();
    let broken = dir.0.join("broken.jpg");
    std::fs::write(&broken, &cat[..cat.len() / 2]).unwrap();
    let notes = dir.0.join("notes.txt");
    std::fs::write(&notes, "not a photo\n").unwrap();
    Photos {
        _dir: dir,
        good,
        bad: vec![broken, notes],
    }
}

fn true_label(path: &Path) -> &'static str {
    let name = file_name(path);
    if name.starts_with("cat") {
        "cat"
    } else {
        "dog"
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// What one card shows.
#[derive(Debug)]
struct Card {
    file: String,
    /// Its path in the folder it came from, or its name.
    path: String,
    /// The folder it is sorted into (`cat`, `not-sure`, ...); empty while unfinished.
    folder: String,
    state: String,
    label: String,
    sure: bool,
    cat: f64,
    /// The cat probability as the card gives it (four decimals, as the CSV does).
    cat_text: String,
    model: String,
    backend: String,
    text: String,
    /// The Grad-CAM heatmap's values, row by row.
    heatmap: Vec<f64>,
    /// "true" or "false" from the model's pet check; empty for a model without one.
    pet: String,
}

fn cards(browser: &Browser) -> Vec<Card> {
    let found = browser.execute(
        "return [...document.querySelectorAll('.card')].map(c => ({file: c.dataset.file, \
         path: c.dataset.path, folder: c.dataset.folder || '', cat_text: c.dataset.cat || '', \
         state: c.dataset.state, label: c.dataset.label || '', sure: c.dataset.sure === 'true', cat: parseFloat(c.dataset.cat || 'NaN'), \
         model: c.dataset.model || '', backend: c.dataset.backend || '', text: c.innerText, \
         heatmap: c.dataset.heatmap || '', pet: c.dataset.pet || ''}))",
        json!([]),
    );
    let text = |card: &Value, key: &str| card[key].as_str().unwrap_or_default().to_string();
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|card| Card {
            file: text(card, "file"),
            path: text(card, "path"),
            folder: text(card, "folder"),
            cat_text: text(card, "cat_text"),
            state: text(card, "state"),
            label: text(card, "label"),
            sure: card["sure"].as_bool().unwrap_or(false),
            cat: card["cat"].as_f64().unwrap_or(f64::NAN),
            model: text(card, "model"),
            backend: text(card, "backend"),
            text: text(card, "text"),
            heatmap: text(card, "heatmap")
                .split_once(": ")
                .map(|(_, values)| values.split(',').map(|v| v.parse().unwrap()).collect())
                .unwrap_or_default(),
            pet: text(card, "pet"),
        })
        .collect()
}

/// Waits until `total` photos are on the page and all are finished.
fn wait_until_classified(browser: &Browser, total: usize) -> Vec<Card> {
    browser.wait_for_script(
        &format!("{total} photos classified"),
        &format!(
            "const p = document.querySelector('#progress-count'); \
             return p && p.dataset.total == '{total}' && p.dataset.finished == '{total}'"
        ),
        CLASSIFIED,
    );
    cards(browser)
}

fn wait_for_model(browser: &Browser, model: &str, backend: &str) {
    browser.wait_for_element(
        &format!("#model-status[data-model=\"{model}\"][data-backend=\"{backend}\"]"),
        MODEL_READY,
    );
}

/// Opens the page; one retry in a fresh browser if Chromium stops answering while loading the
/// 74 MB debug wasm, which it has done now and then on this 2-core machine (never twice).
fn open(url: &str) -> Browser {
    open_in(Browser::start, url)
}

/// [`open`] in a browser that `start` starts.
fn open_in(start: fn() -> Browser, url: &str) -> Browser {
    let browser = start();
    if let Err(error) = browser.goto(url) {
        eprintln!("WARNING: the page did not load ({error}); retrying once in a fresh browser");
        drop(browser);
        let browser = start();
        browser.goto(url).unwrap_or_else(|error| panic!("{error}"));
        return browser;
    }
    browser
}

/// Opens the page at `query` with its default model in a browser that `start` starts, and
/// waits until the model is ready on `backend` and the offline cache holds the page.
fn open_ready(site: &Site, start: fn() -> Browser, query: &str, backend: &str) -> Browser {
    let browser = open_in(start, &site.url(query));
    wait_for_model(&browser, "accurate", backend);
    browser.wait_for_element("#offline-status[data-ready=\"true\"]", MODEL_READY);
    browser
}

/// The files of the page's two builds, with and without WebGPU, as the built index.html names
/// them (Trunk.toml, `pattern_script`).
struct Builds {
    webgpu: Build,
    cpu: Build,
}

struct Build {
    js: String,
    wasm: String,
}

fn builds() -> Builds {
    let html = std::fs::read_to_string(dist().join("index.html")).unwrap();
    let list = html
        .split_once(r#"<script id="catdog-builds" type="application/json">"#)
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .unwrap_or_else(|| panic!("index.html lists no builds: {html}"))
        .0;
    let list: Value = serde_json::from_str(list).unwrap_or_else(|error| panic!("{list}: {error}"));
    let build = |name: &str| {
        let file = |kind: &str| {
            let url = list[name][kind]
                .as_str()
                .unwrap_or_else(|| panic!("{list}"));
            url.trim_start_matches("./").to_string()
        };
        Build {
            js: file("js"),
            wasm: file("wasm"),
        }
    };
    let builds = Builds {
        webgpu: build("webgpu"),
        cpu: build("cpu"),
    };
    assert_ne!(builds.webgpu.wasm, builds.cpu.wasm);
    builds
}

/// Requests the page made (`Network.requestWillBeSent`): `(method, url, has a body)`.
fn page_requests(browser: &Browser) -> Vec<(String, String, bool)> {
    browser
        .network_events()
        .into_iter()
        .filter(|(method, _)| method == "Network.requestWillBeSent")
        .map(|(_, params)| {
            let request = &params["request"];
            (
                request["method"].as_str().unwrap_or_default().to_string(),
                request["url"].as_str().unwrap_or_default().to_string(),
                request["hasPostData"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// Classifies `files` through the file dialog and checks that nothing left the browser while
/// it did ([`assert_nothing_sent`]).
fn classify_privately(browser: &Browser, site: &Site, files: &[PathBuf]) -> Vec<Card> {
    let _ = browser.network_events();
    let before = site.received().len();
    let input = browser.wait_for_element("#photo-input", Duration::from_secs(30));
    browser.set_files(&input, files);
    let shown = wait_until_classified(browser, files.len());
    assert_nothing_sent(browser, site, before, "classifying photos");
    shown
}

/// Checks that nothing left the browser since the page's network log was last read and the
/// server had received `before` requests: the page requested nothing but `blob:` (the photos
/// themselves, thumbnails, downloads) and `data:` (heatmaps it drew), and the server got
/// nothing.
fn assert_nothing_sent(browser: &Browser, site: &Site, before: usize, while_doing: &str) {
    for (method, url, has_body) in page_requests(browser) {
        let in_memory = url.starts_with("blob:") || url.starts_with("data:");
        assert!(
            in_memory && !has_body,
            "the page sent a request while {while_doing}: {method} {url}"
        );
    }
    let during = &site.received()[before..];
    assert!(
        during.is_empty(),
        "the server got requests while the page was {while_doing}: {during:?}"
    );
}

/// Clicks the element matching `css`, once it is there.
fn click_on(browser: &Browser, css: &str) {
    let element = browser.wait_for_element(css, Duration::from_secs(30));
    browser.click(&element);
}

fn clear(browser: &Browser) {
    click_on(browser, "#clear");
    browser.wait_for_script(
        "the cards to go",
        "return document.querySelectorAll('.card').length === 0",
        Duration::from_secs(10),
    );
}

fn choose(browser: &Browser, select: &str, value: &str) {
    click_on(browser, &format!("{select} option[value=\"{value}\"]"));
}

#[test]
fn several_photos_on_webgpu_and_cpu_broken_files_and_switching_models() {
    let _one = one_browser();
    let site = serve(dist());
    let photos = photos();
    let browser = open_ready(&site, Browser::start, "?backend=gpu", "wgpu");
    // The network log sees the page's own requests (so its silence later means something).
    let startup = page_requests(&browser);
    assert!(
        startup
            .iter()
            .any(|(_, url, _)| url.ends_with("/model/catdog.bpk")),
        "{startup:?}"
    );
    // The model is downloaded once, by index.html's preload, which starts while the wasm is
    // still arriving rather than after it has compiled: the page's own fetch of it is answered
    // by the preload (a second download would be a second entry).
    let downloads = browser.execute(
        "const entries = (end) => performance.getEntriesByType('resource').filter(e => e.name.endsWith(end)); \
         const wasm = entries('.wasm'); \
         return {model: entries('/model/catdog.bpk').map(e => [e.initiatorType, e.startTime]), \
                 wasm_end: wasm.length === 1 ? wasm[0].responseEnd : null}",
        json!([]),
    );
    // `?backend=gpu` gets the page's WebGPU build, and only that one.
    assert_eq!(
        page_code(&browser),
        ("webgpu".to_string(), vec![builds().webgpu.wasm])
    );
    let model = downloads["model"].as_array().unwrap();
    assert_eq!(
        model.len(),
        1,
        "the model downloaded more than once: {downloads}"
    );
    assert_eq!(model[0][0], "link", "not by the preload: {downloads}");
    assert!(
        model[0][1].as_f64().unwrap()
            < downloads["wasm_end"]
                .as_f64()
                .unwrap_or_else(|| panic!("not one wasm download: {downloads}")),
        "the model was asked for only after the wasm had arrived: {downloads}"
    );

    // Several photos at once, two of them broken: every photo gets its card, in order.
    let all: Vec<PathBuf> = photos.good.iter().chain(&photos.bad).cloned().collect();
    let gpu = classify_privately(&browser, &site, &all);
    assert_eq!(gpu.len(), all.len());
    for card in &gpu {
        let path = all
            .iter()
            .find(|path| file_name(path) == card.file)
            .unwrap();
        if photos.bad.contains(path) {
            assert_eq!(card.state, "error", "{card:?}");
        } else {
            assert_eq!(card.state, "done", "{card:?}");
            assert_eq!(card.label, true_label(path), "wrong verdict: {card:?}");
            assert_eq!(card.pet, "true", "a pet taken for neither: {card:?}");
            assert_eq!(
                (card.model.as_str(), card.backend.as_str()),
                ("accurate", "wgpu")
            );
            assert!(
                card.text.contains(" ms,") && card.text.contains('%'),
                "{card:?}"
            );
            // Below Prediction::SURE the card says so.
            let unsure = card.file == "cat-unsure.jpg";
            assert_eq!(card.sure, !unsure, "{card:?}");
            let verdict = if unsure {
                "Not sure: maybe a cat"
            } else {
                "It's a"
            };
            assert!(card.text.contains(verdict), "{card:?}");
        }
    }
    // Thumbnails stand upright: the EXIF-rotated copy shows with the original's shape.
    let shapes = browser.execute(
        "const shape = (name) => { \
           const img = document.querySelector(`.card[data-file='${name}'] img`); \
           return [img.naturalWidth, img.naturalHeight]; }; \
         return [shape('cat.jpg'), shape('cat-exif-rotated.jpg')]",
        json!([]),
    );
    assert_eq!(
        shapes[0], shapes[1],
        "thumbnail shapes (original, EXIF-rotated): {shapes}"
    );
    assert_eq!(shapes[0], json!([240, 160]), "{shapes}");
    let error_text = |name: &str| &gpu.iter().find(|card| card.file == name).unwrap().text;
    assert!(error_text("broken.jpg").contains("truncated"), "{gpu:?}");
    assert!(error_text("notes.txt").contains("not an image"), "{gpu:?}");
    // "Why?" lays the 9 x 9 Grad-CAM heatmap (Lite1 at 272 px) over the part of the photo
    // the accurate model saw (squashed to a square, then its centred part), and hides it again.
    let why = ".card[data-file='cat.jpg'] .why";
    click_on(&browser, ".card[data-file='cat.jpg'] .why-toggle");
    browser.wait_for_script(
        "the heatmap over the part of the photo the model saw",
        &heatmap_over_centred_part(
            "cat.jpg",
            accurate_crop(),
            "heat.naturalWidth === 9 && heat.naturalHeight === 9",
        ),
        Duration::from_secs(10),
    );
    click_on(&browser, ".card[data-file='cat.jpg'] .why-toggle");
    browser.wait_for_script(
        "the heatmap to hide",
        &format!("return document.querySelector(\"{why}\").getBoundingClientRect().height === 0"),
        Duration::from_secs(10),
    );

    // The same photos on the CPU backend: same verdicts, same probabilities. The choice is
    // remembered for the next visit (the end of this test makes one).
    choose(&browser, "#backend-choice", "flex");
    wait_for_model(&browser, "accurate", "flex");
    assert_eq!(
        browser.execute("return localStorage.getItem('catdog-build')", json!([])),
        json!("cpu")
    );
    clear(&browser);
    // The CPU backends run on the page's only thread: between photos the page must yield, so
    // the browser paints frames showing the count go up, instead of freezing until the end.
    browser.execute(
        "window.countsPainted = new Set(); \
         const record = () => { \
           const count = document.querySelector('#progress-count'); \
           if (count) window.countsPainted.add(count.dataset.finished); \
           requestAnimationFrame(record); }; \
         requestAnimationFrame(record);",
        json!([]),
    );
    let cpu = classify_privately(&browser, &site, &photos.good);
    let painted = browser.execute("return [...window.countsPainted].map(Number)", json!([]));
    let between: Vec<u64> = painted
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .filter(|&finished| finished > 0 && finished < photos.good.len() as u64)
        .collect();
    assert!(
        between.len() >= photos.good.len() / 2,
        "the page painted too few frames while it classified: counts seen {painted}"
    );
    for card in &cpu {
        let on_gpu = gpu.iter().find(|gpu| gpu.file == card.file).unwrap();
        assert_eq!(
            (card.state.as_str(), card.backend.as_str()),
            ("done", "flex"),
            "{card:?}"
        );
        assert_eq!(card.label, on_gpu.label, "{card:?} vs {on_gpu:?}");
        assert!(
            (card.cat - on_gpu.cat).abs() < 2e-3,
            "{card:?} vs {on_gpu:?}"
        );
        // The same heatmap, and one that is really there: scaled so its hottest cell is 1.
        assert_eq!(card.heatmap.len(), 81, "{card:?}");
        assert_eq!(card.heatmap.iter().copied().fold(0.0, f64::max), 1.0);
        let apart = card
            .heatmap
            .iter()
            .zip(&on_gpu.heatmap)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            apart < 0.02,
            "heatmaps {apart} apart: {card:?} vs {on_gpu:?}"
        );
    }

    // A photo of a man with a camera: neither a cat nor a dog, says the accurate model.
    clear(&browser);
    let person = workspace().join("tests/fixtures/non-pets/scikit-image-camera.jpg");
    let neither = classify_privately(&browser, &site, &[person]);
    assert_eq!(
        (neither[0].state.as_str(), neither[0].pet.as_str()),
        ("done", "false"),
        "{neither:?}"
    );
    assert!(
        neither[0].text.contains("Neither a cat nor a dog"),
        "{neither:?}"
    );

    // The small model, on the backend in use.
    choose(&browser, "#model-choice", "small");
    wait_for_model(&browser, "small", "flex");
    clear(&browser);
    let small = classify_privately(&browser, &site, &photos.good[..2]);
    assert!(
        small
            .iter()
            .all(|card| card.state == "done" && card.model == "small" && card.pet.is_empty()),
        "{small:?}"
    );
    // The small model crops (the photo squashed to a square first, as its training photos
    // were): its "Why?" heatmap lies over the centred 7/8 of the 3:2 photo's width and height
    // that it saw, not stretched over the whole photo.
    click_on(&browser, ".card[data-file='cat.jpg'] .why-toggle");
    browser.wait_for_script(
        "the small model's heatmap over the part it saw",
        &heatmap_over_centred_part("cat.jpg", 0.875, "true"),
        Duration::from_secs(10),
    );

    // A weight file of the user's: a broken one is refused by name and the model in use
    // stays; a real one is used.
    let own_dir = TempDir::new("own-model");
    let not_weights = own_dir.0.join("not-really.bpk");
    std::fs::copy(&photos.good[0], &not_weights).unwrap();
    let weights = own_dir.0.join("my-model.bpk");
    std::fs::copy(workspace().join("www/model/catdog-small.bpk"), &weights).unwrap();
    let model_file = browser.wait_for_element("#model-file", Duration::from_secs(10));
    browser.set_file(&model_file, &not_weights);
    let refused = browser.wait_for_element("#model-notice", Duration::from_secs(60));
    let refusal = browser.text(&refused);
    assert!(
        refusal.contains("not-really.bpk") && refusal.contains("not a catdog model file"),
        "{refusal}"
    );
    wait_for_model(&browser, "small", "flex");
    // The hand-edited files users reported (each once aborted or panicked the wasm, or gave
    // NaN): each is refused naming the file and the field, and the model in use stays and
    // still classifies.
    // (Edited from the CNN fixture: the reports name its fields.)
    let cnn = std::fs::read(workspace().join("tests/fixtures/small-cnn.bpk")).unwrap();
    for hostile in reported_models(&cnn) {
        let path = own_dir.0.join(hostile.name);
        std::fs::write(&path, &hostile.bytes).unwrap();
        browser.set_file(&model_file, &path);
        browser.wait_for_script(
            &format!("the page to refuse {}", hostile.name),
            &format!(
                "const notice = document.querySelector('#model-notice'); \
                 return !!notice && notice.textContent.includes({:?}) \
                   && notice.textContent.includes({:?})",
                hostile.name, hostile.names
            ),
            Duration::from_secs(60),
        );
        wait_for_model(&browser, "small", "flex");
    }
    clear(&browser);
    let after_hostile = classify_privately(&browser, &site, &photos.good[..1]);
    assert_eq!(
        (
            after_hostile[0].state.as_str(),
            after_hostile[0].model.as_str()
        ),
        ("done", "small"),
        "{after_hostile:?}"
    );
    browser.set_file(&model_file, &weights);
    wait_for_model(&browser, "own", "flex");
    clear(&browser);
    let own = classify_privately(&browser, &site, &photos.good[..1]);
    assert_eq!(
        (own[0].state.as_str(), own[0].model.as_str()),
        ("done", "own"),
        "{own:?}"
    );
    // Same weights as the small model: the same probabilities.
    let small_cat = small
        .iter()
        .find(|card| card.file == own[0].file)
        .unwrap()
        .cat;
    assert!(
        (own[0].cat - small_cat).abs() < 1e-4,
        "{own:?} vs {small:?}"
    );

    // Nothing the page ever sent carried a body.
    for request in site.received() {
        assert!(
            request.method == "GET" && request.body_bytes == 0,
            "{request:?}"
        );
    }

    // The CPU, chosen under "Runs on" in the WebGPU build, is remembered: a later visit that
    // asks for nothing starts the build without WebGPU.
    browser
        .goto(&site.url(""))
        .unwrap_or_else(|error| panic!("{error}"));
    wait_for_model(&browser, "accurate", "flex");
    assert_eq!(page_code(&browser).0, "cpu");
}

/// The centred fraction of each side of the squashed photo that the shipped accurate model
/// sees (its header's geometry).
fn accurate_crop() -> f64 {
    let bytes = std::fs::read(workspace().join("www/model/catdog.bpk")).unwrap();
    let file = catdog_model::ModelFile::parse(&bytes).unwrap();
    let geometry = file.header.preprocess.geometry;
    assert!(
        matches!(geometry, catdog_model::Geometry::SquashThenCrop { .. }),
        "{geometry:?}"
    );
    f64::from(geometry.fraction().unwrap())
}

/// A script that is true once `file`'s card shows its "Why?" heatmap over the centred
/// `fraction` of the photo's width and height (what a model that squashes then crops saw),
/// the photo wider than tall and large enough to tell, and `heat_check` holds.
fn heatmap_over_centred_part(file: &str, fraction: f64, heat_check: &str) -> String {
    format!(
        "const why = document.querySelector(\".card[data-file='{file}'] .why\"); \
         const [photo, heat] = [why.querySelector('.why-photo'), why.querySelector('.why-heat')]; \
         const [p, h] = [photo.getBoundingClientRect(), heat.getBoundingClientRect()]; \
         const part = (side, shown) => Math.round(side * {fraction}) / side * shown; \
         return heat.complete && ({heat_check}) && p.width > 1.4 * p.height && p.height > 100 \
           && Math.abs(h.height - part(photo.naturalHeight, p.height)) < 1.5 \
           && Math.abs(h.width - part(photo.naturalWidth, p.width)) < 1.5 \
           && Math.abs((h.left + h.right) / 2 - (p.left + p.right) / 2) < 1.5 \
           && Math.abs((h.top + h.bottom) / 2 - (p.top + p.bottom) / 2) < 1.5"
    )
}

#[test]
fn teaching_the_model_in_the_page_and_downloading_what_it_learned() {
    let _one = one_browser();
    let site = serve(dist());
    let dir = TempDir::new("teach");
    // The shipped accurate model calls the first a dog and the second a cat; the user
    // corrects both and leaves the others unlabelled.
    let names = [
        "cat-called-dog.jpg",
        "dog-called-cat.jpg",
        "cat.jpg",
        "dog.jpg",
        "dog-alpha.png",
        "cat-grey.jpg",
    ];
    let files: Vec<PathBuf> = names
        .iter()
        .map(|name| {
            let path = dir.0.join(name);
            std::fs::copy(workspace().join("tests/fixtures").join(name), &path).unwrap();
            path
        })
        .collect();
    // A model name the page does not know: said, and the default is used all the same (on
    // the CPU, in the build without WebGPU that a visit starts by default).
    let browser = open(&site.url("?model=nope"));
    wait_for_model(&browser, "accurate", "flex");
    let notice = browser.wait_for_element("#model-notice", Duration::from_secs(10));
    let notice = browser.text(&notice);
    assert!(notice.contains("no model called 'nope'"), "{notice}");
    let before = classify_privately(&browser, &site, &files);
    let verdict = |cards: &[Card], name: &str| {
        let card = cards.iter().find(|card| card.file == name).unwrap();
        (card.label.clone(), card.cat, card.model.clone())
    };
    assert_eq!(
        verdict(&before, "cat-called-dog.jpg").0,
        "dog",
        "{before:?}"
    );
    assert_eq!(
        verdict(&before, "dog-called-cat.jpg").0,
        "cat",
        "{before:?}"
    );
    // Nothing to teach yet: the lesson stays out of the way.
    let teach_height = "return document.querySelector('.teach').getBoundingClientRect().height";
    assert_eq!(browser.execute(teach_height, json!([])), json!(0));

    click_on(&browser, ".card[data-file='cat-called-dog.jpg'] .truth-cat");
    click_on(&browser, ".card[data-file='dog-called-cat.jpg'] .truth-dog");
    browser.wait_for_script(
        "both answers given",
        "return document.querySelector(\".card[data-file='cat-called-dog.jpg']\").dataset.truth === 'cat' \
           && document.querySelector(\".card[data-file='dog-called-cat.jpg']\").dataset.truth === 'dog'",
        Duration::from_secs(10),
    );
    // Every step's loss as the page shows it.
    browser.execute(
        "window.lessonLosses = {}; \
         new MutationObserver(() => { \
           const status = document.querySelector('#lesson-status[data-step]'); \
           if (status) window.lessonLosses[status.dataset.step] = parseFloat(status.dataset.loss); \
         }).observe(document.body, {subtree: true, childList: true, attributes: true});",
        json!([]),
    );
    let requests_before = site.received().len();
    click_on(&browser, "#teach-start");
    let result = browser.wait_for_element("#lesson-result", CLASSIFIED);
    let loss = |name: &str| browser.attribute(&result, name).parse::<f64>().unwrap();
    let (first, last) = (loss("data-before"), loss("data-after"));
    assert!(last < first / 4.0, "the loss went from {first} to {last}");
    let steps = browser.execute("return window.lessonLosses", json!([]));
    let steps = steps.as_object().unwrap();
    assert_eq!(steps.len(), 10, "steps seen: {steps:?}");
    assert!(
        steps["10"].as_f64().unwrap() < steps["1"].as_f64().unwrap(),
        "{steps:?}"
    );

    // The taught model is in use, and every photo was looked at again with it.
    wait_for_model(&browser, "own", "flex");
    let after = wait_until_classified(&browser, names.len());
    assert!(after.iter().all(|card| card.model == "own"), "{after:?}");
    assert_eq!(verdict(&after, "cat-called-dog.jpg").0, "cat", "{after:?}");
    assert_eq!(verdict(&after, "dog-called-cat.jpg").0, "dog", "{after:?}");
    for name in &names[2..] {
        assert_eq!(verdict(&after, name).0, verdict(&before, name).0, "{name}");
    }
    readme_picture(
        &browser,
        "page-teach.png",
        (1000, 1250),
        "document.querySelector('.teach').scrollIntoView()",
    );
    // Learning sent nothing anywhere.
    let during = &site.received()[requests_before..];
    assert!(during.is_empty(), "requests while learning: {during:?}");

    // The download is an ordinary weight file: natively, on the CPU, it gives the verdicts
    // the page gave with it on WebGPU.
    let link = browser.wait_for_element("#download-model", Duration::from_secs(10));
    assert_eq!(browser.attribute(&link, "download"), "catdog-taught.bpk");
    browser.execute(
        "fetch(arguments[0]).then(r => r.arrayBuffer()).then(buffer => { \
           const bytes = new Uint8Array(buffer); let binary = ''; \
           for (let i = 0; i < bytes.length; i += 0x8000) \
             binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000)); \
           window.taughtModel = btoa(binary); })",
        json!([browser.attribute(&link, "href")]),
    );
    let encoded = browser.wait_for_script(
        "the taught model's bytes",
        "return window.taughtModel || false",
        Duration::from_secs(60),
    );
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.as_str().unwrap())
        .unwrap();
    let file = catdog_model::ModelFile::parse(&bytes).unwrap();
    let notes = &file.header.training.as_ref().unwrap().notes;
    assert!(notes.contains("fine-tuned on 2 labelled photos"), "{notes}");
    let classifier =
        catdog_model::Classifier::from_file(&file, &catdog_model::Device::flex()).unwrap();
    for (name, path) in names.iter().zip(&files) {
        let native = classifier
            .explain_blocking(&std::fs::read(path).unwrap())
            .unwrap()
            .prediction;
        let (label, cat, _) = verdict(&after, name);
        assert_eq!(native.label.name(), label, "{name}");
        assert!(
            (f64::from(native.cat) - cat).abs() < 2e-3,
            "{name}: {native:?} vs {cat}"
        );
    }
}

#[test]
fn the_gpu_chosen_in_the_page_is_remembered_offline_and_photos_dropped_pasted_or_from_the_camera() {
    let _one = one_browser();
    let site = serve(dist());
    // A first visit starts the page's build without WebGPU (3.5 MB less to download), even in
    // a browser with WebGPU: the page says the browser has it and offers it under "Runs on".
    let browser = open_ready(&site, Browser::start, "", "flex");
    let builds = builds();
    assert_eq!(
        page_code(&browser),
        ("cpu".to_string(), vec![builds.cpu.wasm.clone()])
    );
    browser.wait_for_script(
        "the page to offer the GPU",
        "const status = document.querySelector('#model-status'); \
         const offered = [...document.querySelectorAll('#backend-choice option')].map(o => o.value); \
         return status.textContent.includes('This browser has WebGPU') \
           && !status.textContent.includes('No WebGPU') \
           && offered.join() === 'flex,load-webgpu'",
        Duration::from_secs(10),
    );
    // Choosing it opens the page again with its WebGPU build, which the model then runs on;
    // the choice is remembered, so the second visit below (an address that asks for nothing)
    // starts that build too.
    choose(&browser, "#backend-choice", "load-webgpu");
    wait_for_model(&browser, "accurate", "wgpu");
    browser.wait_for_element("#offline-status[data-ready=\"true\"]", MODEL_READY);
    assert_eq!(page_code(&browser).0, "webgpu");
    // Started by the remembered choice, not by the address (which asks for no backend, so
    // the CPU stays the fallback where WebGPU cannot run the model).
    assert_eq!(
        browser.execute(
            "return [localStorage.getItem('catdog-build'), new URLSearchParams(location.search).get('backend')]",
            json!([])
        ),
        json!(["webgpu", null])
    );
    let offered = browser.execute(
        "return [...document.querySelectorAll('#backend-choice option')].map(o => o.value)",
        json!([]),
    );
    assert_eq!(offered, json!(["wgpu", "flex"]));

    // A dropped photo and a pasted one, carried by the browser's own DataTransfer.
    let fixtures = workspace().join("tests/fixtures");
    let give = |event: &str, path: &Path| {
        let bytes = std::fs::read(path).unwrap();
        browser.execute(
            "const [kind, name, bytes] = arguments; \
             const transfer = new DataTransfer(); \
             transfer.items.add(new File([new Uint8Array(bytes)], name)); \
             const target = document.querySelector('#drop-zone'); \
             const event = kind === 'drop' \
               ? new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}) \
               : new ClipboardEvent('paste', {clipboardData: transfer, bubbles: true, cancelable: true}); \
             target.dispatchEvent(event);",
            json!([event, file_name(path), bytes]),
        );
    };
    give("drop", &fixtures.join("dog.jpg"));
    let dropped = wait_until_classified(&browser, 1);
    give("paste", &fixtures.join("cat.jpg"));
    let pasted = wait_until_classified(&browser, 2);
    assert_eq!(
        (dropped[0].file.as_str(), dropped[0].label.as_str()),
        ("dog.jpg", "dog"),
        "{dropped:?}"
    );
    assert_eq!(
        (pasted[0].file.as_str(), pasted[0].label.as_str()),
        ("cat.jpg", "cat"),
        "{pasted:?}"
    );

    // A weight file dropped on the page becomes the model (the next photo uses it).
    give("drop", &workspace().join("tests/fixtures/small-cnn.bpk"));
    wait_for_model(&browser, "own", "wgpu");

    // Chromium's fake camera (a moving test pattern): the snapshot becomes a card.
    click_on(&browser, "#camera-open");
    browser.wait_for_script(
        "the camera to show a picture",
        "const v = document.querySelector('video'); return v && v.videoWidth > 0",
        Duration::from_secs(30),
    );
    click_on(&browser, "#camera-snap");
    let shown = wait_until_classified(&browser, 3);
    assert_eq!(
        (
            shown[0].file.as_str(),
            shown[0].state.as_str(),
            shown[0].model.as_str()
        ),
        ("camera-1.jpg", "done", "own"),
        "{shown:?}"
    );

    second_visit_offline(&browser, &site, "wgpu");
}

#[test]
fn a_browser_without_webgpu_gets_the_build_without_it_and_keeps_that_offline() {
    let _one = one_browser();
    let site = serve(dist());
    let browser = open_ready(&site, Browser::without_webgpu, "", "flex");
    let builds = builds();
    assert_eq!(
        page_code(&browser),
        ("cpu".to_string(), vec![builds.cpu.wasm.clone()])
    );
    // The page says why it runs on the CPU, and offers nothing else.
    let status = browser.text(&browser.wait_for_element("#model-status", MODEL_READY));
    assert!(status.contains("no WebGPU adapter"), "{status}");
    let backends = browser.execute(
        "return [...document.querySelectorAll('#backend-choice option')].map(o => o.value)",
        json!([]),
    );
    assert_eq!(backends, json!(["flex"]));

    let fixtures = workspace().join("tests/fixtures").canonicalize().unwrap();
    let files = [fixtures.join("cat.jpg"), fixtures.join("dog.jpg")];
    let shown = classify_privately(&browser, &site, &files);
    for card in &shown {
        let path = files
            .iter()
            .find(|path| file_name(path) == card.file)
            .unwrap();
        assert_eq!(
            (
                card.state.as_str(),
                card.label.as_str(),
                card.backend.as_str(),
                card.pet.as_str()
            ),
            ("done", true_label(path), "flex", "true"),
            "{card:?}"
        );
    }
    // Nothing asked for the WebGPU build, not even the offline cache; the CPU build was
    // stored, so a second visit with the server gone starts and classifies (on the CPU).
    let received = site.received();
    assert!(
        !received
            .iter()
            .any(|request| request.url.ends_with(&builds.webgpu.wasm)
                || request.url.ends_with(&builds.webgpu.js)),
        "the WebGPU build was downloaded: {received:?}"
    );
    second_visit_offline(&browser, &site, "flex");
    // Offline, `?backend=gpu` asks for the WebGPU build, which was never stored: the page
    // starts the stored build instead (not a blank page), and it says why it has no GPU.
    browser
        .goto(&site.url("?backend=gpu"))
        .unwrap_or_else(|error| panic!("{error}"));
    let refused = browser.wait_for_element("#model-error", MODEL_READY);
    let refusal = browser.text(&refused);
    assert!(refusal.contains("no GPU code"), "{refusal}");
    assert_eq!(page_code(&browser).0, "cpu");
}

/// The page installable (Chromium's own check), its icons stored at install and kept when a
/// later visit finds the manifest missing; then a second visit with the server gone: the page,
/// its code and the model come from the offline cache, the default model starts on `backend`,
/// a photo is classified, and the manifest's icons answer.
fn second_visit_offline(browser: &Browser, site: &Site, backend: &str) {
    // The offline copy holds the app's icons from the start, and keeps them when the page is
    // visited again online (the worker drops what a new release no longer names).
    let cached_icons = "return caches.open('catdog').then(cache => cache.keys()) \
        .then(keys => keys.map(k => k.url).filter(url => url.includes('/icons/')).sort())";
    let installed = browser.execute(cached_icons, json!([]));
    assert_eq!(
        installed.as_array().map(Vec::len),
        Some(2),
        "icons stored at install: {installed}"
    );
    assert_installable(browser);
    // Visited again while the server has lost the manifest: the icons stay stored.
    site.hide("manifest.webmanifest");
    browser
        .goto(&site.url(""))
        .unwrap_or_else(|error| panic!("{error}"));
    wait_for_model(browser, "accurate", backend);
    browser.wait_for_element("#offline-status[data-ready=\"true\"]", MODEL_READY);
    assert_eq!(browser.execute(cached_icons, json!([])), installed);
    site.unhide("manifest.webmanifest");
    site.stop();
    browser
        .goto(&site.url(""))
        .unwrap_or_else(|error| panic!("{error}"));
    wait_for_model(browser, "accurate", backend);
    let input = browser.wait_for_element("#photo-input", Duration::from_secs(30));
    let dog = workspace().join("tests/fixtures/dog.jpg");
    browser.set_file(&input, &dog.canonicalize().unwrap());
    let offline = wait_until_classified(browser, 1);
    assert_eq!(
        (offline[0].state.as_str(), offline[0].label.as_str()),
        ("done", "dog"),
        "{offline:?}"
    );
    // The installed app opens offline with its icons: the manifest and each icon it names
    // come from the offline copy.
    let icons = browser.execute(
        "return fetch('./manifest.webmanifest').then(r => r.json()).then(m => Promise.all( \
           m.icons.map(i => fetch(i.src).then(r => [i.src, r.ok, r.headers.get('content-type')]))))",
        json!([]),
    );
    let icons = icons.as_array().expect("the manifest's icons");
    assert!(!icons.is_empty());
    for icon in icons {
        assert_eq!(
            (&icon[1], &icon[2]),
            (&json!(true), &json!("image/png")),
            "{icon}"
        );
    }
}

/// The page is an app Chromium would install (its own check, `Page.getInstallabilityErrors`),
/// with a web app manifest it reads without errors.
fn assert_installable(browser: &Browser) {
    let manifest = browser.cdp("Page.getAppManifest", json!({}));
    assert_eq!(manifest["errors"], json!([]), "{manifest}");
    assert!(
        manifest["url"]
            .as_str()
            .is_some_and(|url| url.ends_with(&format!("{SUB_PATH}manifest.webmanifest"))),
        "{manifest}"
    );
    let installable = browser.cdp("Page.getInstallabilityErrors", json!({}));
    assert_eq!(
        installable["installabilityErrors"],
        json!([]),
        "{installable}"
    );
}

/// Saves the page at desktop and phone width into `CATDOG_SCREENSHOTS`, if set, and checks at
/// phone width that nothing is wider than the screen and every control has a label.
fn save_screenshots(browser: &Browser) {
    readme_picture(
        browser,
        "page-desktop.png",
        (1280, 1100),
        "window.scrollTo(0, 0)",
    );
    // A long phone screen, so the picture reaches the first cards.
    readme_picture(
        browser,
        "page-phone.png",
        (390, 1500),
        "window.scrollTo(0, 0)",
    );
    browser.set_window_size(390, 844);
    let too_wide = browser.execute(
        "const width = document.documentElement.clientWidth; \
         return [...document.querySelectorAll('body *')] \
           .filter(e => e.getBoundingClientRect().right > width + 0.5) \
           .map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className)",
        json!([]),
    );
    assert_eq!(too_wide, json!([]), "wider than a phone's screen");
    assert_eq!(card_columns(browser), 1, "cards side by side on a phone");
    let unlabelled = browser.execute(
        "const labelled = (e) => (e.labels && e.labels.length) || e.getAttribute('aria-label') \
           || e.getAttribute('aria-labelledby') || (e.tagName === 'BUTTON' && e.textContent.trim()); \
         return [...document.querySelectorAll('input, select, button, progress')] \
           .filter(e => e.getAttribute('aria-hidden') !== 'true' && !labelled(e)).map(e => e.outerHTML)",
        json!([]),
    );
    assert_eq!(unlabelled, json!([]), "controls without a label");
    // Keyboard: Tab reaches every control, the hidden file inputs included (their labels show
    // the focus).
    // From the top: Chromium tabs on from where the focus last was, even after a blur.
    browser.execute(
        "const top = document.querySelector('h1'); top.tabIndex = -1; top.focus(); top.blur(); \
         top.removeAttribute('tabindex'); window.scrollTo(0, 0)",
        json!([]),
    );
    let mut reached = std::collections::BTreeSet::new();
    for _ in 0..12 {
        browser.press_key("\u{E004}");
        let id = browser.execute("return document.activeElement.id", json!([]));
        reached.insert(id.as_str().unwrap_or_default().to_string());
    }
    for control in [
        "model-choice",
        "model-file",
        "backend-choice",
        "photo-input",
        "folder-input",
        "camera-open",
    ] {
        assert!(
            reached.contains(control),
            "Tab never reached #{control}: {reached:?}"
        );
    }
    browser.set_window_size(1000, 800);
}

/// How many columns the cards are in (their distinct left edges).
fn card_columns(browser: &Browser) -> u64 {
    browser
        .execute(
            "return new Set([...document.querySelectorAll('.card')] \
               .map(c => Math.round(c.getBoundingClientRect().left))).size",
            json!([]),
        )
        .as_u64()
        .unwrap()
}

#[test]
fn fifty_photos_use_the_width_and_each_card_keeps_its_own_height() {
    let _one = one_browser();
    let site = serve(dist());
    let browser = open(&site.url("?backend=cpu"));
    wait_for_model(&browser, "accurate", "flex");
    browser.set_window_size(1280, 900);
    let files: Vec<PathBuf> = training_photos("cat", 25)
        .into_iter()
        .zip(training_photos("dog", 25))
        .flat_map(|(cat, dog)| [cat, dog])
        .collect();
    let shown = classify_privately(&browser, &site, &files);
    assert!(shown.iter().all(|card| card.state == "done"), "{shown:?}");
    // A desktop's width holds four columns of cards (two, in a narrow strip, before).
    let columns = card_columns(&browser);
    assert!(columns >= 4, "{columns} columns at 1280 px");
    // "Why?" on the first card makes it taller; the card beside it keeps its height.
    let heights = "return [...document.querySelectorAll('.card')].slice(0, 2) \
                     .map(c => c.getBoundingClientRect().height)";
    let closed = browser.execute(heights, json!([]));
    click_on(&browser, ".card .why-toggle");
    browser.wait_for_script(
        "the heatmap to show",
        "const heat = document.querySelector('.card .why-heat'); \
         return heat.complete && heat.getBoundingClientRect().height > 100",
        Duration::from_secs(10),
    );
    let opened = browser.execute(heights, json!([]));
    assert!(
        opened[0].as_f64().unwrap() > closed[0].as_f64().unwrap() + 100.0,
        "{closed} then {opened}"
    );
    assert_eq!(
        opened[1], closed[1],
        "the neighbour of an opened Why? changed its height"
    );
    // The legend's values never break inside ("cat / 0.0 %").
    let broken = browser.execute(
        "return [...document.querySelectorAll('.bar-legend span')].filter(span => \
           span.getBoundingClientRect().height > 1.6 * parseFloat(getComputedStyle(span).fontSize)) \
           .map(span => span.textContent)",
        json!([]),
    );
    assert_eq!(broken, json!([]), "legend values broken over two lines");
    save_screenshots(&browser);
}

/// What the tab holds: its JavaScript heap after a full garbage collection
/// (`--js-flags=--expose-gc`, `--enable-precise-memory-info`) and its wasm memory, in MiB,
/// and how many images the page shows.
#[derive(Debug, Clone, Copy)]
struct TabMemory {
    js_heap: f64,
    wasm: f64,
    images: u64,
}

impl std::fmt::Display for TabMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "JS heap {:.1} MiB, wasm {:.1} MiB, {} images",
            self.js_heap, self.wasm, self.images
        )
    }
}

fn tab_memory(browser: &Browser) -> TabMemory {
    let measured = browser.execute(
        "gc(); return [performance.memory.usedJSHeapSize, \
           window.wasmBindings.wasm_memory_bytes(), document.images.length]",
        json!([]),
    );
    let mib = |value: &Value| value.as_f64().unwrap() / (1 << 20) as f64;
    TabMemory {
        js_heap: mib(&measured[0]),
        wasm: mib(&measured[1]),
        images: measured[2].as_u64().unwrap(),
    }
}

/// The first `count` real training photos of a class (`cat` or `dog`), by name.
fn training_photos(class: &str, count: usize) -> Vec<PathBuf> {
    first_photos("dogs-vs-cats/train", class, count)
}

/// The first `count` full-size photos of a class (`../shared/data/originals`), by name.
fn originals(class: &str, count: usize) -> Vec<PathBuf> {
    first_photos("originals", class, count)
}

fn first_photos(folder: &str, class: &str, count: usize) -> Vec<PathBuf> {
    let source = workspace().join("../shared/data").join(folder);
    let mut names: Vec<String> = std::fs::read_dir(&source)
        .unwrap_or_else(|error| panic!("{}: {error}", source.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&format!("{class}.")))
        .collect();
    names.sort();
    names
        .into_iter()
        .take(count)
        .map(|name| source.join(name))
        .collect()
}

/// A photo folder as people have them: 245 cats at the top, 245 dogs in a subfolder, 10
/// full-size photos in another, a photo cut short, and three files that are not photos. Made at
/// test time from the real photos.
struct PhotoFolder {
    /// Removed with the folder.
    _dir: TempDir,
    /// The folder the user chooses (`<dir>/pets`).
    root: PathBuf,
    /// The paths the page gives the photos (`pets/...`), with the file they are.
    photos: Vec<(String, PathBuf)>,
    not_photos: Vec<String>,
}

fn photo_folder() -> PhotoFolder {
    let dir = TempDir::new("folder");
    let root = dir.0.join("pets");
    std::fs::create_dir_all(root.join("dogs")).unwrap();
    let mut photos = Vec::new();
    for (class, sub) in [("cat", ""), ("dog", "dogs/")] {
        for from in training_photos(class, 245) {
            let path = format!("pets/{sub}{}", file_name(&from));
            std::fs::copy(&from, dir.0.join(&path)).unwrap();
            photos.push((path, from));
        }
    }
    std::fs::create_dir_all(root.join("full-size")).unwrap();
    for from in [originals("cat", 5), originals("dog", 5)].concat() {
        let path = format!("pets/full-size/{}", file_name(&from));
        std::fs::copy(&from, dir.0.join(&path)).unwrap();
        photos.push((path, from));
    }
    let cat = std::fs::read(&photos[0].1).unwrap();
    std::fs::write(root.join("cut-short.jpg"), &cat[..cat.len() / 3]).unwrap();
    photos.push(("pets/cut-short.jpg".into(), root.join("cut-short.jpg")));
    for (path, bytes) in [
        ("pets/notes.txt", &b"vet on Tuesday\n"[..]),
        ("pets/.DS_Store", &[0u8, 0, 0, 1][..]),
        (
            "pets/dogs/walk.mp4",
            &[0u8, 0, 0, 0x18, b'f', b't', b'y', b'p'][..],
        ),
    ] {
        std::fs::write(dir.0.join(path), bytes).unwrap();
    }
    let not_photos = ["pets/.DS_Store", "pets/dogs/walk.mp4", "pets/notes.txt"];
    PhotoFolder {
        root,
        photos,
        not_photos: not_photos.map(String::from).to_vec(),
        _dir: dir,
    }
}

/// The summary line's counts by folder name.
fn summary_counts(browser: &Browser) -> std::collections::BTreeMap<String, u64> {
    let found = browser.execute(
        "const s = document.querySelector('#summary').dataset; \
         return {cat: +s.cat, dog: +s.dog, 'not-sure': +s.notSure, neither: +s.neither, \
           unreadable: +s.unreadable}",
        json!([]),
    );
    serde_json::from_value(found).unwrap()
}

/// Clicks `button` and waits for the file the page offers to be saved as `name` in `dir`;
/// prints how long that took.
fn download(browser: &Browser, button: &str, dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    let start = std::time::Instant::now();
    click_on(browser, button);
    // Chromium writes `name.crdownload` and renames it when complete.
    while !path.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{name} was not downloaded into {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let bytes = std::fs::read(&path).unwrap();
    println!(
        "{name}: {:.1} MiB, on disk {:.2} s after the click",
        bytes.len() as f64 / (1 << 20) as f64,
        start.elapsed().as_secs_f64()
    );
    bytes
}

#[test]
fn a_folder_of_photos_sorted_with_pause_and_cancel_and_taken_home_as_csv_and_zip() {
    let _one = one_browser();
    let folder = photo_folder();
    let downloads = TempDir::new("downloads");
    let site = serve(dist());
    // The small model on the CPU: the test is about the page holding hundreds of photos.
    // (`?backend=cpu` loads the page's build without WebGPU.)
    let browser = open(&site.url("?model=small&backend=cpu"));
    wait_for_model(&browser, "small", "flex");
    assert_eq!(
        page_code(&browser),
        ("cpu".to_string(), vec![builds().cpu.wasm])
    );
    browser.save_downloads_in(&downloads.0);
    let before = tab_memory(&browser);
    let total = folder.photos.len();

    // The folder, chosen as a user would, while the page counts its frames.
    browser.execute(
        "window.frames_seen = {count: 0, longest: 0, classifying: 0}; \
         let last = performance.now(); \
         const tick = (now) => { frames_seen.count += 1; \
           frames_seen.longest = Math.max(frames_seen.longest, now - last); \
           const finished = +(document.querySelector('#progress-count')?.dataset.finished ?? 0); \
           const paused = document.querySelector('#progress-count')?.dataset.paused === 'true'; \
           if (finished > 0 && !paused) \
             frames_seen.classifying = Math.max(frames_seen.classifying, now - last); \
           last = now; requestAnimationFrame(tick); }; requestAnimationFrame(tick)",
        json!([]),
    );
    let _ = browser.network_events();
    let requests_before = site.received().len();
    let started = std::time::Instant::now();
    let input = browser.wait_for_element("#folder-input", Duration::from_secs(30));
    browser.set_file(&input, &folder.root);
    // The files that are not photos are named once, and are not cards.
    let skipped = browser.wait_for_element("#skipped[data-count=\"3\"]", Duration::from_secs(30));
    let mut listed: Vec<String> = browser
        .execute(
            "return [...document.querySelectorAll('#skipped li')].map(li => li.textContent)",
            json!([]),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|path| path.as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, folder.not_photos);
    assert!(
        browser
            .text(&skipped)
            .contains("Skipped 3 files that are not photos")
    );

    // Pause once a few are done: the photo under way finishes, and then nothing moves.
    browser.wait_for_script(
        "20 photos classified",
        "return +document.querySelector('#progress-count').dataset.finished >= 20",
        CLASSIFIED,
    );
    let progress = browser.wait_for_element("#progress-count", Duration::from_secs(5));
    assert!(
        browser.text(&progress).contains(" left"),
        "no time left shown: {}",
        browser.text(&progress)
    );
    // The README's picture of a folder being sorted.
    readme_picture(
        &browser,
        "page-folder.png",
        (1280, 1100),
        "document.querySelector('#skipped').open = true; \
         document.querySelector('.inputs').scrollIntoView()",
    );
    browser.set_window_size(1000, 800);
    click_on(&browser, "#pause");
    browser.wait_for_element(
        "#progress-count[data-paused=\"true\"][data-running=\"false\"]",
        Duration::from_secs(60),
    );
    let paused_at = browser.attribute(&progress, "data-finished");
    assert!(browser.text(&progress).contains("paused"));
    let while_paused = tab_memory(&browser);
    let still = browser.attribute(&progress, "data-finished");
    let unfinished = browser.find_all(".card[aria-busy=\"true\"]").len();
    assert_eq!(
        (still.as_str(), unfinished),
        (
            paused_at.as_str(),
            total - paused_at.parse::<usize>().unwrap()
        )
    );
    click_on(&browser, "#pause");
    let shown = wait_until_classified(&browser, total);
    let classifying_took = started.elapsed();
    let frames = browser.execute("return window.frames_seen", json!([]));
    let full = tab_memory(&browser);
    let thumbnails = browser.execute(
        "const imgs = [...document.querySelectorAll('.card img.thumb')]; \
         return Promise.all(imgs.map(img => fetch(img.src).then(r => r.blob()))).then(blobs => \
           [imgs.length, blobs.reduce((sum, b) => sum + b.size, 0), \
            Math.max(...imgs.map(img => Math.max(img.naturalWidth, img.naturalHeight)))])",
        json!([]),
    );
    println!(
        "a folder of {total} photos (small model, flex): classified in {:.1} s with a pause; \
         {} frames, the longest gap {:.0} ms while classifying, {:.0} ms with the cards being \
         made; paused at {paused_at}: {while_paused}; \
         before: {before}; with the cards: {full}; thumbnails: {} of {:.2} MiB in all, \
         at most {} px",
        classifying_took.as_secs_f64(),
        frames["count"],
        frames["classifying"].as_f64().unwrap(),
        frames["longest"].as_f64().unwrap(),
        thumbnails[0],
        thumbnails[1].as_f64().unwrap() / (1 << 20) as f64,
        thumbnails[2],
    );
    // One thumbnail per card, none over 320 px: the full-size photos shrunk to 320 px on
    // their long side.
    assert_eq!(
        thumbnails[0].as_u64().unwrap() as usize,
        total,
        "{thumbnails}"
    );
    assert_eq!(thumbnails[2].as_u64().unwrap(), 320, "{thumbnails}");
    // The page kept painting: no frame waited a tenth of the whole run.
    assert!(
        frames["longest"].as_f64().unwrap() < classifying_took.as_secs_f64() * 100.0,
        "{frames} in {classifying_took:?}"
    );

    // The summary counts the cards, and every photo is where the model put it.
    let on_page = cards(&browser);
    assert_eq!(on_page.len(), total);
    let mut counted = std::collections::BTreeMap::new();
    for card in &on_page {
        *counted.entry(card.folder.clone()).or_insert(0u64) += 1;
    }
    let summary = summary_counts(&browser);
    for (folder_name, count) in &summary {
        assert_eq!(
            counted.get(folder_name).copied().unwrap_or(0),
            *count,
            "{folder_name}: {summary:?} against the cards {counted:?}"
        );
    }
    assert_eq!(summary.values().sum::<u64>() as usize, total);
    assert_eq!(summary["unreadable"], 1);
    let right = shown
        .iter()
        .filter(|card| card.file.starts_with(&card.label))
        .count();
    println!(
        "summary: {summary:?}; {right} of {} labels right",
        total - 1
    );
    for card in &on_page {
        let expected = match (card.state.as_str(), card.sure) {
            ("error", _) => "unreadable",
            (_, false) => "not-sure",
            (_, true) => card.label.as_str(),
        };
        // The small model has no "neither" check: every photo is a cat, a dog or not sure.
        assert_eq!(card.folder, expected, "{card:?}");
    }

    // The same folder chosen again adds nothing, and says so.
    browser.set_file(&input, &folder.root);
    browser.wait_for_element(
        &format!("#already-here[data-count=\"{total}\"]"),
        Duration::from_secs(30),
    );
    assert_eq!(cards(&browser).len(), total);

    // Filters show exactly their folder; orders sort by confidence.
    for (name, count) in &summary {
        if *count == 0 {
            continue;
        }
        click_on(&browser, &format!(".filter[data-filter=\"{name}\"]"));
        let shown = cards(&browser);
        assert_eq!(shown.len() as u64, *count, "{name}");
        assert!(shown.iter().all(|card| &card.folder == name), "{name}");
    }
    click_on(&browser, ".filter[data-filter=\"all\"]");
    let confidence = |card: &Card| card.cat.max(1.0 - card.cat);
    for (order, descending) in [("most-confident", true), ("least-confident", false)] {
        choose(&browser, "#order", order);
        let ordered: Vec<f64> = cards(&browser)
            .iter()
            .filter(|card| card.state == "done")
            .map(confidence)
            .collect();
        assert_eq!(ordered.len(), total - 1);
        assert!(
            ordered.windows(2).all(|pair| if descending {
                pair[0] >= pair[1]
            } else {
                pair[0] <= pair[1]
            }),
            "{order}: {ordered:?}"
        );
        assert_eq!(cards(&browser).last().unwrap().state, "error");
    }
    choose(&browser, "#order", "newest");

    // A correction moves its photo: a cat the model called a cat, told it is a dog.
    let corrected = on_page
        .iter()
        .find(|card| card.folder == "cat")
        .expect("a photo sorted as a cat")
        .path
        .clone();
    click_on(
        &browser,
        &format!(".card[data-path=\"{corrected}\"] .truth-dog"),
    );
    browser.wait_for_element(
        &format!(".card[data-path=\"{corrected}\"][data-folder=\"dog\"]"),
        Duration::from_secs(10),
    );
    let after = summary_counts(&browser);
    assert_eq!(
        (after["cat"], after["dog"]),
        (summary["cat"] - 1, summary["dog"] + 1)
    );
    let on_page = cards(&browser);

    // The CSV: one row per card, as the cards say.
    let csv = String::from_utf8(download(
        &browser,
        "#save-csv",
        &downloads.0,
        "catdog-verdicts.csv",
    ))
    .unwrap();
    // UTF-8 with a byte-order mark, for spreadsheets.
    let csv = csv.strip_prefix('\u{feff}').expect("a byte-order mark");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("file,label,cat,dog,model,right_answer,folder,error")
    );
    let rows: Vec<Vec<&str>> = lines.map(|line| line.splitn(8, ',').collect()).collect();
    assert_eq!(rows.len(), total);
    for row in &rows {
        let card = on_page
            .iter()
            .find(|card| card.path == row[0])
            .unwrap_or_else(|| panic!("a row for no card: {row:?}"));
        assert_eq!(
            row[6],
            if card.state == "error" {
                ""
            } else {
                &card.folder
            },
            "{row:?}"
        );
        if card.state == "done" {
            let verdict = if card.sure {
                card.label.as_str()
            } else {
                "not-sure"
            };
            assert_eq!(
                (row[1], row[2], row[4]),
                (verdict, card.cat_text.as_str(), "small"),
                "{row:?}"
            );
            let (cat, dog): (f64, f64) = (row[2].parse().unwrap(), row[3].parse().unwrap());
            assert!((cat + dog - 1.0).abs() < 2e-4, "{row:?}");
            let truth = if card.path == corrected { "dog" } else { "" };
            assert_eq!(row[5], truth, "{row:?}");
        } else {
            assert_eq!(row[1], "unreadable");
            assert!(!row[7].is_empty(), "no reason given: {row:?}");
        }
    }

    // The zip: every photo that could be read, in its folder, byte for byte.
    let zip = download(&browser, "#save-zip", &downloads.0, "catdog-sorted.zip");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&zip)).expect("a valid zip");
    assert_eq!(archive.len(), total - 1);
    for (path, original) in &folder.photos {
        let card = on_page.iter().find(|card| &card.path == path).unwrap();
        if card.state == "error" {
            continue;
        }
        let name = format!("{}/{path}", card.folder);
        let mut entry = archive
            .by_name(&name)
            .unwrap_or_else(|error| panic!("{name} is not in the zip: {error}"));
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        assert!(
            bytes == std::fs::read(original).unwrap(),
            "{name} differs from {path}"
        );
    }
    assert!(
        archive.by_name(&format!("dog/{corrected}")).is_ok(),
        "the corrected photo is not in dog/"
    );

    assert_nothing_sent(&browser, &site, requests_before, "sorting the folder");

    // Clearing gives back what the cards held.
    let held = browser.execute(
        "return [...document.querySelectorAll('.card img')].map(img => img.src) \
           .filter(src => src.startsWith('blob:'))",
        json!([]),
    );
    clear(&browser);
    let cleared = tab_memory(&browser);
    println!("cleared: {cleared}");
    assert_eq!(cleared.images, before.images);
    assert_freed(&browser, held);
    assert!(
        cleared.js_heap < before.js_heap + 8.0,
        "before: {before}; after clearing {total} cards: {cleared}"
    );

    // The folder dropped on the page this time; Cancel: the photos done stay, the rest go, and
    // the summary still counts the cards.
    browser.drop_paths(std::slice::from_ref(&folder.root));
    browser.wait_for_element("#skipped[data-count=\"3\"]", Duration::from_secs(30));
    let kept = cancel_when(
        &browser,
        "60 photos classified",
        "return +document.querySelector('#progress-count').dataset.finished >= 60",
    );
    assert!(
        kept.len() >= 60 && kept.len() < total,
        "{} cards",
        kept.len()
    );
    assert!(kept.iter().all(|card| !card.folder.is_empty()), "{kept:?}");
    let known: std::collections::BTreeSet<&str> = folder
        .photos
        .iter()
        .map(|(path, _)| path.as_str())
        .collect();
    assert!(
        kept.iter().all(|card| known.contains(card.path.as_str())),
        "paths of the dropped folder: {kept:?}"
    );
    assert_eq!(
        summary_counts(&browser).values().sum::<u64>() as usize,
        kept.len()
    );
    let progress = browser.wait_for_element("#progress-count", Duration::from_secs(5));
    assert_eq!(
        browser.attribute(&progress, "data-total"),
        kept.len().to_string()
    );
    let again = tab_memory(&browser);
    assert!(
        again.wasm <= cleared.wasm + 16.0,
        "wasm memory grew from one folder to the next: {cleared} then {again}"
    );

    // Teaching from a correction classifies every photo again with the taught model;
    // cancelling that keeps every photo, those not reached yet with the verdict they had.
    let first = &kept[0];
    let right = if first.label == "cat" { "dog" } else { "cat" };
    click_on(
        &browser,
        &format!(".card[data-path=\"{}\"] .truth-{right}", first.path),
    );
    click_on(&browser, "#teach-start");
    wait_for_model(&browser, "own", "flex");
    let after = cancel_when(
        &browser,
        "5 photos classified by the taught model",
        "return document.querySelectorAll('.card[data-model=\"own\"]').length >= 5",
    );
    assert_eq!(
        after.len(),
        kept.len(),
        "cancelling the taught model's verdicts removed photos"
    );
    assert!(
        after.iter().all(|card| !card.folder.is_empty()),
        "{after:?}"
    );
    let models = browser.execute(
        "return [...document.querySelectorAll('.card')].map(c => c.dataset.model || '')",
        json!([]),
    );
    let count = |name: &str| {
        models
            .as_array()
            .unwrap()
            .iter()
            .filter(|model| *model == name)
            .count()
    };
    assert!(
        count("own") >= 5 && count("small") > 0,
        "the taught model's verdicts cancelled part way: {models}"
    );
    // The photos it did not reach have their verdicts from before the lesson (the corrected
    // one's folder follows its right answer).
    let small = after
        .iter()
        .zip(models.as_array().unwrap())
        .filter(|(_, model)| *model == "small");
    for (card, _) in small.filter(|(card, _)| card.path != first.path) {
        let before = kept.iter().find(|kept| kept.path == card.path).unwrap();
        assert_eq!(
            (&card.label, &card.cat_text, &card.folder),
            (&before.label, &before.cat_text, &before.folder),
            "{}",
            card.path
        );
    }
    clear(&browser);
}

/// Waits until the script `done` holds, presses "Cancel the rest" and waits for the page to
/// stop classifying; the cards left.
fn cancel_when(browser: &Browser, what: &str, done: &str) -> Vec<Card> {
    browser.wait_for_script(what, done, CLASSIFIED);
    click_on(browser, "#cancel");
    browser.wait_for_element(
        "#progress-count[data-running=\"false\"]",
        Duration::from_secs(60),
    );
    cards(browser)
}

/// Fetching each `blob:` URL fails: the page revoked them.
fn assert_freed(browser: &Browser, urls: Value) {
    let still_open = browser.execute(
        "return Promise.all(arguments[0].map(url => fetch(url).then(() => url, () => null))) \
           .then(open => open.filter(url => url !== null))",
        json!([urls]),
    );
    assert_eq!(
        still_open,
        json!([]),
        "thumbnails still held after clearing"
    );
}

/// Saves a picture of the page for the README as `name` in `CATDOG_SCREENSHOTS` (an absolute
/// folder), if set: the window at `size`, after running `script` (scrolling, opening).
fn readme_picture(browser: &Browser, name: &str, size: (u32, u32), script: &str) {
    if let Some(dir) = std::env::var_os("CATDOG_SCREENSHOTS").map(PathBuf::from) {
        std::fs::create_dir_all(&dir).unwrap();
        browser.set_window_size(size.0, size.1);
        browser.execute(script, json!([]));
        std::fs::write(dir.join(name), browser.screenshot()).unwrap();
    }
}

/// A directory removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("catdog-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

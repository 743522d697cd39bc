//! No byte string given as a model file or a photo panics, aborts or allocates beyond the
//! limits: the model files users reported, then seeded structure-aware mutations of the real
//! shipped models and fixture photos (`catdog_tests::hostile`), each run through what the
//! trainer and the page run: parse, load onto flex, classify a photo; decode and preprocess.
//!
//! `CATDOG_FUZZ_CASES` sets the number of mutated cases of each kind (default 300, the suite's
//! bounded run; `scripts/fuzz` runs more) and `CATDOG_FUZZ_SEED` the first seed, so a failure
//! is reproduced by its seed alone. A case that panics is written to
//! `target/tmp/hostile-crashes/` to become a fixture in `tests/fixtures/hostile/`, which
//! `every_file_the_fuzzer_found_is_refused` replays.
//!
//! A separate test binary because it installs its own global allocator.
#![cfg(not(target_family = "wasm"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use catdog_model::preprocess::MAX_PIXELS;
use catdog_model::{Classifier, Device, ModelFile, Preprocess, block_on};
use catdog_tests::hostile::{Mutator, reported_models};
use catdog_tests::workspace;

/// The largest single allocation any input may cause: the photo decoder's own limit
/// ([`MAX_PIXELS`] x 8 bytes). The limits on model files are far below it (`limits.rs`: 32 M
/// parameters, 256 MiB of activations).
const MAX_ALLOCATION: usize = (MAX_PIXELS * 8) as usize;

/// The seed of the case being run, for the allocator's message.
static CASE: AtomicU64 = AtomicU64::new(u64::MAX);

/// The system allocator, refusing (and reporting) any allocation over [`MAX_ALLOCATION`]:
/// the process then aborts as it would on a phone, and the message names the case.
struct Bounded;

impl Bounded {
    fn refuse(size: usize) -> *mut u8 {
        // No allocation here: formatting integers into stderr allocates nothing.
        let _ = writeln!(
            std::io::stderr(),
            "allocation of {size} bytes, over the limit of {MAX_ALLOCATION}, in case seed {}",
            CASE.load(Ordering::Relaxed)
        );
        std::ptr::null_mut()
    }
}

// SAFETY: every call is forwarded to `System` unchanged, or refused with a null pointer,
// which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return Self::refuse(layout.size());
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return Self::refuse(layout.size());
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION {
            return Self::refuse(new_size);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Bounded = Bounded;

fn cases() -> u64 {
    std::env::var("CATDOG_FUZZ_CASES").map_or(300, |cases| cases.parse().expect("a count"))
}

fn first_seed() -> u64 {
    std::env::var("CATDOG_FUZZ_SEED").map_or(1, |seed| seed.parse().expect("a number"))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn shipped(name: &str) -> Vec<u8> {
    read(&workspace().join("www/model").join(name))
}

fn fixture(name: &str) -> Vec<u8> {
    read(&workspace().join("tests/fixtures").join(name))
}

/// What became of one model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ModelOutcome {
    RefusedByParse,
    RefusedByLoad,
    RefusedByClassify,
    Classified,
}

/// What the page does with a model file: check it, load it, classify a photo with it. Any
/// verdict must be a real probability.
fn use_model(bytes: &[u8], photo: &[u8]) -> Result<ModelOutcome, String> {
    let Ok(file) = ModelFile::parse(bytes) else {
        return Ok(ModelOutcome::RefusedByParse);
    };
    let Ok(classifier) = Classifier::from_file(&file, &Device::flex()) else {
        return Ok(ModelOutcome::RefusedByLoad);
    };
    // What the page runs at load on the CPU (the GPU warms up on a whole blank photo instead).
    if block_on(classifier.check_outputs()).is_err() {
        return Ok(ModelOutcome::RefusedByClassify);
    }
    match block_on(classifier.explain(photo)) {
        Err(_) => Ok(ModelOutcome::RefusedByClassify),
        Ok(explanation) => {
            let prediction = explanation.prediction;
            let sum = prediction.cat + prediction.dog;
            if prediction.cat.is_finite() && prediction.dog.is_finite() && (sum - 1.0).abs() < 1e-3
            {
                Ok(ModelOutcome::Classified)
            } else {
                Err(format!("classified as {prediction:?}"))
            }
        }
    }
}

/// Runs `case` on one input, turning a panic into a failure that names the case.
fn survive<T>(
    seed: u64,
    what: &str,
    case: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    CASE.store(seed, Ordering::Relaxed);
    match catch_unwind(AssertUnwindSafe(case)) {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(wrong)) => Err(format!("seed {seed} ({what}): {wrong}")),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_default();
            Err(format!("seed {seed} ({what}) panicked: {message}"))
        }
    }
}

/// Keeps a failing input where it can be turned into a fixture.
fn keep_crash(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-crashes");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn the_reported_model_files_are_refused_naming_the_field() {
    let small = fixture("small-cnn.bpk");
    let photo = fixture("cat.jpg");
    for hostile in reported_models(&small) {
        let error = ModelFile::parse(&hostile.bytes)
            .map(|_| ())
            .expect_err(hostile.name)
            .to_string();
        assert!(
            error.contains(hostile.names),
            "{}: the refusal should name {}: {error}",
            hostile.name,
            hostile.names
        );
        println!("{}: {error}", hostile.name);
        assert_eq!(
            survive(0, hostile.name, || use_model(&hostile.bytes, &photo)),
            Ok(ModelOutcome::RefusedByParse)
        );
    }
}

/// One mutated input: its bytes, what was changed, and the file name it is kept under if it
/// fails.
struct Case {
    bytes: Vec<u8>,
    what: String,
    keep_as: String,
}

/// Runs the seeded cases `seeds`, each made by `make` and run by `run` (through [`survive`]),
/// prints how many ended each way and returns the counts; fails listing every case that
/// panicked or gave a wrong answer, each kept as a file.
fn fuzz<T: Ord + std::fmt::Debug>(
    kind: &str,
    seeds: std::ops::Range<u64>,
    make: impl Fn(u64) -> Case,
    run: impl Fn(u64, &[u8]) -> Result<T, String>,
) -> BTreeMap<T, usize> {
    let started = Instant::now();
    let mut outcomes = BTreeMap::new();
    let mut failures = Vec::new();
    for seed in seeds.clone() {
        let case = make(seed);
        match survive(seed, &case.what, || run(seed, &case.bytes)) {
            Ok(outcome) => *outcomes.entry(outcome).or_insert(0) += 1,
            Err(failure) => {
                let kept = keep_crash(&case.keep_as, &case.bytes);
                failures.push(format!("{failure} [{}]", kept.display()));
            }
        }
    }
    println!(
        "{} mutated {kind} (seeds {}..{}) in {:.1} s: {outcomes:?}",
        seeds.end - seeds.start,
        seeds.start,
        seeds.end,
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    outcomes
}

#[test]
fn mutated_model_files_never_panic_or_classify_as_nan() {
    let photo = fixture("dog.jpg");
    let first = first_seed();
    // Mostly the CNN (fast to load); every tenth case the accurate model, whose header has the
    // backbone, the head and the "neither" check, and every tenth the shipped small one, whose
    // backbone ends early (`last_stage`).
    let (cnn, accurate, small) = (
        fixture("small-cnn.bpk"),
        shipped("catdog.bpk"),
        shipped("catdog-small.bpk"),
    );
    let outcomes = fuzz(
        "model files",
        first..first + cases(),
        |seed| {
            let original = match seed % 10 {
                0 => &accurate,
                1 => &small,
                _ => &cnn,
            };
            let (bytes, what) = Mutator::new(seed).model(original);
            Case {
                bytes,
                what,
                keep_as: format!("model-{seed}.bpk"),
            }
        },
        |_, bytes| use_model(bytes, &photo),
    );
    // The mutations reach every stage, not only the first check.
    assert!(outcomes.len() >= 3, "{outcomes:?}");
}

/// The fixture photos in every format the page takes: the JPEG and PNG fixtures, and WebP,
/// GIF and BMP copies made here.
fn photos_in_every_format() -> Vec<(&'static str, Vec<u8>)> {
    let jpeg = fixture("cat.jpg");
    let decoded = image::load_from_memory(&jpeg).unwrap();
    let encode = |format| {
        let mut bytes = std::io::Cursor::new(Vec::new());
        decoded.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    };
    vec![
        ("jpeg", jpeg.clone()),
        ("exif-jpeg", fixture("cat-exif-rotated.jpg")),
        ("cmyk-jpeg", fixture("dog-cmyk.jpg")),
        ("png", fixture("dog-alpha.png")),
        ("webp", encode(image::ImageFormat::WebP)),
        ("gif", encode(image::ImageFormat::Gif)),
        ("bmp", encode(image::ImageFormat::Bmp)),
    ]
}

/// What became of one photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PhotoOutcome {
    Decoded,
    Refused,
}

#[test]
fn mutated_photos_never_panic() {
    let photos = photos_in_every_format();
    // Every geometry: the crops compute offsets from the decoded size.
    let lite1 = catdog_model::efficientnet::Variant::Lite1.preprocess();
    let preprocesses = [
        ModelFile::parse(&fixture("small-cnn.bpk"))
            .unwrap()
            .header
            .preprocess,
        lite1,
        Preprocess {
            geometry: catdog_model::Geometry::SquashThenCrop { fraction: 0.875 },
            ..lite1
        },
    ];
    let first = first_seed();
    let outcomes = fuzz(
        "photos",
        first..first + cases() * 2,
        |seed| {
            let (format, original) = &photos[(seed % photos.len() as u64) as usize];
            let (bytes, what) = Mutator::new(seed).photo(original);
            Case {
                bytes,
                what: format!("{format}: {what}"),
                keep_as: format!("photo-{seed}.{format}"),
            }
        },
        |seed, bytes| {
            let preprocess: &Preprocess = &preprocesses[(seed / 7 % 3) as usize];
            match preprocess.apply(bytes) {
                Ok(input) if input.data.iter().all(|v| v.is_finite()) => Ok(PhotoOutcome::Decoded),
                Ok(_) => Err("non-finite input".to_string()),
                Err(_) => Ok(PhotoOutcome::Refused),
            }
        },
    );
    assert_eq!(outcomes.len(), 2, "both decoded and refused: {outcomes:?}");
}

#[test]
fn every_file_the_fuzzer_found_is_refused() {
    let dir = workspace().join("tests/fixtures/hostile");
    let photo = fixture("cat.jpg");
    let mut found = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = read(&path);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let outcome = if name.ends_with(".bpk") {
            survive(0, &name, || use_model(&bytes, &photo))
                .map(|outcome| outcome != ModelOutcome::Classified)
        } else if name.ends_with(".md") {
            continue;
        } else {
            survive(0, &name, || {
                Ok(
                    Preprocess::squash(64, catdog_model::Normalization::IMAGENET)
                        .apply(&bytes)
                        .is_err(),
                )
            })
        };
        assert_eq!(outcome, Ok(true), "{name}");
        found += 1;
    }
    assert!(found > 0, "no fixtures in {}", dir.display());
}

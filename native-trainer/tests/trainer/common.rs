//! What the trainer's test modules share: the fixture photos and scratch folders that
//! clean up after themselves (a test run used to leave hundreds of folders in the temp dir).

use std::ops::Deref;
use std::path::{Path, PathBuf};

use catdog_model::{Normalization, Preprocess};

/// The trainer binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_native-trainer");

/// A model file the trainer wrote, parsed and checked.
pub fn model_file(path: &Path) -> catdog_model::ModelFile {
    catdog_model::ModelFile::parse(&std::fs::read(path).unwrap()).unwrap()
}

/// Runs the trainer, failing the test with its stderr if it fails; returns its stdout.
pub fn run_ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let output = std::process::Command::new(BIN).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "native-trainer {args:?} failed:\n{stderr}"
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs the trainer expecting a refusal, failing the test if it succeeds; returns its stderr.
pub fn run_refused<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let output = std::process::Command::new(BIN).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "succeeded, refusal expected:\n{stderr}"
    );
    stderr
}

/// `predict --json` of `model` over `paths` (photos or folders): one object per file, with
/// its probabilities or the reason it has none.
pub fn predictions(model: &Path, paths: &[&Path]) -> Vec<serde_json::Value> {
    let mut args = vec!["predict", "--model", model.to_str().unwrap(), "--json"];
    args.extend(paths.iter().map(|path| path.to_str().unwrap()));
    let stdout = run_ok(&args);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

/// The real photos under `tests/fixtures`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures().join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// A pretrained backbone's file (`efficientnet-lite0`, `efficientnet-lite1`) from the
/// project's shared folder beside the repository (`../shared/weights`, which CI has too):
/// the repository does not carry them (18.8 and 21.9 MB); users get them with
/// `native-trainer fetch-backbone`.
pub fn shared_weights(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/weights")
        .join(format!("{name}.safetensors"));
    assert!(
        path.exists(),
        "{} is missing: the tests read the pretrained backbones from ../shared/weights",
        path.display()
    );
    path
}

/// A fresh, empty folder for one test, removed when dropped. Keep it bound to a variable for
/// as long as the test uses the folder.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("catdog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub const CATS: [&str; 3] = ["cat.jpg", "cat-grey.jpg", "cat-exif-rotated.jpg"];
pub const DOGS: [&str; 3] = ["dog.jpg", "dog-cmyk.jpg", "dog-alpha.png"];

/// The six real fixture photos, Kaggle flat, plus `copies` re-encoded copies of each (so a
/// training run has a few batches) and the unusable files a real download contains.
pub fn kaggle_folder(name: &str, copies: usize) -> Scratch {
    let dir = Scratch::new(&format!("trainer-{name}"));
    for (label, files) in [("cat", CATS), ("dog", DOGS)] {
        for (i, file) in files.iter().enumerate() {
            let bytes = fixture(file);
            let extension = file.rsplit('.').next().unwrap();
            std::fs::write(dir.join(format!("{label}.{i}.{extension}")), &bytes).unwrap();
            for copy in 0..copies {
                // A slightly different crop of the same photo: a different file, a real photo.
                let photo = image::load_from_memory(&bytes).unwrap().to_rgb8();
                let (w, h) = photo.dimensions();
                let cropped =
                    image::imageops::crop_imm(&photo, copy as u32 + 1, 0, w - copy as u32 - 1, h)
                        .to_image();
                cropped
                    .save(dir.join(format!("{label}.{i}{copy}.png")))
                    .unwrap();
            }
        }
    }
    dir
}

/// A scratch folder for one of the trainer's end-to-end tests.
pub fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("trainer-{name}"))
}

/// Adds the unusable files a real download contains (empty, truncated, not an image, a
/// decompression bomb) to `dir`; returns their names.
pub fn add_bad_files(dir: &Path) -> Vec<&'static str> {
    let cat = fixture("cat.jpg");
    std::fs::write(dir.join("cat.900.jpg"), b"").unwrap();
    std::fs::write(dir.join("cat.901.jpg"), &cat[..cat.len() / 2]).unwrap();
    std::fs::write(dir.join("dog.902.jpg"), b"<html>not found</html>").unwrap();
    std::fs::write(dir.join("dog.903.png"), png_bomb(20_000)).unwrap();
    vec!["cat.900.jpg", "cat.901.jpg", "dog.902.jpg", "dog.903.png"]
}

/// A real PNG header claiming `side` x `side` pixels with no pixel data: a decompression bomb.
fn png_bomb(side: u32) -> Vec<u8> {
    let chunk = |png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    };
    let mut header = side.to_be_bytes().to_vec();
    header.extend_from_slice(&side.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &header);
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    png
}

/// The CNN's preprocessing at `size` px.
pub fn preprocess(size: u32) -> Preprocess {
    Preprocess::squash(size, Normalization::IMAGENET)
}

/// A small, quick CNN run on `data` (three epochs of 32 px, flex, a checkpoint after every
/// batch), writing `out` at the end.
pub fn train_args<'a>(data: &'a str, run: &'a str, out: &'a str, batch: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--run",
        run,
        "--out",
        out,
        "--input-size",
        "32",
        "--channels",
        "8,16",
        "--epochs",
        "3",
        "--batch-size",
        batch,
        "--validation",
        "0.25",
        "--backend",
        "flex",
        "--no-cache",
        "--checkpoint-minutes",
        "0",
    ]
}

//! What the trainer's integration tests share: the fixture photos and scratch folders that
//! clean up after themselves (a test run used to leave hundreds of folders in the temp dir).

#![allow(dead_code)] // each test crate uses its own part of this module

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// The trainer binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_native-trainer");

/// Runs the trainer, failing the test with its stderr if it fails; returns its stdout.
pub fn run_ok(args: &[&str]) -> String {
    let output = std::process::Command::new(BIN).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "native-trainer {args:?} failed:\n{stderr}"
    );
    String::from_utf8(output.stdout).unwrap()
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

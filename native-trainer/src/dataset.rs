//! Photos to a checked, packed, preprocessed dataset (split in [`crate::split`]).
//!
//! Every file is checked by decoding it in full (not by sniffing its header): what fails is
//! skipped and reported with the reason, and nothing aborts a run because of one file. What
//! decodes is resized once to the model's input size and packed into one cache file (the
//! equivalent of MXNet's `.rec`), so later epochs and later runs never decode a JPEG again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use burn::tensor::{Device, Tensor, TensorData};
use catdog_model::{Label, Normalization, Preprocess};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::files::write_atomic;
use crate::photos::{PhotoSet, PhotosError};
use crate::progress::progress_bar;

/// A photo that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// A file path, or `archive.zip!/name` inside a zip.
    pub path: String,
    pub reason: String,
}

/// One packed photo: where it came from, its label and its perceptual hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedEntry {
    pub name: String,
    pub label: Option<Label>,
    /// 64-bit difference hash of the photo (see [`difference_hash`]).
    pub hash: u64,
}

/// Decoded photos at the model's input size, as `size x size` RGB bytes each.
#[derive(Debug, Clone)]
pub struct PackedPhotos {
    pub size: u32,
    pub entries: Vec<PackedEntry>,
    pub skipped: Vec<SkippedFile>,
    pixels: Vec<u8>,
}

/// The cache file's header: what it holds and what it was made from.
#[derive(Serialize, Deserialize)]
struct PackHeader {
    key: String,
    size: u32,
    entries: Vec<PackedEntry>,
    skipped: Vec<SkippedFile>,
}

const PACK_MAGIC: &[u8; 8] = b"CATDOGPK";
const PACK_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(transparent)]
    Photos(#[from] PhotosError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: no usable photos")]
    NoPhotos(PathBuf),
}

impl PackedPhotos {
    /// The photo's pixels, `size * size * 3` bytes, rows top to bottom, RGB interleaved.
    pub fn pixels(&self, index: usize) -> &[u8] {
        let len = (self.size * self.size * 3) as usize;
        &self.pixels[index * len..(index + 1) * len]
    }

    pub fn image(&self, index: usize) -> RgbImage {
        RgbImage::from_raw(self.size, self.size, self.pixels(index).to_vec())
            .expect("a packed photo has size*size*3 bytes")
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The labels of the photos at `indices`, which must come from a labelled source.
    pub fn labels(&self, indices: &[usize]) -> Vec<Label> {
        indices
            .iter()
            .map(|&i| {
                self.entries[i]
                    .label
                    .expect("photos from a labelled source")
            })
            .collect()
    }

    /// The labels of the photos at `indices` as training targets (0 cat, 1 dog).
    pub fn targets(&self, indices: &[usize]) -> Vec<i64> {
        self.labels(indices)
            .iter()
            .map(|label| label.index() as i64)
            .collect()
    }

    /// The photos at `indices` as one normalised `[n, 3, size, size]` batch, exactly as
    /// inference sees them (no augmentation).
    pub fn batch(
        &self,
        indices: &[usize],
        normalization: &Normalization,
        device: &Device,
    ) -> Tensor<4> {
        let size = self.size as usize;
        let mut pixels = Vec::with_capacity(indices.len() * 3 * size * size);
        for &index in indices {
            normalization.append_chw(self.pixels(index), &mut pixels);
        }
        Tensor::from_data(
            TensorData::new(pixels, [indices.len(), 3, size, size]),
            device,
        )
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Decodes every photo of `set` (on every core, with a progress bar) or, when `cache_dir`
    /// holds a pack made from the same files at the same size, reads that instead.
    pub fn load(
        set: &PhotoSet,
        preprocess: &Preprocess,
        cache_dir: Option<&Path>,
    ) -> Result<Self, DatasetError> {
        let key = cache_key(set, preprocess)?;
        let cache_file = cache_dir.map(|dir| {
            dir.join(format!(
                "photos-{}px-{:016x}.pack",
                preprocess.input_size,
                fnv1a(key.as_bytes())
            ))
        });
        if let Some(file) = &cache_file
            && let Some(packed) = read_pack(file, &key)
        {
            eprintln!(
                "using the packed photo cache {} ({} photos)",
                file.display(),
                packed.len()
            );
            return Ok(packed);
        }
        let packed = decode_all(set, preprocess)?;
        if let Some(file) = &cache_file {
            packed
                .write(file, &key)
                .map_err(|source| DatasetError::Io {
                    path: file.clone(),
                    source,
                })?;
            eprintln!("packed {} photos into {}", packed.len(), file.display());
        }
        Ok(packed)
    }

    /// Labelled photos to measure a model on (`evaluate`, the ImageNet check): packed at the
    /// model's input, each unusable file reported on stderr, refused when none is left. The
    /// listing comes back too, for reading the original files again (thumbnails).
    pub fn load_labelled(
        data: &Path,
        preprocess: &Preprocess,
        cache_dir: Option<&Path>,
    ) -> Result<(PhotoSet, Self), DatasetError> {
        let set = PhotoSet::open_labelled(data)?;
        let packed = Self::load(&set, preprocess, cache_dir)?;
        for skipped in &packed.skipped {
            eprintln!("skipped {}: {}", skipped.path, skipped.reason);
        }
        if packed.is_empty() {
            return Err(DatasetError::NoPhotos(data.to_path_buf()));
        }
        Ok((set, packed))
    }

    fn write(&self, path: &Path, key: &str) -> std::io::Result<()> {
        let header = serde_json::to_vec(&PackHeader {
            key: key.to_string(),
            size: self.size,
            entries: self.entries.clone(),
            skipped: self.skipped.clone(),
        })
        .map_err(std::io::Error::other)?;
        let mut bytes = Vec::with_capacity(24 + header.len() + self.pixels.len());
        bytes.write_all(PACK_MAGIC)?;
        bytes.write_all(&PACK_VERSION.to_le_bytes())?;
        bytes.write_all(&(header.len() as u64).to_le_bytes())?;
        bytes.write_all(&header)?;
        bytes.write_all(&self.pixels)?;
        write_atomic(path, &bytes)
    }

    /// Writes the skipped-files report: one `path<TAB>reason` line per file.
    pub fn write_skipped_report(&self, path: &Path) -> std::io::Result<()> {
        let mut report = String::from("file\treason\n");
        for skipped in &self.skipped {
            report.push_str(&format!("{}\t{}\n", skipped.path, skipped.reason));
        }
        write_atomic(path, report.as_bytes())
    }
}

/// Identifies the source's current contents cheaply, and how its photos were resized: a
/// changed, added or removed file, or another crop or filter, changes the key, so a stale
/// cache is never used.
fn cache_key(set: &PhotoSet, preprocess: &Preprocess) -> Result<String, DatasetError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DatasetError::Io { path, source }
    };
    let mut fingerprint = 0u64;
    let mut bytes = 0u64;
    let mut newest = 0u64;
    match &set.source {
        crate::photos::PhotoSource::Folder(dir) => {
            for photo in &set.photos {
                let path = dir.join(&photo.name);
                let metadata = std::fs::metadata(&path).map_err(io(&path))?;
                bytes += metadata.len();
                newest = newest.max(modified_secs(&metadata));
                fingerprint ^= fnv1a(photo.name.as_bytes()).wrapping_add(metadata.len());
            }
        }
        crate::photos::PhotoSource::Zip(path) => {
            let metadata = std::fs::metadata(path).map_err(io(path))?;
            bytes = metadata.len();
            newest = modified_secs(&metadata);
        }
    }
    let source = std::fs::canonicalize(set.source.path())
        .unwrap_or_else(|_| set.source.path().to_path_buf());
    Ok(format!(
        "v{PACK_VERSION} {} size={} resample={:?} geometry={:?} files={} bytes={bytes} \
         newest={newest} names={fingerprint:016x}",
        source.display(),
        preprocess.input_size,
        preprocess.resample,
        preprocess.geometry,
        set.photos.len(),
    ))
}

fn modified_secs(metadata: &std::fs::Metadata) -> u64 {
    metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |age| age.as_secs())
}

/// Reads a cache file if it is whole and made from the same files; anything else (missing,
/// stale, damaged) means decoding again, never failing the run.
fn read_pack(path: &Path, key: &str) -> Option<PackedPhotos> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < 20 || &bytes[..8] != PACK_MAGIC {
        return None;
    }
    if u32::from_le_bytes(bytes[8..12].try_into().ok()?) != PACK_VERSION {
        return None;
    }
    let header_len = usize::try_from(u64::from_le_bytes(bytes[12..20].try_into().ok()?)).ok()?;
    let header_end = 20usize.checked_add(header_len)?;
    let header: PackHeader = serde_json::from_slice(bytes.get(20..header_end)?).ok()?;
    let pixels = bytes.get(header_end..)?.to_vec();
    let expected = header.entries.len() * (header.size * header.size * 3) as usize;
    (header.key == key && pixels.len() == expected).then_some(PackedPhotos {
        size: header.size,
        entries: header.entries,
        skipped: header.skipped,
        pixels,
    })
}

/// Decodes every photo in parallel, keeping the source's order.
fn decode_all(set: &PhotoSet, preprocess: &Preprocess) -> Result<PackedPhotos, DatasetError> {
    let progress = progress_bar(set.photos.len() as u64, "checking photos");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = set.photos.len().div_ceil(threads).max(1);
    type Decoded = Result<(PackedEntry, Vec<u8>), SkippedFile>;
    let results: Vec<Result<Vec<Decoded>, PhotosError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = set
            .photos
            .chunks(chunk)
            .map(|photos| {
                let progress = progress.clone();
                scope.spawn(move || {
                    let mut reader = set.reader()?;
                    Ok(photos
                        .iter()
                        .map(|photo| {
                            let skip = |reason: String| SkippedFile {
                                path: set.display_name(photo),
                                reason,
                            };
                            let result = reader
                                .read(photo)
                                .map_err(|error| skip(error.to_string()))
                                .and_then(|bytes| {
                                    catdog_model::preprocess::decode_photo(&bytes)
                                        .map_err(|error| skip(error.to_string()))
                                })
                                .map(|decoded| {
                                    let resized = preprocess.resize(&decoded);
                                    let entry = PackedEntry {
                                        name: photo.name.clone(),
                                        label: photo.label,
                                        hash: difference_hash(&resized),
                                    };
                                    (entry, resized.into_raw())
                                });
                            progress.inc(1);
                            result
                        })
                        .collect())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("decoder thread panicked"))
            .collect()
    });
    progress.finish();
    let mut packed = PackedPhotos {
        size: preprocess.input_size,
        entries: Vec::new(),
        skipped: Vec::new(),
        pixels: Vec::new(),
    };
    for result in results {
        for decoded in result? {
            match decoded {
                Ok((entry, pixels)) => {
                    packed.entries.push(entry);
                    packed.pixels.extend_from_slice(&pixels);
                }
                Err(skipped) => packed.skipped.push(skipped),
            }
        }
    }
    Ok(packed)
}

/// A 64-bit difference hash: the photo shrunk to 9x8 grey, one bit per horizontal neighbour
/// pair (is the left one brighter?). Re-encoded, resized or lightly retouched copies of a
/// photo get the same hash, so copies cannot sit on both sides of the split.
pub fn difference_hash(photo: &RgbImage) -> u64 {
    let grey = image::imageops::grayscale(photo);
    let small = image::imageops::resize(&grey, 9, 8, image::imageops::FilterType::Triangle);
    let mut hash = 0u64;
    for y in 0..8 {
        for x in 0..8 {
            let bit = small.get_pixel(x, y).0[0] > small.get_pixel(x + 1, y).0[0];
            hash = (hash << 1) | u64::from(bit);
        }
    }
    hash
}

/// FNV-1a: a stable hash for cache file names (std's hasher may change between releases).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

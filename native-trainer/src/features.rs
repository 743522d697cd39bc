//! The frozen trunk's outputs, computed once per photo and cached.
//!
//! Fine-tuning on a CPU keeps EfficientNet-Lite's trunk (every block but the last) frozen, so
//! its output never changes: it is computed once for each photo and once for the photo's
//! mirror image (the flip augmentation, and the test-time mirror averaging weighed on
//! validation), then cached on disk in shards of [`SHARD`] photos, each
//! written atomically. An interrupted extraction continues at the shard it was in, and later
//! runs and `tune` trials read the cache in seconds.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData, f16};
use catdog_model::efficientnet::EfficientNetLite;
use catdog_model::{Normalization, Preprocess};
use indicatif::ProgressBar;

use crate::dataset::{PackedPhotos, fnv1a};
use crate::files::write_atomic;
use crate::progress::{log_when_hidden, progress_bar};

/// Photos per cache shard (about 9.6 MB of f16 values for Lite0, 12.6 MB for Lite1).
pub const SHARD: usize = 512;
const SHARD_MAGIC: &[u8; 8] = b"CATDOGTR";
/// Photos per forward pass while extracting.
const BATCH: usize = 16;

/// How a photo is shown to the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Original,
    /// Flipped left to right: the augmentation that costs nothing once cached.
    Mirrored,
}

impl View {
    fn name(self) -> &'static str {
        match self {
            View::Original => "original",
            View::Mirrored => "mirrored",
        }
    }
}

/// The trunk's outputs for every photo of a pack, one `[photos * len]` vector per view.
pub struct TrunkOutputs {
    /// One photo's output, `[channels, height, width]` (192 x 7 x 7 for Lite0 at 224 px).
    pub shape: [usize; 3],
    pub views: Vec<Vec<f32>>,
}

impl TrunkOutputs {
    /// Values of one photo's trunk output.
    pub fn per_photo(&self) -> usize {
        self.shape.iter().product()
    }

    /// Photo `index`'s trunk output in view `view`.
    pub fn get(&self, view: usize, index: usize) -> &[f32] {
        let len = self.per_photo();
        &self.views[view][index * len..(index + 1) * len]
    }

    /// Trunk outputs, `n * len` values, as a `[n, channels, height, width]` tensor.
    pub fn tensor(&self, values: Vec<f32>, n: usize, device: &Device) -> Tensor<4> {
        let [c, h, w] = self.shape;
        Tensor::from_data(TensorData::new(values, [n, c, h, w]), device)
    }

    /// The frozen tail's pooled features (`[photos * features]` per view), 128 photos at a time.
    pub fn pooled(&self, backbone: &EfficientNetLite, device: &Device) -> Vec<Vec<f32>> {
        let len = self.per_photo();
        let photos = self.views[0].len() / len;
        let backbone = backbone.clone().fold_batch_norms();
        let bar = progress_bar((photos * self.views.len()) as u64, "pooled features");
        let mut last = std::time::Instant::now();
        let pooled = self
            .views
            .iter()
            .map(|values| {
                let mut out = Vec::new();
                for chunk in values.chunks(128 * len) {
                    let n = chunk.len() / len;
                    let trunk = self.tensor(chunk.to_vec(), n, device);
                    out.extend(floats(backbone.tail(trunk).into_data()));
                    bar.inc(n as u64);
                    log_when_hidden(&bar, &mut last);
                }
                out
            })
            .collect();
        bar.finish_and_clear();
        pooled
    }
}

pub fn floats(data: TensorData) -> Vec<f32> {
    data.convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float tensor")
}

/// The frozen trunk whose outputs are cached, and what names them.
pub struct Trunk<'a> {
    pub backbone: &'a EfficientNetLite,
    /// Identifies the backbone's weights, so another pretrained file never reuses a cache.
    pub weights_id: u64,
    /// One photo's output, `[channels, height, width]`.
    pub shape: [usize; 3],
}

/// Computes (or reads from `cache`) the trunk outputs of every packed photo, normalised as
/// `preprocess` says (the pack holds its resized pixels), for each of `views`.
pub fn trunk_outputs(
    packed: &PackedPhotos,
    trunk: &Trunk,
    preprocess: &Preprocess,
    views: &[View],
    cache: Option<&Path>,
    device: &Device,
) -> std::io::Result<TrunkOutputs> {
    let Trunk {
        backbone,
        weights_id,
        shape,
    } = *trunk;
    let len: usize = shape.iter().product();
    // The trunk is frozen and its batch-norms in inference mode: merged into the
    // convolutions, the same outputs (to float rounding) come a pass over each activation
    // sooner.
    let backbone = backbone.clone().fold_batch_norms();
    let bar = progress_bar((packed.len() * views.len()) as u64, "trunk features");
    let mut outputs = Vec::new();
    for &view in views {
        let dir = cache.map(|cache| {
            let id = cache_id(
                packed,
                weights_id,
                backbone.trunk_blocks(),
                preprocess,
                shape,
                view,
            );
            cache.join(format!("trunk-{id:016x}"))
        });
        let values = cached_pass(
            packed,
            &preprocess.normalization,
            len,
            dir.as_deref(),
            &bar,
            device,
            |images| {
                let images = match view {
                    View::Original => images,
                    View::Mirrored => images.flip([3]),
                };
                floats(backbone.trunk(images).into_data())
            },
        )?;
        outputs.push(values);
    }
    bar.finish_and_clear();
    Ok(TrunkOutputs {
        shape,
        views: outputs,
    })
}

/// `pass`'s `len` values for every packed photo (normalised as `normalization` says),
/// [`BATCH`] photos at a time, in pack order. With a `dir`, each shard of [`SHARD`] photos is
/// read from it when there and written to it (atomically) when computed, so an interrupted
/// pass continues at the shard it was in.
pub fn cached_pass(
    packed: &PackedPhotos,
    normalization: &Normalization,
    len: usize,
    dir: Option<&Path>,
    bar: &ProgressBar,
    device: &Device,
    pass: impl Fn(Tensor<4>) -> Vec<f32>,
) -> std::io::Result<Vec<f32>> {
    let mut last = std::time::Instant::now();
    let mut values = Vec::with_capacity(packed.len() * len);
    for shard in 0..packed.len().div_ceil(SHARD) {
        let indices: Vec<usize> =
            (shard * SHARD..((shard + 1) * SHARD).min(packed.len())).collect();
        let file = dir.map(|dir| dir.join(format!("shard-{shard:05}.f16")));
        if let Some(cached) = file
            .as_deref()
            .and_then(|file| read_shard(file, indices.len(), len))
        {
            values.extend(cached);
            bar.inc(indices.len() as u64);
            continue;
        }
        let start = values.len();
        for chunk in indices.chunks(BATCH) {
            values.extend(pass(packed.batch(chunk, normalization, device)));
            bar.inc(chunk.len() as u64);
            log_when_hidden(bar, &mut last);
        }
        if let (Some(dir), Some(file)) = (dir, &file) {
            std::fs::create_dir_all(dir)?;
            write_shard(file, &values[start..], len)?;
        }
    }
    Ok(values)
}

/// Names a cache: the photos (names and perceptual hashes, in pack order), the weights, the
/// normalisation, the view and the cut (the trunk's blocks and output shape: a backbone that
/// ends after stage 6 has the whole one's trunk shape, one block sooner). (The pack's
/// resampling and crop are in its own key, and its pixels give the photos' hashes.)
fn cache_id(
    packed: &PackedPhotos,
    weights_id: u64,
    blocks: usize,
    preprocess: &Preprocess,
    shape: [usize; 3],
    view: View,
) -> u64 {
    let mut key = format!(
        "trunk v3 {blocks} {shape:?} {weights_id:016x} {} {:?} {:?} {:?}",
        view.name(),
        preprocess.normalization,
        preprocess.resample,
        preprocess.geometry
    )
    .into_bytes();
    for entry in &packed.entries {
        key.extend_from_slice(entry.name.as_bytes());
        key.extend_from_slice(&entry.hash.to_le_bytes());
    }
    fnv1a(&key)
}

/// Identifies a weights file by its contents.
pub fn weights_id(path: &Path) -> std::io::Result<u64> {
    Ok(fnv1a(&std::fs::read(path)?))
}

fn write_shard(path: &Path, values: &[f32], len: usize) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(12 + values.len() * 2);
    bytes.extend_from_slice(SHARD_MAGIC);
    bytes.extend_from_slice(&((values.len() / len) as u32).to_le_bytes());
    for value in values {
        bytes.extend_from_slice(&f16::from_f32(*value).to_le_bytes());
    }
    write_atomic(path, &bytes)
}

/// A whole shard of `photos` photos of `len` values each, or `None` (missing, damaged, other
/// size): computed again.
fn read_shard(path: &Path, photos: usize, len: usize) -> Option<Vec<f32>> {
    let bytes = std::fs::read(path).ok()?;
    let body = bytes.strip_prefix(SHARD_MAGIC)?;
    let count = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
    let body = &body[4..];
    (count == photos && body.len() == photos * len * 2).then(|| {
        body.chunks_exact(2)
            .map(|pair| f16::from_le_bytes([pair[0], pair[1]]).to_f32())
            .collect()
    })
}

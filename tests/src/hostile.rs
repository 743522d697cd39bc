//! Hostile and malformed inputs, made from real files: the edited model files a user reported
//! (issue 17's table), and a structure-aware mutator for weight files and photos that the fuzz
//! test (`tests/hostile.rs`) and the browser test feed to the product.
//!
//! The mutator is a seeded generator rather than `cargo fuzz`: that needs a nightly compiler
//! and a sanitizer build of Burn, while this runs on stable inside the ordinary test suite and
//! any failing case is reproduced from its seed. It knows the weight file's layout (magic,
//! version, header length, JSON header, weights length, CRC-32, burnpack) and the burnpack's
//! (magic, version, metadata length, CBOR metadata, tensor data), so most cases get past the
//! checksum and the framing and reach the code that decides what to allocate.

use catdog_model::weights::{FORMAT_VERSION, MAGIC};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Bytes before the JSON header: magic (8), format version (4), header length (4).
const PREAMBLE: usize = 16;
/// Bytes between the header and the weights: weights length (8), CRC-32 (4).
const WEIGHTS_FRAMING: usize = 12;
/// A burnpack's own preamble: magic (4), version (2), metadata length (4).
const BURNPACK_PREAMBLE: usize = 10;

/// A weight file taken apart at its framing.
#[derive(Debug, Clone)]
pub struct ModelParts {
    pub header: Value,
    pub weights: Vec<u8>,
}

impl ModelParts {
    /// Splits a well-formed weight file; panics on anything else (it takes real files only).
    pub fn split(file: &[u8]) -> Self {
        let (header_len, weights_at) = framing(file).expect("a real model file's framing");
        let header = serde_json::from_slice(&file[PREAMBLE..PREAMBLE + header_len])
            .expect("a real model file's header is JSON");
        Self {
            header,
            weights: file[weights_at..].to_vec(),
        }
    }

    /// The file again, with consistent lengths and a checksum that matches the weights, so a
    /// reader gets past the framing to whatever was changed inside.
    pub fn join(&self) -> Vec<u8> {
        let (header, weights) = (serde_json::to_vec(&self.header).unwrap(), &self.weights);
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        file.extend_from_slice(&(header.len() as u32).to_le_bytes());
        file.extend_from_slice(&header);
        file.extend_from_slice(&(weights.len() as u64).to_le_bytes());
        file.extend_from_slice(&crc32fast::hash(weights).to_le_bytes());
        file.extend_from_slice(weights);
        file
    }
}

/// A copy of `file` with its JSON header edited and everything else intact (the checksum
/// still passes): how a hand-edited model file looks.
pub fn edit_header(file: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut parts = ModelParts::split(file);
    edit(&mut parts.header);
    parts.join()
}

/// One hostile model file and the header field its refusal must name.
#[derive(Debug, Clone)]
pub struct HostileModel {
    /// A file name that says what is wrong with it.
    pub name: &'static str,
    pub bytes: Vec<u8>,
    /// What the refusal must mention: the field, or the part of the file.
    pub names: &'static str,
}

/// The edited copies of a CNN model file (the shipped small model) from the user's report:
/// each once aborted, panicked or classified as NaN, or was refused and must stay so.
pub fn reported_models(small_model: &[u8]) -> Vec<HostileModel> {
    let edited = |name, names, pointer: &'static str, value: Value| HostileModel {
        name,
        bytes: edit_header(small_model, |header| {
            *header.pointer_mut(pointer).expect("the field exists") = value
        }),
        names,
    };
    let mut huge_header = small_model.to_vec();
    huge_header[12..PREAMBLE].copy_from_slice(&(u32::MAX - 3).to_le_bytes());
    let mut huge_weights = small_model.to_vec();
    let (header_len, _) = framing(small_model).expect("a real model file's framing");
    let weights_len_at = PREAMBLE + header_len;
    huge_weights[weights_len_at..weights_len_at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    vec![
        edited(
            "input-size-200000.bpk",
            "preprocess.input_size",
            "/preprocess/input_size",
            json!(200_000),
        ),
        edited(
            "channels-65536.bpk",
            "architecture.channels",
            "/architecture/channels",
            json!([65536, 65536, 65536, 65536]),
        ),
        edited(
            "input-size-0.bpk",
            "preprocess.input_size",
            "/preprocess/input_size",
            json!(0),
        ),
        edited(
            "dropout-5.bpk",
            "architecture.dropout",
            "/architecture/dropout",
            json!(5.0),
        ),
        edited(
            "std-0.bpk",
            "preprocess.normalization.std",
            "/preprocess/normalization/std",
            json!([0.0, 0.0, 0.0]),
        ),
        edited(
            "no-channels.bpk",
            "architecture.channels",
            "/architecture/channels",
            json!([]),
        ),
        HostileModel {
            name: "header-length-near-4-gib.bpk",
            bytes: huge_header,
            names: "header",
        },
        HostileModel {
            name: "weights-length-2-pow-62.bpk",
            bytes: huge_weights,
            names: "weights",
        },
    ]
}

/// Values that break naive readers: zero, negatives, powers of two at integer widths, huge
/// and tiny floats, wrong types.
fn interesting_value(rng: &mut StdRng) -> Value {
    let values = [
        json!(0),
        json!(-1),
        json!(1),
        json!(2),
        json!(255),
        json!(65_536),
        json!(200_000),
        json!(i32::MAX),
        json!(u32::MAX),
        json!(u32::MAX as u64 + 1),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(0.5),
        json!(0.999_999),
        json!(1.0),
        json!(5.0),
        json!(-0.0),
        json!(1e-300),
        json!(1e300),
        json!(-1e300),
        json!(f64::MAX),
        json!(""),
        json!("x".repeat(1000)),
        json!(null),
        json!(true),
        json!([]),
        json!({}),
        json!([0, 0, 0]),
        json!([65536, 65536, 65536, 65536]),
        json!([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
    ];
    values.choose(rng).unwrap().clone()
}

/// Lengths near the edges of the fields that hold them.
fn interesting_length(rng: &mut StdRng, real: u64) -> u64 {
    let lengths = [
        0,
        1,
        real.saturating_sub(1),
        real.saturating_add(1),
        real.saturating_mul(2),
        u64::from(u16::MAX),
        u64::from(u32::MAX),
        u64::from(u32::MAX) + 1,
        1 << 62,
        u64::MAX,
    ];
    *lengths.choose(rng).unwrap()
}

/// Every JSON pointer to a value in `value`, containers included.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                pointers(inner, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                pointers(inner, format!("{at}/{index}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// A seeded source of mutated copies of real files.
pub struct Mutator {
    rng: StdRng,
}

impl Mutator {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A mutated copy of a real weight file (one to three changes) and what was changed.
    pub fn model(&mut self, original: &[u8]) -> (Vec<u8>, String) {
        let mut file = original.to_vec();
        let mut changes = Vec::new();
        for _ in 0..self.rng.random_range(1..=3) {
            changes.push(self.mutate_model(&mut file));
        }
        (file, changes.join("; "))
    }

    fn mutate_model(&mut self, file: &mut Vec<u8>) -> String {
        // Framing changes work on whatever the file now is; the others need it well formed.
        let framed = framing(file);
        let choice = if framed.is_some() {
            self.rng.random_range(0..9)
        } else {
            self.rng.random_range(6..9)
        };
        let rng = &mut self.rng;
        match (choice, framed) {
            (0..=5, Some((header_len, weights_at))) => {
                let header: Value =
                    match serde_json::from_slice(&file[PREAMBLE..PREAMBLE + header_len]) {
                        Ok(header) => header,
                        Err(_) => return "header left as it was (not JSON any more)".into(),
                    };
                let mut parts = ModelParts {
                    header,
                    weights: file[weights_at..].to_vec(),
                };
                let what = self.mutate_parts(choice, &mut parts);
                *file = parts.join();
                what
            }
            (6, _) => {
                let at = rng.random_range(0..file.len().max(1));
                file.truncate(at);
                format!("truncated to {at} bytes")
            }
            (7, _) => {
                let extra = rng.random_range(1..64);
                file.extend((0..extra).map(|_| rng.random::<u8>()));
                format!("{extra} bytes appended")
            }
            _ => {
                // A length field of the framing: header length or weights length.
                if file.len() < PREAMBLE {
                    return "too short for a length field".into();
                }
                let header_len = u32::from_le_bytes(file[12..PREAMBLE].try_into().unwrap());
                if rng.random_bool(0.5) || (PREAMBLE + header_len as usize + 8) > file.len() {
                    let length = interesting_length(rng, u64::from(header_len)) as u32;
                    file[12..PREAMBLE].copy_from_slice(&length.to_le_bytes());
                    format!("header length set to {length}")
                } else {
                    let at = PREAMBLE + header_len as usize;
                    let real = u64::from_le_bytes(file[at..at + 8].try_into().unwrap());
                    let length = interesting_length(rng, real);
                    file[at..at + 8].copy_from_slice(&length.to_le_bytes());
                    format!("weights length set to {length}")
                }
            }
        }
    }

    /// A change inside a well-framed file; the caller fixes the lengths and the checksum.
    fn mutate_parts(&mut self, choice: u32, parts: &mut ModelParts) -> String {
        let rng = &mut self.rng;
        let mut all = Vec::new();
        pointers(&parts.header, String::new(), &mut all);
        let pointer = all.choose(rng).cloned().unwrap_or_default();
        match choice {
            0 | 1 => {
                let value = interesting_value(rng);
                let what = format!("header {pointer} set to {}", short(&value));
                if let Some(slot) = parts.header.pointer_mut(&pointer) {
                    *slot = value;
                }
                what
            }
            2 => {
                let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", ""));
                match parts.header.pointer_mut(parent) {
                    Some(Value::Object(map)) => {
                        map.remove(key);
                    }
                    Some(Value::Array(items)) if !items.is_empty() => {
                        items.pop();
                    }
                    _ => {}
                }
                format!("header {pointer} removed")
            }
            3 => {
                // Tensor shapes, dtypes and offsets: bytes of the burnpack's CBOR metadata.
                let Some(metadata) = burnpack_metadata(&parts.weights) else {
                    return "weights have no burnpack metadata".into();
                };
                let at = rng.random_range(metadata);
                let byte = *[
                    0x00,
                    0x01,
                    0x17,
                    0x18,
                    0x19,
                    0x1a,
                    0x1b,
                    0x7f,
                    0x80,
                    0xff,
                    rng.random(),
                ]
                .choose(rng)
                .unwrap();
                parts.weights[at] = byte;
                format!("burnpack metadata byte {at} set to {byte:#04x}")
            }
            4 => {
                // The burnpack's own metadata length.
                if parts.weights.len() < BURNPACK_PREAMBLE {
                    return "weights too short for a burnpack".into();
                }
                let real = u32::from_le_bytes(parts.weights[6..10].try_into().unwrap());
                let length = interesting_length(rng, u64::from(real)) as u32;
                parts.weights[6..10].copy_from_slice(&length.to_le_bytes());
                format!("burnpack metadata length set to {length}")
            }
            _ => {
                // Tensor data or anything else in the weights: NaN and infinity included.
                if parts.weights.is_empty() {
                    return "no weights to change".into();
                }
                let count = rng.random_range(1..=16);
                for _ in 0..count {
                    let at = rng.random_range(0..parts.weights.len());
                    parts.weights[at] = rng.random();
                }
                format!("{count} weight bytes changed")
            }
        }
    }

    /// A mutated copy of a real photo: bytes changed, truncated, or a size field of its
    /// format's header changed.
    pub fn photo(&mut self, original: &[u8]) -> (Vec<u8>, String) {
        let mut photo = original.to_vec();
        if photo.len() < 2 {
            return (photo, "too short to mutate".into());
        }
        let rng = &mut self.rng;
        let what = match rng.random_range(0..4) {
            0 => {
                let at = rng.random_range(0..photo.len());
                photo.truncate(at);
                format!("truncated to {at} bytes")
            }
            1 => {
                // Within the first 1 KiB, where the headers that size buffers are.
                let count = rng.random_range(1..=8);
                for _ in 0..count {
                    let at = rng.random_range(0..photo.len().min(1024));
                    photo[at] = *[0x00, 0xff, 0x7f, 0x80, rng.random()].choose(rng).unwrap();
                }
                format!("{count} header bytes changed")
            }
            2 => {
                let count = rng.random_range(1..=32);
                for _ in 0..count {
                    let at = rng.random_range(0..photo.len());
                    photo[at] = rng.random();
                }
                format!("{count} bytes changed")
            }
            _ => {
                // A 16-bit field anywhere in the first 64 bytes (widths, heights, lengths)
                // set to an extreme.
                let at = rng.random_range(0..photo.len().min(64) - 1);
                let value: u16 = *[0, 1, 0x7fff, 0xffff].choose(rng).unwrap();
                photo[at..at + 2].copy_from_slice(&value.to_be_bytes());
                format!("16-bit field at {at} set to {value}")
            }
        };
        (photo, what)
    }
}

/// The header length and where the weights start, if the file's framing is intact.
fn framing(file: &[u8]) -> Option<(usize, usize)> {
    let header_len = u32::from_le_bytes(file.get(12..PREAMBLE)?.try_into().ok()?) as usize;
    let weights_at = PREAMBLE
        .checked_add(header_len)?
        .checked_add(WEIGHTS_FRAMING)?;
    let weights_len = u64::from_le_bytes(
        file.get(PREAMBLE + header_len..PREAMBLE + header_len + 8)?
            .try_into()
            .ok()?,
    );
    (file.len().checked_sub(weights_at)? as u64 == weights_len).then_some((header_len, weights_at))
}

/// Where a burnpack's CBOR metadata lies in `weights`, if its length field is believable.
fn burnpack_metadata(weights: &[u8]) -> Option<std::ops::Range<usize>> {
    let length = u32::from_le_bytes(weights.get(6..BURNPACK_PREAMBLE)?.try_into().ok()?) as usize;
    let end = BURNPACK_PREAMBLE.checked_add(length)?;
    (length > 0 && end <= weights.len()).then_some(BURNPACK_PREAMBLE..end)
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{}… ({} characters)", &text[..end], text.len()),
        None => text,
    }
}

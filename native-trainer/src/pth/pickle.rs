//! The small pickle machine that reads `torch.save`'s state dicts: the opcodes a state dict's
//! pickle uses (protocol 2, and the few of protocols 3 and 4 that appear too), and the
//! globals it calls to rebuild tensors and their storages. Anything else is refused by name
//! (`PthError::Unsupported`) rather than guessed at. (Over 400 lines: one match arm per
//! opcode, which reads best as the one table it is.)

use std::collections::HashMap;

use super::{Dtype, PthError};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Storage {
    pub(crate) dtype: Dtype,
    pub(crate) key: String,
}

/// What the pickle machine handles.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    BigInt(i128),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Keys and values in insertion order (a state dict is an `OrderedDict`).
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    Storage(Storage),
    Tensor {
        storage: Storage,
        offset: usize,
        shape: Vec<usize>,
        stride: Vec<usize>,
    },
    /// The result of calling a global this reader does not interpret (kept as a value so that
    /// metadata beside the tensors does no harm).
    Opaque,
}

/// A pickle machine for the opcodes `torch.save` writes for a state dict (protocol 2; the few
/// of protocols 3 and 4 that appear too).
pub(crate) struct Machine<'a> {
    bytes: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

impl<'a> Machine<'a> {
    /// Runs one pickle from the start of `bytes`: its value and where it ended.
    pub(crate) fn run(bytes: &'a [u8]) -> Result<(Value, usize), PthError> {
        let mut machine = Machine {
            bytes,
            at: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        };
        loop {
            let opcode = machine.take(1)?[0];
            if opcode == b'.' {
                let value = machine.pop()?;
                return Ok((value, machine.at));
            }
            machine.step(opcode)?;
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], PthError> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| PthError::Truncated("in a pickle".into()))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<usize, PthError> {
        Ok(self.take(1)?[0] as usize)
    }

    fn u16(&mut self) -> Result<usize, PthError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize)
    }

    fn u32(&mut self) -> Result<usize, PthError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize)
    }

    fn line(&mut self) -> Result<String, PthError> {
        let rest = &self.bytes[self.at..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| PthError::Truncated("in a pickle line".into()))?;
        self.at += end + 1;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    fn text(&mut self, len: usize) -> Result<Value, PthError> {
        let bytes = self.take(len)?;
        Ok(Value::Str(String::from_utf8_lossy(bytes).into_owned()))
    }

    fn pop(&mut self) -> Result<Value, PthError> {
        self.stack
            .pop()
            .ok_or_else(|| PthError::NotPytorch("a pickle popped an empty stack".into()))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PthError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| PthError::NotPytorch("a pickle closed a mark it never set".into()))?;
        if mark > self.stack.len() {
            return Err(PthError::NotPytorch(
                "a pickle's mark is past its stack".into(),
            ));
        }
        Ok(self.stack.split_off(mark))
    }

    fn top(&mut self) -> Result<&mut Value, PthError> {
        self.stack
            .last_mut()
            .ok_or_else(|| PthError::NotPytorch("a pickle used an empty stack".into()))
    }

    fn step(&mut self, opcode: u8) -> Result<(), PthError> {
        match opcode {
            0x80 => {
                self.u8()?; // PROTO
            }
            0x95 => {
                self.take(8)?; // FRAME: its length is only a hint
            }
            b'(' => self.marks.push(self.stack.len()),
            b'N' => self.stack.push(Value::None),
            0x88 => self.stack.push(Value::Bool(true)),
            0x89 => self.stack.push(Value::Bool(false)),
            b'J' => {
                let value = i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
                self.stack.push(Value::Int(value.into()));
            }
            b'K' => {
                let value = self.u8()?;
                self.stack.push(Value::Int(value as i64));
            }
            b'M' => {
                let value = self.u16()?;
                self.stack.push(Value::Int(value as i64));
            }
            0x8a => {
                // LONG1: a little-endian two's complement integer of n bytes.
                let n = self.u8()?;
                let bytes = self.take(n)?;
                if n > 16 {
                    return Err(PthError::Unsupported(format!("a {n}-byte integer")));
                }
                let mut value: i128 = 0;
                for (i, byte) in bytes.iter().enumerate() {
                    value |= i128::from(*byte) << (8 * i);
                }
                if n > 0 && n < 16 && bytes[n - 1] & 0x80 != 0 {
                    value -= 1i128 << (8 * n);
                }
                self.stack.push(match i64::try_from(value) {
                    Ok(small) => Value::Int(small),
                    Err(_) => Value::BigInt(value),
                });
            }
            b'G' => {
                let value = f64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes"));
                self.stack.push(Value::Float(value));
            }
            b'X' => {
                let len = self.u32()?;
                let text = self.text(len)?;
                self.stack.push(text);
            }
            0x8c => {
                let len = self.u8()?;
                let text = self.text(len)?;
                self.stack.push(text);
            }
            b'U' => {
                let len = self.u8()?;
                let text = self.text(len)?;
                self.stack.push(text);
            }
            b'T' => {
                let len = self.u32()?;
                let text = self.text(len)?;
                self.stack.push(text);
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.stack.push(Value::Global(module, name));
            }
            0x93 => {
                // STACK_GLOBAL
                let name = self.pop()?;
                let module = self.pop()?;
                match (module, name) {
                    (Value::Str(module), Value::Str(name)) => {
                        self.stack.push(Value::Global(module, name))
                    }
                    _ => return Err(PthError::NotPytorch("a global without names".into())),
                }
            }
            b')' => self.stack.push(Value::Tuple(Vec::new())),
            b']' => self.stack.push(Value::List(Vec::new())),
            b'}' => self.stack.push(Value::Dict(Vec::new())),
            b't' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::Tuple(items));
            }
            b'l' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::List(items));
            }
            0x85..=0x87 => {
                let n = (opcode - 0x84) as usize;
                if self.stack.len() < n {
                    return Err(PthError::NotPytorch("a tuple of missing items".into()));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.stack.push(Value::Tuple(items));
            }
            b'q' => {
                let key = self.u8()? as u32;
                self.memoize(key)?;
            }
            b'r' => {
                let key = self.u32()? as u32;
                self.memoize(key)?;
            }
            0x94 => {
                let key = self.memo.len() as u32;
                self.memoize(key)?;
            }
            b'h' => {
                let key = self.u8()? as u32;
                self.recall(key)?;
            }
            b'j' => {
                let key = self.u32()? as u32;
                self.recall(key)?;
            }
            b'a' => {
                let item = self.pop()?;
                match self.top()? {
                    Value::List(items) => items.push(item),
                    _ => return Err(PthError::NotPytorch("APPEND to a non-list".into())),
                }
            }
            b'e' => {
                let items = self.pop_mark()?;
                match self.top()? {
                    Value::List(list) => list.extend(items),
                    _ => return Err(PthError::NotPytorch("APPENDS to a non-list".into())),
                }
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                match self.top()? {
                    Value::Dict(entries) => entries.push((key, value)),
                    _ => return Err(PthError::NotPytorch("SETITEM on a non-dict".into())),
                }
            }
            b'u' => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return Err(PthError::NotPytorch("SETITEMS with an odd count".into()));
                }
                let mut items = items.into_iter();
                match self.top()? {
                    Value::Dict(entries) => {
                        while let (Some(key), Some(value)) = (items.next(), items.next()) {
                            entries.push((key, value));
                        }
                    }
                    _ => return Err(PthError::NotPytorch("SETITEMS on a non-dict".into())),
                }
            }
            b'b' => {
                // BUILD: an object's state (an OrderedDict's `_metadata`): nothing a tensor
                // needs.
                self.pop()?;
            }
            b'Q' => {
                let id = self.pop()?;
                let storage = persistent_storage(id)?;
                self.stack.push(Value::Storage(storage));
            }
            b'R' => {
                let arguments = self.pop()?;
                let callable = self.pop()?;
                let value = reduce(callable, arguments)?;
                self.stack.push(value);
            }
            other => {
                return Err(PthError::Unsupported(format!(
                    "pickle opcode 0x{other:02x} at byte {}",
                    self.at - 1
                )));
            }
        }
        Ok(())
    }

    fn memoize(&mut self, key: u32) -> Result<(), PthError> {
        let value = self.top()?.clone();
        self.memo.insert(key, value);
        Ok(())
    }

    fn recall(&mut self, key: u32) -> Result<(), PthError> {
        let value =
            self.memo.get(&key).cloned().ok_or_else(|| {
                PthError::NotPytorch(format!("memo {key} used before it was set"))
            })?;
        self.stack.push(value);
        Ok(())
    }
}

/// `('storage', torch.FloatStorage, key, location, count[, view])`.
fn persistent_storage(id: Value) -> Result<Storage, PthError> {
    let Value::Tuple(parts) = id else {
        return Err(PthError::NotStateDict(
            "a persistent id is not a tuple".into(),
        ));
    };
    match parts.as_slice() {
        [
            Value::Str(kind),
            Value::Global(_, storage),
            Value::Str(key),
            ..,
        ] if kind == "storage" => {
            let dtype = Dtype::from_storage(storage)
                .ok_or_else(|| PthError::Unsupported(format!("tensors of {storage}")))?;
            Ok(Storage {
                dtype,
                key: key.clone(),
            })
        }
        _ => Err(PthError::NotStateDict(
            "a persistent id that is not a storage".into(),
        )),
    }
}

fn reduce(callable: Value, arguments: Value) -> Result<Value, PthError> {
    let Value::Global(module, name) = callable else {
        return Err(PthError::NotPytorch(
            "REDUCE of something not callable".into(),
        ));
    };
    let Value::Tuple(arguments) = arguments else {
        return Err(PthError::NotPytorch(
            "REDUCE without an argument tuple".into(),
        ));
    };
    match (module.as_str(), name.as_str()) {
        ("collections", "OrderedDict") => Ok(Value::Dict(Vec::new())),
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
            let bad = || PthError::NotStateDict(format!("{module}.{name} with other arguments"));
            let mut arguments = arguments.into_iter();
            let (Some(Value::Storage(storage)), Some(Value::Int(offset))) =
                (arguments.next(), arguments.next())
            else {
                return Err(bad());
            };
            let sizes = |value: Option<Value>| -> Result<Vec<usize>, PthError> {
                match value {
                    Some(Value::Tuple(items)) => items
                        .into_iter()
                        .map(|item| match item {
                            Value::Int(n) if n >= 0 => Ok(n as usize),
                            _ => Err(bad()),
                        })
                        .collect(),
                    _ => Err(bad()),
                }
            };
            let shape = sizes(arguments.next())?;
            let stride = sizes(arguments.next())?;
            if shape.len() != stride.len() || offset < 0 {
                return Err(bad());
            }
            Ok(Value::Tensor {
                storage,
                offset: offset as usize,
                shape,
                stride,
            })
        }
        _ => Ok(Value::Opaque),
    }
}

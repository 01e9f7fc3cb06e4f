//! The subset of Python's pickle machine that `torch.save` writes for a state dict: dicts and
//! OrderedDicts, tuples, lists, scalars, strings, globals, `REDUCE`/`BUILD`, memo, and
//! persistent ids for tensor storages. Everything that would run Python code elsewhere becomes
//! an inert [`Value::Object`], so a hostile file can only fail to load.

use std::collections::HashMap;

mod reduce;

use reduce::{describe, kind, reduce};

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too wide for i64 (little-endian two's complement), e.g. torch's legacy magic.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Insertion-ordered, as an OrderedDict state dict is.
    Dict(Vec<(Value, Value)>),
    /// A `module.name` reference (a class or function) not yet called.
    Global(String, String),
    /// The result of calling an unknown global: kept only to be ignored.
    Object(String),
    /// What a persistent id resolved to (a tensor storage, for torch files).
    Persistent(Box<Value>),
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)`.
    Tensor(TensorRef),
}

#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    /// The persistent id tuple of the storage: `('storage', type, key, location, numel[, view])`.
    pub storage: Box<Value>,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PickleError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, PickleError> {
    Err(PickleError(msg.into()))
}

/// Runs one pickle from `data[*pos..]`, leaving `*pos` just after its STOP opcode.
pub fn load(data: &[u8], pos: &mut usize) -> Result<Value, PickleError> {
    Machine { data, pos, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), copy_budget: COPY_BUDGET }.run()
}

/// Values (plus string bytes / 8) that DUP and the memo may copy in one pickle. A state dict's
/// pickle copies a few small tuples per tensor; without a bound, nested DUPs of a growing dict
/// turned a 427-byte file into gigabytes (found by the `checkpoint` fuzz target).
const COPY_BUDGET: usize = 1 << 22;

struct Machine<'a, 'p> {
    data: &'a [u8],
    pos: &'p mut usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    copy_budget: usize,
}

impl Machine<'_, '_> {
    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let start = *self.pos;
        let end = start.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                *self.pos = end;
                Ok(&self.data[start..end])
            }
            None => err(format!("the pickle ends early (wanted {n} bytes at offset {start})")),
        }
    }
    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.data[*self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(|| PickleError("unterminated text line".into()))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        *self.pos += n + 1;
        Ok(s)
    }
    fn text(&mut self, n: usize) -> Result<String, PickleError> {
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn pop(&mut self) -> Result<Value, PickleError> {
        self.stack.pop().ok_or_else(|| PickleError("stack underflow".into()))
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let mark = self.marks.pop().ok_or_else(|| PickleError("no MARK on the stack".into()))?;
        if mark > self.stack.len() {
            return err("MARK above the stack top");
        }
        Ok(self.stack.split_off(mark))
    }
    fn top(&mut self) -> Result<&mut Value, PickleError> {
        self.stack.last_mut().ok_or_else(|| PickleError("stack underflow".into()))
    }
    /// A deep copy of `v`, charged against the copy budget (walked without recursion, so deep
    /// nesting cannot overflow the stack either).
    fn copy(&mut self, v: &Value) -> Result<Value, PickleError> {
        let mut todo = vec![v];
        while let Some(v) = todo.pop() {
            let bytes = match v {
                Value::Str(s) => s.len(),
                Value::Bytes(b) | Value::BigInt(b) => b.len(),
                _ => 0,
            };
            self.copy_budget = self.copy_budget.checked_sub(1 + bytes / 8).ok_or_else(|| {
                PickleError("the pickle copies more data than any checkpoint does (nested DUP/memo copies): not a state dict Kiln can read".into())
            })?;
            match v {
                Value::Tuple(xs) | Value::List(xs) => todo.extend(xs),
                Value::Dict(kv) => todo.extend(kv.iter().flat_map(|(k, x)| [k, x])),
                Value::Persistent(b) => todo.push(b),
                Value::Tensor(t) => todo.push(&t.storage),
                _ => {}
            }
        }
        Ok(v.clone())
    }
    fn memo_get(&mut self, i: u32) -> Result<Value, PickleError> {
        let memo = std::mem::take(&mut self.memo);
        let v = match memo.get(&i) {
            Some(v) => self.copy(v),
            None => err(format!("memo entry {i} was never stored")),
        };
        self.memo = memo;
        v
    }
    fn memo_put(&mut self, i: u32) -> Result<(), PickleError> {
        let top = self.stack.pop().ok_or_else(|| PickleError("stack underflow".into()))?;
        let v = self.copy(&top);
        self.stack.push(top);
        self.memo.insert(i, v?);
        Ok(())
    }
    fn tuple(&mut self, n: usize) -> Result<(), PickleError> {
        if self.stack.len() < n {
            return err("stack underflow");
        }
        let items = self.stack.split_off(self.stack.len() - n);
        self.stack.push(Value::Tuple(items));
        Ok(())
    }
    fn set_items(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        if items.len() % 2 != 0 {
            return err("odd number of items for SETITEMS");
        }
        match self.top()? {
            Value::Dict(d) => {
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    match d.iter_mut().find(|(key, _)| *key == k) {
                        Some(entry) => entry.1 = v,
                        None => d.push((k, v)),
                    }
                }
                Ok(())
            }
            // Items set on an opaque object are ignored with it.
            Value::Object(_) => Ok(()),
            other => err(format!("SETITEMS on a non-dict ({})", kind(other))),
        }
    }
    fn append(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        match self.top()? {
            Value::List(l) => {
                l.extend(items);
                Ok(())
            }
            Value::Object(_) => Ok(()),
            other => err(format!("APPEND on a non-list ({})", kind(other))),
        }
    }

    fn run(mut self) -> Result<Value, PickleError> {
        loop {
            let at = *self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85 => self.tuple(1)?,
                0x86 => self.tuple(2)?,
                0x87 => self.tuple(3)?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Dict(Vec::new()));
                    self.set_items(items)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.u8()? as usize } else { self.u32()? as usize };
                    let bytes = self.take(n)?;
                    if n > 8 {
                        let b = bytes.to_vec();
                        self.stack.push(Value::BigInt(b));
                        continue;
                    }
                    let mut buf = if bytes.last().is_some_and(|b| b & 0x80 != 0) { [0xffu8; 8] } else { [0u8; 8] };
                    buf[..n].copy_from_slice(bytes);
                    self.stack.push(Value::Int(i64::from_le_bytes(buf)));
                }
                b'I' | b'L' => {
                    let line = self.line()?;
                    let line = line.trim_end_matches('L');
                    let v = match line {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => Value::Int(s.parse().map_err(|_| PickleError(format!("bad integer {s:?}")))?),
                    };
                    self.stack.push(v);
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                    self.stack.push(Value::Float(v));
                }
                b'F' => {
                    let line = self.line()?;
                    self.stack.push(Value::Float(line.parse().map_err(|_| PickleError(format!("bad float {line:?}")))?));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.text(n)?;
                    self.stack.push(Value::Str(s));
                }
                0x8c | b'U' => {
                    let n = self.u8()? as usize;
                    let s = self.text(n)?;
                    self.stack.push(Value::Str(s));
                }
                0x8d => {
                    let n = self.u64()? as usize;
                    let s = self.text(n)?;
                    self.stack.push(Value::Str(s));
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let s = self.text(n)?;
                    self.stack.push(Value::Str(s));
                }
                b'B' | b'C' | 0x8e => {
                    let n = match op {
                        b'B' => self.u32()? as usize,
                        b'C' => self.u8()? as usize,
                        _ => self.u64()? as usize,
                    };
                    let b = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(b));
                }
                b'V' => {
                    let s = self.line()?;
                    self.stack.push(Value::Str(s));
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(module, name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(Value::Global(m, n)),
                        _ => return err("STACK_GLOBAL needs two strings"),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = reduce(callable, args)?;
                    self.stack.push(v);
                }
                0x81 => {
                    let _args = self.pop()?;
                    let cls = self.pop()?;
                    self.stack.push(Value::Object(describe(&cls)));
                }
                b'b' => {
                    // BUILD sets state on the object below; state dicts only carry `_metadata`.
                    self.pop()?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(Value::Persistent(Box::new(pid)));
                }
                b'P' => {
                    let pid = self.line()?;
                    self.stack.push(Value::Persistent(Box::new(Value::Str(pid))));
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                b'p' => {
                    let line = self.line()?;
                    let i = line.parse().map_err(|_| PickleError(format!("bad memo index {line:?}")))?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    let v = self.memo_get(i)?;
                    self.stack.push(v);
                }
                b'j' => {
                    let i = self.u32()?;
                    let v = self.memo_get(i)?;
                    self.stack.push(v);
                }
                b'g' => {
                    let line = self.line()?;
                    let i = line.parse().map_err(|_| PickleError(format!("bad memo index {line:?}")))?;
                    let v = self.memo_get(i)?;
                    self.stack.push(v);
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.pop()?;
                    let v = self.copy(&top);
                    self.stack.push(top);
                    let v = v?;
                    self.stack.push(v);
                }
                other => return err(format!("unsupported pickle opcode 0x{other:02x} at offset {at}")),
            }
        }
    }
}

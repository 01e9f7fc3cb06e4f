//! PyTorch checkpoints from bytes: the zip container (torch ≥ 1.6) and the legacy pickle
//! stream (torch 0.4–1.5). burn-store's reader opens only file paths, which the browser does
//! not have, so the containers are read here; each tensor is gathered through its storage
//! offset and strides (legacy files often hold transposed, non-contiguous views).

use std::collections::HashMap;
use std::io::{Cursor, Read};

use super::pickle::{self, TensorRef, Value};
use super::{Checkpoint, NamedTensor, WeightsError};

/// 2^30 f32 values (4 GiB): far beyond any backbone's largest tensor.
const MAX_ELEMENTS: usize = 1 << 30;

fn bad(msg: impl Into<String>) -> WeightsError {
    WeightsError::Format(msg.into())
}

#[derive(Clone, Copy, Debug)]
enum DType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    fn from_storage(v: &Value) -> Result<Self, WeightsError> {
        let Value::Global(_, name) = v else {
            return Err(bad(format!("storage type {v:?}")));
        };
        Ok(match name.as_str() {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            other => return Err(bad(format!("unsupported tensor storage {other} (quantized or complex tensors cannot be imported)"))),
        })
    }
    fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }
    fn read(self, b: &[u8]) -> f32 {
        match self {
            DType::F32 => f32::from_le_bytes(b.try_into().unwrap()),
            DType::F64 => f64::from_le_bytes(b.try_into().unwrap()) as f32,
            DType::F16 => half::f16::from_le_bytes(b.try_into().unwrap()).to_f32(),
            DType::BF16 => half::bf16::from_le_bytes(b.try_into().unwrap()).to_f32(),
            DType::I64 => i64::from_le_bytes(b.try_into().unwrap()) as f32,
            DType::I32 => i32::from_le_bytes(b.try_into().unwrap()) as f32,
            DType::I16 => i16::from_le_bytes(b.try_into().unwrap()) as f32,
            DType::I8 => b[0] as i8 as f32,
            DType::U8 | DType::Bool => b[0] as f32,
        }
    }
}

/// A storage's place in the file: its key, element type, and an element offset into it
/// (legacy views share one root storage).
struct StorageId {
    key: String,
    dtype: DType,
    view_offset: usize,
}

fn storage_id(pid: &Value) -> Result<StorageId, WeightsError> {
    let Value::Tuple(items) = pid else {
        return Err(bad(format!("persistent id {pid:?} is not a storage tuple")));
    };
    match items.as_slice() {
        [Value::Str(tag), ty, key, _location, _numel, rest @ ..] if tag == "storage" => {
            let key = match key {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                other => return Err(bad(format!("storage key {other:?}"))),
            };
            // Legacy view metadata: (view_key, offset, size) into the root storage `key`.
            let view_offset = match rest.first() {
                Some(Value::Tuple(v)) if v.len() == 3 => match v[1] {
                    Value::Int(o) if o >= 0 => o as usize,
                    _ => return Err(bad("bad storage view offset")),
                },
                _ => 0,
            };
            Ok(StorageId { key, dtype: DType::from_storage(ty)?, view_offset })
        }
        _ => Err(bad(format!("persistent id {pid:?} is not a storage tuple"))),
    }
}

/// Gathers a (possibly strided) tensor view out of its storage's raw bytes as f32.
fn gather(name: &str, t: &TensorRef, raw: &[u8]) -> Result<NamedTensor, WeightsError> {
    let id = storage_id(&t.storage)?;
    let es = id.dtype.size();
    let numel_storage = raw.len() / es;
    let numel: usize = t.shape.iter().product();
    if t.stride.len() != t.shape.len() {
        return Err(bad(format!("{name}: stride {:?} does not match shape {:?}", t.stride, t.shape)));
    }
    // A stride-0 view can claim any number of elements; refuse what no real weight needs.
    if numel > MAX_ELEMENTS {
        return Err(bad(format!("{name}: shape {:?} has {numel} elements, more than Kiln accepts for one tensor ({MAX_ELEMENTS})", t.shape)));
    }
    let base = id.view_offset + t.offset;
    if numel > 0 {
        let extent = t.shape.iter().zip(&t.stride).try_fold(base, |acc, (&d, &s)| (d - 1).checked_mul(s).and_then(|x| acc.checked_add(x)));
        match extent {
            Some(last) if last < numel_storage => {}
            _ => {
                return Err(bad(format!(
                    "{name}: shape {:?} with strides {:?} at offset {base} runs past its storage of {numel_storage} elements",
                    t.shape, t.stride
                )));
            }
        }
    }
    let mut values = Vec::with_capacity(numel);
    let mut index = vec![0usize; t.shape.len()];
    for _ in 0..numel {
        let at = base + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
        values.push(id.dtype.read(&raw[at * es..(at + 1) * es]));
        // Row-major increment of the multi-index.
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < t.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(NamedTensor { name: name.to_string(), shape: t.shape.clone(), values })
}

/// The name → tensor pairs of a state dict, found at the root or under a nesting key such as
/// `state_dict` or `model`; other values (epoch counters, optimizer state) are skipped.
fn state_dict(root: &Value) -> Result<Vec<(String, TensorRef)>, WeightsError> {
    fn tensors(v: &Value) -> Vec<(String, TensorRef)> {
        match v {
            Value::Dict(items) => items
                .iter()
                .filter_map(|(k, v)| match (k, v) {
                    (Value::Str(k), Value::Tensor(t)) => Some((k.clone(), t.clone())),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
    let direct = tensors(root);
    if !direct.is_empty() {
        return Ok(direct);
    }
    if let Value::Dict(items) = root {
        for key in ["state_dict", "model", "model_state_dict", "net", "module", "params"] {
            if let Some((_, v)) = items.iter().find(|(k, _)| *k == Value::Str(key.into())) {
                let found = tensors(v);
                if !found.is_empty() {
                    return Ok(found);
                }
            }
        }
    }
    Err(bad("no tensors found: expected a state_dict (a dict of names to tensors), possibly under \"state_dict\" or \"model\"; save one with torch.save(model.state_dict(), path)"))
}

pub fn read_zip(bytes: &[u8]) -> Result<Checkpoint, WeightsError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| bad(format!("not a readable zip: {e}")))?;
    let pkl_name = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() == 1)
        .ok_or_else(|| bad("this zip has no <name>/data.pkl, so it is not a PyTorch checkpoint"))?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let mut read_entry = |name: &str| -> Result<Vec<u8>, WeightsError> {
        let mut entry = zip.by_name(name).map_err(|e| bad(format!("{name}: {e}")))?;
        let mut out = Vec::new();
        entry.read_to_end(&mut out).map_err(|e| bad(format!("{name}: {e}")))?;
        Ok(out)
    };
    if let Ok(order) = read_entry(&format!("{prefix}byteorder"))
        && order.trim_ascii() != b"little"
    {
        return Err(bad("big-endian checkpoints are not supported"));
    }
    let pkl = read_entry(&pkl_name)?;
    let root = pickle::load(&pkl, &mut 0).map_err(|e| bad(format!("data.pkl: {e}")))?;
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = Vec::new();
    for (name, t) in state_dict(&root)? {
        let id = storage_id(&t.storage)?;
        if !storages.contains_key(&id.key) {
            let data = read_entry(&format!("{prefix}data/{}", id.key))?;
            storages.insert(id.key.clone(), data);
        }
        out.push(gather(&name, &t, &storages[&id.key])?);
    }
    Ok(Checkpoint { tensors: out })
}

pub fn read_legacy(bytes: &[u8]) -> Result<Checkpoint, WeightsError> {
    let mut pos = 0;
    let mut next = |what: &str| pickle::load(bytes, &mut pos).map_err(|e| bad(format!("legacy checkpoint, {what}: {e}")));
    next("magic number")?;
    match next("protocol")? {
        Value::Int(1001) => {}
        other => return Err(bad(format!("legacy protocol {other:?}, expected 1001"))),
    }
    if let Value::Dict(info) = next("system info")?
        && info.iter().any(|(k, v)| *k == Value::Str("little_endian".into()) && *v == Value::Bool(false))
    {
        return Err(bad("big-endian checkpoints are not supported"));
    }
    let root = next("state dict")?;
    let Value::List(keys) = next("storage keys")? else {
        return Err(bad("legacy checkpoint: the storage key list is missing"));
    };
    let sd = state_dict(&root)?;
    // Storage element types come from the tensors that use them, anywhere in the file.
    fn walk(v: &Value, dtypes: &mut HashMap<String, DType>) -> Result<(), WeightsError> {
        match v {
            Value::Tensor(t) => {
                let id = storage_id(&t.storage)?;
                dtypes.insert(id.key, id.dtype);
            }
            Value::Dict(items) => {
                for (k, v) in items {
                    walk(k, dtypes)?;
                    walk(v, dtypes)?;
                }
            }
            Value::List(items) | Value::Tuple(items) => {
                for v in items {
                    walk(v, dtypes)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    let mut dtypes: HashMap<String, DType> = HashMap::new();
    walk(&root, &mut dtypes)?;
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for key in keys {
        let key = match key {
            Value::Str(s) => s,
            other => return Err(bad(format!("storage key {other:?}"))),
        };
        let count = bytes.get(pos..pos + 8).ok_or_else(|| bad(format!("storage {key} is cut off")))?;
        let count = i64::from_le_bytes(count.try_into().unwrap());
        pos += 8;
        let es = dtypes.get(&key).map(|d| d.size()).ok_or_else(|| bad(format!("storage {key} is not used by any tensor, so its size is unknown")))?;
        let len = usize::try_from(count).ok().and_then(|c| c.checked_mul(es)).ok_or_else(|| bad(format!("storage {key}: bad size {count}")))?;
        let end = pos.checked_add(len).ok_or_else(|| bad(format!("storage {key}: bad size {count}")))?;
        let data = bytes.get(pos..end).ok_or_else(|| bad(format!("storage {key} is cut off")))?;
        pos = end;
        storages.insert(key, data);
    }
    sd.iter()
        .map(|(name, t)| {
            let id = storage_id(&t.storage)?;
            let raw = storages.get(&id.key).ok_or_else(|| bad(format!("{name}: storage {} is missing", id.key)))?;
            gather(name, t, raw)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|tensors| Checkpoint { tensors })
}

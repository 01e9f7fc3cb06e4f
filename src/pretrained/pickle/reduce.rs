//! What the pickle machine does with `REDUCE`: the few callables a state dict needs (an
//! OrderedDict, torch's tensor rebuilders), everything else an inert object.

use super::{PickleError, TensorRef, Value, err};

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::BigInt(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::Tuple(_) => "tuple",
        Value::List(_) => "list",
        Value::Dict(_) => "dict",
        Value::Global(..) => "global",
        Value::Object(_) => "object",
        Value::Persistent(_) => "persistent id",
        Value::Tensor(_) => "tensor",
    }
}

pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::Global(m, n) => format!("{m}.{n}"),
        other => kind(other).to_string(),
    }
}

fn dims(v: &Value, what: &str) -> Result<Vec<usize>, PickleError> {
    match v {
        Value::Tuple(items) | Value::List(items) => items
            .iter()
            .map(|d| match d {
                Value::Int(i) if *i >= 0 => Ok(*i as usize),
                other => err(format!("tensor {what} holds {other:?}")),
            })
            .collect(),
        other => err(format!("tensor {what} is a {}, not a tuple", kind(other))),
    }
}

/// Calls the few globals a state dict needs; anything else becomes an inert object.
pub(super) fn reduce(callable: Value, args: Value) -> Result<Value, PickleError> {
    let Value::Global(module, name) = &callable else {
        return Ok(Value::Object(describe(&callable)));
    };
    let args = match args {
        Value::Tuple(a) => a,
        other => vec![other],
    };
    Ok(match (module.as_str(), name.as_str()) {
        ("collections", "OrderedDict") => match args.into_iter().next() {
            Some(Value::List(pairs)) => Value::Dict(
                pairs
                    .into_iter()
                    .filter_map(|p| match p {
                        Value::Tuple(mut kv) if kv.len() == 2 => {
                            let v = kv.pop()?;
                            Some((kv.pop()?, v))
                        }
                        _ => None,
                    })
                    .collect(),
            ),
            _ => Value::Dict(Vec::new()),
        },
        ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2" | "_rebuild_tensor_v3") => {
            if args.len() < 4 {
                return err(format!("{name} with {} arguments", args.len()));
            }
            let Value::Persistent(storage) = &args[0] else {
                return err(format!("{name}: the storage is a {}", kind(&args[0])));
            };
            let offset = match args[1] {
                Value::Int(o) if o >= 0 => o as usize,
                ref other => return err(format!("{name}: storage offset {other:?}")),
            };
            Value::Tensor(TensorRef { storage: storage.clone(), offset, shape: dims(&args[2], "size")?, stride: dims(&args[3], "stride")? })
        }
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            args.into_iter().next().unwrap_or(Value::None)
        }
        _ => Value::Object(format!("{module}.{name}")),
    })
}

//! Browser bindings (wasm-bindgen): a thin translation layer over the core, used by the Web
//! Worker in `www/worker.js`. Every method returns a Promise or a value; errors are JS `Error`s
//! with the core's message; a panic is logged with its message by console_error_panic_hook.

mod backend;
mod dataset;
mod heap;
mod learner;

pub use backend::Backend;
pub use dataset::{Dataset, import_weights, sample_digits};
pub use heap::{live_heap_bytes, memory_bytes};
pub use learner::{CancelToken, Learner};

use js_sys::{Function, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::learner::Event;

#[wasm_bindgen(start)]
fn start() {
    run_static_constructors();
    console_error_panic_hook::set_once();
}

/// The linker's static constructors (cubecl registers its IR through `inventory`), once per
/// instance: from the start function in the page, from [`Backend::init`] where a harness never
/// runs the start function (wasm-bindgen-test). Because an export calls them, wasm-ld does not
/// link the module as a command, which would run them all at the top of every export (a cost
/// every WebGPU dispatch paid many times over; `scripts/build-web.sh` refuses such a build).
fn run_static_constructors() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    unsafe extern "C" {
        fn __wasm_call_ctors();
    }
    if !DONE.swap(true, Ordering::AcqRel) {
        unsafe { __wasm_call_ctors() };
    }
}

// The threaded build's rayon pool: `await initThreadPool(n)` once, from the training worker.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

fn js_err(e: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&e.to_string()).into()
}

fn to_js<T: Serialize>(v: &T) -> Result<JsValue, JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(js_err)
}

/// Options objects: unknown keys (typos) are errors, since serde-wasm-bindgen only reads the
/// keys it knows.
fn from_js<T: for<'de> Deserialize<'de> + Default>(v: JsValue, what: &str, known: &[&str]) -> Result<T, JsValue> {
    if v.is_undefined() || v.is_null() {
        return Ok(T::default());
    }
    let obj: &js_sys::Object = v.dyn_ref().ok_or_else(|| js_err(format!("{what} must be an object")))?;
    for key in js_sys::Object::keys(obj).iter().filter_map(|k| k.as_string()) {
        if !known.contains(&key.as_str()) {
            return Err(js_err(format!("unknown {what} key {key:?}; expected one of {}", known.join(", "))));
        }
    }
    serde_wasm_bindgen::from_value(v).map_err(|e| js_err(format!("invalid {what}: {e}")))
}

/// An RGB image as `{width, height, rgba}` for a canvas's ImageData.
fn rgba_to_js(img: image::RgbImage) -> Result<JsValue, JsValue> {
    let rgba = image::DynamicImage::ImageRgb8(img).into_rgba8();
    let out = js_sys::Object::new();
    js_sys::Reflect::set(&out, &"width".into(), &rgba.width().into())?;
    js_sys::Reflect::set(&out, &"height".into(), &rgba.height().into())?;
    js_sys::Reflect::set(&out, &"rgba".into(), &Uint8Array::from(rgba.as_raw().as_slice()))?;
    Ok(out.into())
}

/// Forwards the core's progress events to a JS callback (a snapshot's bytes as one Uint8Array,
/// not a serde array of numbers).
fn emitter(on_event: Function) -> impl FnMut(&Event) {
    move |e| {
        let v = match e {
            Event::Snapshot(bytes) => {
                let o = js_sys::Object::new();
                let _ = js_sys::Reflect::set(&o, &"type".into(), &"snapshot".into());
                let _ = js_sys::Reflect::set(&o, &"bytes".into(), &Uint8Array::from(bytes.as_slice()));
                Ok(o.into())
            }
            e => to_js(e),
        };
        if let Ok(v) = v {
            let _ = on_event.call1(&JsValue::NULL, &v);
        }
    }
}

//! Where tensors live: WebGPU through burn-wgpu, or burn's CPU backend in wasm.

#[cfg(feature = "webgpu")]
use std::cell::RefCell;

use burn::tensor::Device;
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::{from_js, js_err, to_js};
use crate::learner::LearnerOptions;

#[wasm_bindgen]
pub struct Backend {
    pub(super) device: Device,
    kind: String,
}

#[wasm_bindgen]
impl Backend {
    /// `"webgpu"` or `"cpu"`. WebGPU initialisation is async; it fails when no adapter exists.
    #[wasm_bindgen(js_name = create, unchecked_return_type = "Promise<Backend>")]
    pub fn create(kind: String) -> Promise {
        future_to_promise(async move { Ok(Backend::init(&kind).await?.into()) })
    }

    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> String {
        self.kind.clone()
    }

    /// Why mixed precision (fp16) is not available here, or `undefined` when it is (WebGPU
    /// with `shader-f16`).
    #[wasm_bindgen(getter, js_name = fp16Unavailable)]
    pub fn fp16_unavailable(&self) -> Option<String> {
        crate::mixed_precision::fp16_support(&self.device).err()
    }

    /// Times one training pass of the model `options` describes, for `numClasses` classes, on
    /// this backend (after an untimed one that compiles its kernels): `{firstMs, stepMs}`.
    /// `beatMs`: another backend's time, so a hopeless candidate stops after its first pass
    /// (`stepMs` is then null: over 4× `beatMs` and over 10 s). The page's `auto` compares backends with it.
    #[wasm_bindgen(unchecked_return_type = "Promise<Probe>")]
    pub fn probe(
        &self,
        #[wasm_bindgen(unchecked_param_type = "LearnerOptions | undefined")] options: JsValue,
        #[wasm_bindgen(js_name = numClasses)] num_classes: usize,
        #[wasm_bindgen(js_name = beatMs)] beat_ms: Option<f64>,
    ) -> Result<Promise, JsValue> {
        let o: LearnerOptions = from_js(options, "learner option", LearnerOptions::KEYS)?;
        let config = o.config(num_classes.max(2)).map_err(js_err)?;
        let device = self.device.clone();
        Ok(future_to_promise(async move {
            let p = crate::learner::probe::probe(&config, &device, beat_ms).await.map_err(js_err)?;
            to_js(&p)
        }))
    }
}

#[cfg(feature = "webgpu")]
thread_local! {
    // burn registers one wgpu runtime per page; a second init would fail, so reuse it.
    static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
}

impl Backend {
    pub async fn init(kind: &str) -> Result<Backend, JsValue> {
        super::run_static_constructors();
        let device = match kind {
            #[cfg(feature = "webgpu")]
            "webgpu" => match WEBGPU.with(|d| d.borrow().clone()) {
                Some(d) => d,
                None => {
                    let (d, setup) = Device::wgpu_options().init_with_setup_async().await.map_err(|e| js_err(format!("WebGPU is not available: {e}")))?;
                    crate::device::Kernels::for_adapter(&setup.adapter.get_info()).set();
                    WEBGPU.with(|w| *w.borrow_mut() = Some(d.clone()));
                    d
                }
            },
            #[cfg(not(feature = "webgpu"))]
            "webgpu" => return Err(js_err("this build of Kiln has no WebGPU (it is the multi-threaded CPU build)")),
            "cpu" => Device::flex(),
            other => return Err(js_err(format!("unknown backend {other:?}: use \"webgpu\" or \"cpu\""))),
        };
        Ok(Backend { device, kind: kind.to_string() })
    }

    /// The device, for Rust callers (tests) that drive the core directly.
    pub fn device(&self) -> Device {
        self.device.clone()
    }
}

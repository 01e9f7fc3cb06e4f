//! Browser bindings (wasm-bindgen): a thin translation layer over the core, used by the Web
//! Worker in `www/worker.js`. Every method returns a Promise or a value; errors are JS `Error`s
//! with the core's message; a panic is logged with its message by console_error_panic_hook.

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::Device;
use js_sys::{Function, Promise, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::augment::AugConfig;
use crate::data::{self, DataConfig, Datasets, Item, LabelRule, Splitter};
use crate::learner::{self, CancelToken as CoreCancel, Event, LearnerConfig};
use crate::model::{Arch, ClassifierConfig, ResNetConfig};
use crate::schedule::{Lr, OneCycle};

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

// The threaded build's rayon pool: `await initThreadPool(n)` once, from the training worker.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// Bytes of linear memory this instance holds (wasm memory only grows, so this is its peak).
#[wasm_bindgen(js_name = memoryBytes)]
pub fn memory_bytes() -> f64 {
    (core::arch::wasm32::memory_size(0) * 65536) as f64
}

/// Bytes the Rust heap has handed out and not taken back. The linear memory's size is a
/// high-water mark that also moves with fragmentation (pool threads allocate in whatever order
/// they run), so a leak shows here first: this comes back to the same figure after every step.
#[wasm_bindgen(js_name = liveHeapBytes)]
pub fn live_heap_bytes() -> f64 {
    heap::LIVE.load(std::sync::atomic::Ordering::Relaxed) as f64
}

mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    pub static LIVE: AtomicUsize = AtomicUsize::new(0);

    /// The system allocator with a live-bytes counter (one relaxed atomic per call: tensors
    /// are few, large allocations). Not inlined: LTO would otherwise copy the counter and the
    /// call into every allocation site (+70 KiB gzip in the WebGPU build).
    struct Counting;

    unsafe impl GlobalAlloc for Counting {
        #[inline(never)]
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                LIVE.fetch_add(layout.size(), Relaxed);
            }
            p
        }
        #[inline(never)]
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                LIVE.fetch_add(layout.size(), Relaxed);
            }
            p
        }
        #[inline(never)]
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) };
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        #[inline(never)]
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                LIVE.fetch_sub(layout.size(), Relaxed);
                LIVE.fetch_add(new_size, Relaxed);
            }
            p
        }
    }

    #[global_allocator]
    static ALLOC: Counting = Counting;
}

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

/// Forwards the core's progress events to a JS callback.
fn emitter(on_event: Function) -> impl FnMut(&Event) {
    move |e| {
        let v = match e {
            // Bytes as one Uint8Array, not a serde array of numbers.
            Event::Snapshot(bytes) => {
                let o = js_sys::Object::new();
                let _ = js_sys::Reflect::set(&o, &"type".into(), &"snapshot".into());
                let _ = js_sys::Reflect::set(&o, &"bytes".into(), &js_sys::Uint8Array::from(bytes.as_slice()));
                Ok(o.into())
            }
            e => to_js(e),
        };
        if let Ok(v) = v {
            let _ = on_event.call1(&JsValue::NULL, &v);
        }
    }
}

/// Resolve after a zero-delay timer, giving the worker's event loop a turn.
pub(crate) async fn yield_now() {
    let promise = Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set_timeout: Function = js_sys::Reflect::get(&global, &"setTimeout".into()).unwrap().into();
        let _ = set_timeout.call2(&global, &resolve, &0.into());
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Where tensors live: WebGPU through burn-wgpu, or burn's CPU backend in wasm.
#[wasm_bindgen]
pub struct Backend {
    device: Device,
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
}

#[cfg(feature = "webgpu")]
thread_local! {
    // burn registers one wgpu runtime per page; a second init would fail, so reuse it.
    static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
}

impl Backend {
    pub async fn init(kind: &str) -> Result<Backend, JsValue> {
        let device = match kind {
            #[cfg(feature = "webgpu")]
            "webgpu" => match WEBGPU.with(|d| d.borrow().clone()) {
                Some(d) => d,
                None => {
                    let d = Device::wgpu_options().init_async().await.map_err(|e| js_err(format!("WebGPU is not available: {e}")))?;
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

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DatasetOptions {
    label_regex: Option<String>,
    valid_pct: Option<f64>,
    seed: Option<u64>,
    presize: Option<u32>,
    max_pixels: Option<u64>,
}

/// A labelled, split dataset built from `{name, bytes}` entries (names are relative paths
/// such as `cats/1.jpg`, or pets-style file names).
#[wasm_bindgen]
pub struct Dataset {
    inner: Rc<Datasets>,
}

#[wasm_bindgen]
impl Dataset {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "Array<{name: string, bytes: Uint8Array}>")] files: js_sys::Array,
        #[wasm_bindgen(unchecked_param_type = "DatasetOptions | undefined")] options: JsValue,
    ) -> Result<Dataset, JsValue> {
        let opts: DatasetOptions = from_js(options, "dataset option", &["labelRegex", "validPct", "seed", "presize", "maxPixels"])?;
        let mut items = Vec::with_capacity(files.length() as usize);
        for (i, f) in files.iter().enumerate() {
            let name = js_sys::Reflect::get(&f, &"name".into())?
                .as_string()
                .ok_or_else(|| js_err(format!("file #{i} has no string `name`")))?;
            let bytes = js_sys::Reflect::get(&f, &"bytes".into())?;
            let bytes: Uint8Array = bytes.dyn_into().map_err(|_| js_err(format!("{name}: `bytes` must be a Uint8Array")))?;
            items.push(Item::new(name, bytes.to_vec()));
        }
        let mut config = DataConfig::default();
        if let Some(re) = opts.label_regex.filter(|r| !r.is_empty()) {
            config = config.with_label_rule(LabelRule::regex(&re).map_err(js_err)?);
        }
        let valid_pct = opts.valid_pct.unwrap_or(0.2);
        if !(0.0..1.0).contains(&valid_pct) {
            return Err(js_err(format!("validPct {valid_pct} must be in [0, 1)")));
        }
        config = config.with_splitter(Splitter::Auto { valid_pct, seed: opts.seed.unwrap_or(42) });
        if let Some(p) = opts.presize {
            if !(8..=2048).contains(&p) {
                return Err(js_err(format!("presize {p} must be between 8 and 2048")));
            }
            config = config.with_presize(p);
        }
        if let Some(m) = opts.max_pixels {
            config = config.with_max_pixels(m);
        }
        let inner = Datasets::from_items(items, config).map_err(js_err)?;
        Ok(Dataset { inner: Rc::new(inner) })
    }

    /// Counts per class and split, the label rule, and every skipped file with its reason.
    #[wasm_bindgen(unchecked_return_type = "Summary")]
    pub fn summary(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.summary())
    }

    #[wasm_bindgen(getter)]
    pub fn classes(&self) -> Vec<String> {
        self.inner.classes.clone()
    }

    /// `n` augmented training samples as one RGBA grid with labels: `{width, height, rgba}`.
    #[wasm_bindgen(js_name = showBatch, unchecked_return_type = "Promise<{width: number, height: number, rgba: Uint8Array}>")]
    pub fn show_batch(&self, backend: &Backend, n: usize, size: usize, seed: u64, do_flip: bool) -> Promise {
        let (dls, device) = (self.inner.clone(), backend.device.clone());
        future_to_promise(async move {
            let aug = AugConfig::new(size).with_do_flip(do_flip);
            let (images, labels) = data::augmented_samples(&dls, &aug, n, seed, &device).await.map_err(js_err)?;
            let labels: Vec<String> = labels.iter().map(|&l| dls.classes[l].clone()).collect();
            let grid = data::show_batch(&images, &labels, (images.len() as f64).sqrt().ceil() as usize);
            let rgba = image::DynamicImage::ImageRgb8(grid).into_rgba8();
            let out = js_sys::Object::new();
            js_sys::Reflect::set(&out, &"width".into(), &rgba.width().into())?;
            js_sys::Reflect::set(&out, &"height".into(), &rgba.height().into())?;
            js_sys::Reflect::set(&out, &"rgba".into(), &Uint8Array::from(rgba.as_raw().as_slice()))?;
            Ok(out.into())
        })
    }
}

/// Stops a running fit between batches; a separate object so it can be used while the
/// learner is busy.
#[wasm_bindgen]
#[derive(Default)]
pub struct CancelToken {
    inner: CoreCancel,
}

#[wasm_bindgen]
impl CancelToken {
    #[wasm_bindgen(constructor)]
    pub fn new() -> CancelToken {
        CancelToken::default()
    }
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct LearnerOptions {
    /// "efficientnet_lite0", "resnet18", "resnet34" or "tiny".
    arch: String,
    size: usize,
    batch_size: usize,
    /// Images per forward/backward pass; None sizes it to the device's memory.
    micro_batch: Option<usize>,
    seed: u64,
    do_flip: bool,
    /// For the "tiny" arch: channel widths of its four stages.
    widths: Option<[usize; 4]>,
    hidden: usize,
    /// Mixed precision (fastai's `to_fp16`); refused where the device has no half precision.
    fp16: bool,
}

impl Default for LearnerOptions {
    fn default() -> Self {
        Self { arch: "efficientnet_lite0".into(), size: 224, batch_size: 64, micro_batch: None, seed: 42, do_flip: true, widths: None, hidden: 512, fp16: false }
    }
}

/// A classifier being trained or used for prediction.
#[wasm_bindgen]
pub struct Learner {
    inner: Rc<RefCell<learner::Learner>>,
}

impl Learner {
    fn export_as(&self, format: crate::export::Format) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let l = inner.try_borrow().map_err(|_| busy())?;
            let bytes = crate::export::write(&l, format).await.map_err(js_err)?;
            Ok(Uint8Array::from(bytes.as_slice()).into())
        })
    }
}

fn busy() -> JsValue {
    js_err("the learner is busy (training or exporting); wait for it, or cancel the fit first")
}

#[wasm_bindgen]
impl Learner {
    /// A new model for `dataset`'s classes; with `weights` (a Kiln backbone from
    /// `importWeights`, or a checkpoint) its body starts pretrained and frozen, as in fastai.
    #[wasm_bindgen(constructor)]
    pub fn new(
        backend: &Backend,
        dataset: &Dataset,
        #[wasm_bindgen(unchecked_param_type = "LearnerOptions | undefined")] options: JsValue,
        weights: Option<Vec<u8>>,
    ) -> Result<Learner, JsValue> {
        let o: LearnerOptions =
            from_js(options, "learner option", &["arch", "size", "batchSize", "microBatch", "seed", "doFlip", "widths", "hidden", "fp16"])?;
        let mut arch: Arch = o.arch.parse().map_err(js_err)?;
        if let (Arch::Custom(_), Some(w)) = (&arch, o.widths) {
            arch = Arch::Custom(ResNetConfig::tiny().with_widths(w));
        }
        if !(8..=1024).contains(&o.size) {
            return Err(js_err(format!("size {} must be between 8 and 1024", o.size)));
        }
        let model = ClassifierConfig::new(arch, dataset.inner.classes.len()).with_hidden(o.hidden);
        let config = LearnerConfig::new(model, o.size)
            .with_batch_size(o.batch_size)
            .with_micro_batch(o.micro_batch)
            .with_seed(o.seed)
            .with_fp16(o.fp16)
            .with_aug(AugConfig::new(o.size).with_do_flip(o.do_flip));
        let mut l = learner::Learner::new(config, dataset.inner.classes.clone(), dataset.inner.config.presize, &backend.device).map_err(js_err)?;
        if let Some(bytes) = weights {
            let arch = l.config.model.arch.clone();
            let (arch, body) = crate::pretrained::load_any(&bytes, Some(&arch), &l.device).map_err(js_err)?;
            l.load_pretrained(body, &arch).map_err(js_err)?;
        }
        Ok(Learner { inner: Rc::new(RefCell::new(l)) })
    }

    /// Rebuild a learner from a `.kiln` model file (the same file the CLI writes).
    pub fn load(backend: &Backend, bytes: &[u8]) -> Result<Learner, JsValue> {
        let l = crate::export::from_bytes(bytes, &backend.device).map_err(js_err)?;
        Ok(Learner { inner: Rc::new(RefCell::new(l)) })
    }

    #[wasm_bindgen(getter)]
    pub fn classes(&self) -> Vec<String> {
        self.inner.borrow().classes.clone()
    }

    /// Whether training emits `{type: 'snapshot', bytes}` (the model as `.kiln` bytes) after
    /// every epoch, so the page can restore it if the worker dies.
    #[wasm_bindgen(setter, js_name = snapshotEachEpoch)]
    pub fn set_snapshot_each_epoch(&self, on: bool) {
        self.inner.borrow_mut().snapshot_each_epoch = on;
    }

    /// Images per forward/backward pass (gradients are accumulated up to the batch size).
    #[wasm_bindgen(getter, js_name = microBatch)]
    pub fn micro_batch(&self) -> usize {
        self.inner.borrow().loader.micro_batch
    }

    /// fit_one_cycle(epochs, lr); `onEvent` gets every batch and epoch event.
    #[wasm_bindgen(js_name = fitOneCycle, unchecked_return_type = "Promise<FitReport>")]
    pub fn fit_one_cycle(&self, dataset: &Dataset, epochs: usize, lr: f64, on_event: Function, cancel: &CancelToken) -> Promise {
        let (inner, dls, cancel) = (self.inner.clone(), dataset.inner.clone(), cancel.inner.clone());
        future_to_promise(async move {
            let mut l = inner.try_borrow_mut().map_err(|_| busy())?;
            let mut emit = emitter(on_event);
            let report = l.fit_one_cycle(&dls, epochs, Lr::Single(lr), &OneCycle::default(), &cancel, &mut emit).await.map_err(js_err)?;
            to_js(&report)
        })
    }

    /// Predict one image from its file bytes: `{label, index, probs}`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Prediction>")]
    pub fn predict(&self, bytes: Vec<u8>) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let l = inner.try_borrow().map_err(|_| busy())?;
            to_js(&l.predict(&bytes).await.map_err(js_err)?)
        })
    }

    /// The model as `.kiln` bytes.
    #[wasm_bindgen(js_name = export, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export_model(&self) -> Promise {
        self.export_as(crate::export::Format::Kiln)
    }

    /// The model as an ONNX file (opset 17): input `image`, RGB float32 in [0, 1], NCHW at the
    /// trained size; output `probabilities`. Classes and sizes are in its metadata.
    #[wasm_bindgen(js_name = exportOnnx, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export_onnx(&self) -> Promise {
        self.export_as(crate::export::Format::Onnx)
    }

    /// The model's state dict in fastai's `vision_learner` layout, as `.safetensors` bytes.
    #[wasm_bindgen(js_name = exportPyTorch, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export_pytorch(&self) -> Promise {
        self.export_as(crate::export::Format::PyTorch)
    }

    /// Predictions over the validation set: `{probs, targets, losses}`.
    #[wasm_bindgen(js_name = getPreds, unchecked_return_type = "Promise<Preds>")]
    pub fn get_preds(&self, dataset: &Dataset) -> Promise {
        let (inner, dls) = (self.inner.clone(), dataset.inner.clone());
        future_to_promise(async move {
            let mut l = inner.try_borrow_mut().map_err(|_| busy())?;
            to_js(&l.get_preds(&dls).await.map_err(js_err)?)
        })
    }
}

/// Convert pretrained weights — a PyTorch checkpoint (.pth/.pt, zip or legacy), a
/// .safetensors file or a Kiln backbone — to a Kiln backbone; the architecture is recognised
/// from the keys unless `arch` names it. Runs on the CPU, so it needs no backend.
#[wasm_bindgen(js_name = importWeights, unchecked_return_type = "Promise<{arch: string, imagenetClasses: number | null, bytes: Uint8Array}>")]
pub fn import_weights(bytes: Vec<u8>, source: String, arch: Option<String>) -> Promise {
    future_to_promise(async move {
        let arch: Option<Arch> = arch.map(|a| a.parse()).transpose().map_err(js_err)?;
        let (header, bytes) = crate::pretrained::import(&bytes, &source, arch.as_ref()).await.map_err(|e| js_err(format!("{source}: {e}")))?;
        let o = js_sys::Object::new();
        js_sys::Reflect::set(&o, &"arch".into(), &header.arch.name().into())?;
        js_sys::Reflect::set(&o, &"imagenetClasses".into(), &header.imagenet_classes.map(|n| n as f64).into())?;
        js_sys::Reflect::set(&o, &"bytes".into(), &Uint8Array::from(bytes.as_slice()))?;
        Ok(o.into())
    })
}

/// The bundled sample set (scikit-learn's handwritten digits, BSD-3) as PNG files named
/// `digits/<label>/digit_<i>.png`, to go through the same path as files a user drops.
#[wasm_bindgen(js_name = sampleDigits, unchecked_return_type = "Array<{name: string, bytes: Uint8Array}>")]
pub fn sample_digits() -> Result<js_sys::Array, JsValue> {
    let out = js_sys::Array::new();
    for item in crate::samples::digits_items(32) {
        let o = js_sys::Object::new();
        js_sys::Reflect::set(&o, &"name".into(), &format!("digits/{}", item.name).into())?;
        js_sys::Reflect::set(&o, &"bytes".into(), &Uint8Array::from(&item.bytes[..]))?;
        out.push(&o);
    }
    Ok(out)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct FineTuneOptions {
    base_lr: Option<f64>,
    freeze_epochs: Option<usize>,
    lr_mult: Option<f64>,
    pct_start: Option<f64>,
    div: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct LrFindOptions {
    start_lr: Option<f64>,
    end_lr: Option<f64>,
    num_it: Option<usize>,
    stop_div: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InterpretResult {
    classes: Vec<String>,
    confusion: Vec<Vec<usize>>,
    most_confused: Vec<crate::interpret::Confusion>,
    top_losses: Vec<crate::interpret::TopLoss>,
    n_valid: usize,
}

#[wasm_bindgen]
impl Learner {
    /// fastai's fine_tune(epochs, {baseLr, freezeEpochs, lrMult, pctStart, div}).
    #[wasm_bindgen(js_name = fineTune, unchecked_return_type = "Promise<FitReport>")]
    pub fn fine_tune(
        &self,
        dataset: &Dataset,
        epochs: usize,
        #[wasm_bindgen(unchecked_param_type = "FineTuneOptions | undefined")] options: JsValue,
        on_event: Function,
        cancel: &CancelToken,
    ) -> Result<Promise, JsValue> {
        let o: FineTuneOptions = from_js(options, "fine_tune option", &["baseLr", "freezeEpochs", "lrMult", "pctStart", "div"])?;
        let d = learner::FineTune::default();
        let opts = learner::FineTune {
            base_lr: o.base_lr.unwrap_or(d.base_lr),
            freeze_epochs: o.freeze_epochs.unwrap_or(d.freeze_epochs),
            lr_mult: o.lr_mult.unwrap_or(d.lr_mult),
            pct_start: o.pct_start.unwrap_or(d.pct_start),
            div: o.div.unwrap_or(d.div),
        };
        Lr::Single(opts.base_lr).validate().map_err(js_err)?;
        let (inner, dls, cancel) = (self.inner.clone(), dataset.inner.clone(), cancel.inner.clone());
        Ok(future_to_promise(async move {
            let mut l = inner.try_borrow_mut().map_err(|_| busy())?;
            let mut emit = emitter(on_event);
            to_js(&l.fine_tune(&dls, epochs, &opts, &cancel, &mut emit).await.map_err(js_err)?)
        }))
    }

    /// fastai's lr_find: `{lrs, losses, suggestions: {minimum, steep, valley, slide}}`; the
    /// model and optimiser are left as they were.
    #[wasm_bindgen(js_name = lrFind, unchecked_return_type = "Promise<LrFindResult>")]
    pub fn lr_find(
        &self,
        dataset: &Dataset,
        #[wasm_bindgen(unchecked_param_type = "LrFindOptions | undefined")] options: JsValue,
        on_event: Function,
        cancel: &CancelToken,
    ) -> Result<Promise, JsValue> {
        let o: LrFindOptions = from_js(options, "lr_find option", &["startLr", "endLr", "numIt", "stopDiv"])?;
        let d = crate::lr_find::LrFindConfig::default();
        let config = crate::lr_find::LrFindConfig {
            start_lr: o.start_lr.unwrap_or(d.start_lr),
            end_lr: o.end_lr.unwrap_or(d.end_lr),
            num_it: o.num_it.unwrap_or(d.num_it),
            stop_div: o.stop_div.unwrap_or(d.stop_div),
        };
        let (inner, dls, cancel) = (self.inner.clone(), dataset.inner.clone(), cancel.inner.clone());
        Ok(future_to_promise(async move {
            let mut l = inner.try_borrow_mut().map_err(|_| busy())?;
            let mut emit = emitter(on_event);
            to_js(&l.lr_find(&dls, &config, &cancel, &mut emit).await.map_err(js_err)?)
        }))
    }

    /// Confusion matrix, most confused pairs (≥ minVal) and the `k` top losses on the
    /// validation set, with the top-loss images as one titled RGBA grid.
    #[wasm_bindgen(unchecked_return_type = "Promise<InterpretResult>")]
    pub fn interpret(&self, dataset: &Dataset, k: usize, min_val: usize) -> Promise {
        let (inner, dls) = (self.inner.clone(), dataset.inner.clone());
        future_to_promise(async move {
            let mut l = inner.try_borrow_mut().map_err(|_| busy())?;
            let interp = l.interpret(&dls, &mut |_| {}).await.map_err(js_err)?;
            let result = InterpretResult {
                classes: interp.classes.clone(),
                confusion: interp.confusion_matrix(),
                most_confused: interp.most_confused(min_val),
                top_losses: interp.top_losses(k),
                n_valid: interp.preds.targets.len(),
            };
            let out = to_js(&result)?;
            let grid = image::DynamicImage::ImageRgb8(interp.plot_top_losses(&dls, k)).into_rgba8();
            let img = js_sys::Object::new();
            js_sys::Reflect::set(&img, &"width".into(), &grid.width().into())?;
            js_sys::Reflect::set(&img, &"height".into(), &grid.height().into())?;
            js_sys::Reflect::set(&img, &"rgba".into(), &Uint8Array::from(grid.as_raw().as_slice()))?;
            js_sys::Reflect::set(&out, &"topLossesImage".into(), &img)?;
            Ok(out)
        })
    }
}

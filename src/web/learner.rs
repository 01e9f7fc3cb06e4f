//! A classifier being trained or used for prediction, and the token that cancels its fit.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use js_sys::{Function, Promise, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::{Backend, Dataset, emitter, from_js, js_err, rgba_to_js, to_js};
use crate::export::{self, Format};
use crate::interpret::{ClassScore, Confusion, TopLoss};
use crate::learner::{self, CancelToken as CoreCancel, FineTune, FitOneCycle, LearnerOptions, LrFindConfig};

/// One file of `predictBatch`: its prediction, or why it could not be read.
#[derive(Serialize)]
struct FilePrediction {
    name: String,
    #[serde(flatten)]
    prediction: Option<learner::predict::Prediction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Side of each top-loss image sent to the page (a grid cell with a caption under it).
const TOP_LOSS_SIDE: u32 = 128;

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

/// A classifier being trained or used for prediction.
#[wasm_bindgen]
pub struct Learner {
    inner: Rc<RefCell<learner::Learner>>,
}

/// The model as `.kiln` bytes: what a snapshot is saved as.
fn save_kiln(l: &learner::Learner) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + '_>> {
    Box::pin(async move { export::to_bytes(l).await.map_err(|e| e.to_string()) })
}

fn busy() -> JsValue {
    js_err("the learner is busy (training or exporting); wait for it, or cancel the fit first")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InterpretResult {
    classes: Vec<String>,
    confusion: Vec<Vec<usize>>,
    most_confused: Vec<Confusion>,
    top_losses: Vec<TopLoss>,
    n_valid: usize,
    /// Each class's hits and misses (what to show for one sigmoid per class).
    per_class: Vec<ClassScore>,
    /// One sigmoid per class's threshold; null for softmax.
    thresh: Option<f32>,
    /// Photos have sets of labels (the confusion matrix then counts label/prediction pairs).
    multi_label: bool,
}

impl Learner {
    fn export_as(&self, format: Format) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let l = inner.try_borrow().map_err(|_| busy())?;
            let bytes = export::write(&l, format).await.map_err(js_err)?;
            Ok(Uint8Array::from(bytes.as_slice()).into())
        })
    }
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
        let o: LearnerOptions = from_js(options, "learner option", LearnerOptions::KEYS)?;
        let config = o.config(dataset.inner.classes.len()).map_err(js_err)?;
        let mut l = learner::Learner::new(config, dataset.inner.classes.clone(), dataset.inner.config.presize, &backend.device).map_err(js_err)?;
        if let Some(bytes) = weights {
            let arch = l.config.model.arch.clone();
            let (arch, body) = crate::export::load_weights(&bytes, Some(&arch), &l.device).map_err(js_err)?;
            l.load_pretrained(body, &arch).map_err(js_err)?;
        }
        Ok(Learner { inner: Rc::new(RefCell::new(l)) })
    }

    /// Rebuild a learner from a `.kiln` model file (the same file the CLI writes).
    pub fn load(backend: &Backend, bytes: &[u8]) -> Result<Learner, JsValue> {
        let l = export::from_bytes(bytes, &backend.device).map_err(js_err)?;
        Ok(Learner { inner: Rc::new(RefCell::new(l)) })
    }

    #[wasm_bindgen(getter)]
    pub fn classes(&self) -> Vec<String> {
        self.inner.borrow().classes.clone()
    }

    /// How the model was set up, as the options that would build it again, plus its
    /// `presize` (what an imported model's settings show).
    #[wasm_bindgen(getter, unchecked_return_type = "LearnerOptions & {presize: number}")]
    pub fn options(&self) -> Result<JsValue, JsValue> {
        let l = self.inner.borrow();
        let out = to_js(&LearnerOptions::of(&l.config))?;
        js_sys::Reflect::set(&out, &"presize".into(), &l.presize.into())?;
        Ok(out)
    }

    /// Whether training emits `{type: 'snapshot', bytes}` (the model as `.kiln` bytes) after
    /// every epoch, so the page can restore it if the worker dies.
    #[wasm_bindgen(setter, js_name = snapshotEachEpoch)]
    pub fn set_snapshot_each_epoch(&self, on: bool) {
        self.inner.borrow_mut().snapshot_each_epoch = on.then_some(save_kiln as learner::SaveModel);
    }

    /// Images per forward/backward pass (gradients are accumulated up to the batch size).
    #[wasm_bindgen(getter, js_name = microBatch)]
    pub fn micro_batch(&self) -> usize {
        self.inner.borrow().loader.micro_batch
    }

    /// fastai's fit_one_cycle(epochs, {lrMax, pctStart, div}) on the model as it is (frozen or
    /// not): `lrMax` is one rate, `[hi]` or `[lo, hi]` (fastai's slices); `onEvent` gets every
    /// batch and epoch event, numbered on from the model's history.
    #[wasm_bindgen(js_name = fitOneCycle, unchecked_return_type = "Promise<FitReport>")]
    pub fn fit_one_cycle(
        &self,
        dataset: &Dataset,
        epochs: usize,
        #[wasm_bindgen(unchecked_param_type = "FitOneCycleOptions | undefined")] options: JsValue,
        on_event: Function,
        cancel: &CancelToken,
    ) -> Result<Promise, JsValue> {
        let opts: FitOneCycle = from_js(options, "fit_one_cycle option", FitOneCycle::KEYS)?;
        opts.validate().map_err(js_err)?;
        let (inner, dls, cancel) = (self.inner.clone(), dataset.inner.clone(), cancel.inner.clone());
        Ok(future_to_promise(async move {
            let mut l = inner.try_borrow_mut().map_err(|_| busy())?;
            let mut emit = emitter(on_event);
            to_js(&l.fit_one_cycle(&dls, epochs, opts.lr_max, &opts.schedule(), &cancel, &mut emit).await.map_err(js_err)?)
        }))
    }

    /// fastai's freeze(): only the head trains (BatchNorm layers too).
    pub fn freeze(&self) -> Result<(), JsValue> {
        self.inner.try_borrow_mut().map_err(|_| busy())?.freeze();
        Ok(())
    }

    /// fastai's unfreeze(): every layer trains.
    pub fn unfreeze(&self) -> Result<(), JsValue> {
        self.inner.try_borrow_mut().map_err(|_| busy())?.unfreeze();
        Ok(())
    }

    /// Whether the body is frozen (only the head trains).
    #[wasm_bindgen(getter)]
    pub fn frozen(&self) -> Result<bool, JsValue> {
        Ok(self.inner.try_borrow().map_err(|_| busy())?.frozen_below > 0)
    }

    /// Every epoch the model has trained, across fits and saves (the epoch table so far).
    #[wasm_bindgen(getter, unchecked_return_type = "EpochEvent[]")]
    pub fn history(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.try_borrow().map_err(|_| busy())?.history)
    }

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
        let opts: FineTune = from_js(options, "fine_tune option", FineTune::KEYS)?;
        opts.validate().map_err(js_err)?;
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
        let config: LrFindConfig = from_js(options, "lr_find option", LrFindConfig::KEYS)?;
        let (inner, dls, cancel) = (self.inner.clone(), dataset.inner.clone(), cancel.inner.clone());
        Ok(future_to_promise(async move {
            let mut l = inner.try_borrow_mut().map_err(|_| busy())?;
            let mut emit = emitter(on_event);
            to_js(&l.lr_find(&dls, &config, &cancel, &mut emit).await.map_err(js_err)?)
        }))
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

    /// Many photos as one batch on the device: per file, in order, `{name, label, index, probs}`
    /// or `{name, error}` when it could not be read.
    #[wasm_bindgen(js_name = predictBatch, unchecked_return_type = "Promise<BatchPrediction[]>")]
    pub fn predict_batch(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Array<{name: string, bytes: Uint8Array}>")] files: js_sys::Array,
    ) -> Result<Promise, JsValue> {
        let items = super::dataset::items_from_js(&files)?;
        let inner = self.inner.clone();
        Ok(future_to_promise(async move {
            let l = inner.try_borrow().map_err(|_| busy())?;
            let bytes: Vec<&[u8]> = items.iter().map(|i| &i.bytes[..]).collect();
            let results = l.predict_batch(&bytes).await.map_err(js_err)?;
            let rows: Vec<FilePrediction> = items
                .iter()
                .zip(results)
                .map(|(item, r)| match r {
                    Ok(p) => FilePrediction { name: item.name.clone(), prediction: Some(p), error: None },
                    Err(e) => FilePrediction { name: item.name.clone(), prediction: None, error: Some(e) },
                })
                .collect();
            to_js(&rows)
        }))
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

    /// fastai's ImageClassifierCleaner: every image of `split` ("train" or "valid") with the
    /// model's loss on it, highest first.
    #[wasm_bindgen(unchecked_return_type = "Promise<Cleaner>")]
    pub fn cleaner(&self, dataset: &Dataset, split: String) -> Result<Promise, JsValue> {
        let split: crate::cleaner::Split = split.parse().map_err(js_err)?;
        let (inner, dls) = (self.inner.clone(), dataset.inner.clone());
        Ok(future_to_promise(async move {
            let mut l = inner.try_borrow_mut().map_err(|_| busy())?;
            to_js(&l.cleaner(&dls, split, &mut |_| {}).await.map_err(js_err)?)
        }))
    }

    /// Confusion matrix, most confused pairs (≥ minVal) and the `k` top losses on the
    /// validation set, with each top loss's image (`topLossImages`, in the same order).
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
                per_class: interp.per_class(),
                thresh: interp.preds.thresh,
                multi_label: interp.preds.multi_label(),
            };
            let out = to_js(&result)?;
            let images = js_sys::Array::new();
            for img in interp.top_loss_images(&dls, k, TOP_LOSS_SIDE) {
                images.push(&rgba_to_js(img)?);
            }
            js_sys::Reflect::set(&out, &"topLossImages".into(), &images)?;
            Ok(out)
        })
    }

    /// The model as `.kiln` bytes.
    #[wasm_bindgen(js_name = export, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export_model(&self) -> Promise {
        self.export_as(Format::Kiln)
    }

    /// The model as an ONNX file (opset 18): input `image`, RGB float32 in [0, 1], NCHW, the
    /// photo's centre square at any size (the graph resizes it as Kiln does); output
    /// `probabilities`. Classes and sizes are in its metadata.
    #[wasm_bindgen(js_name = exportOnnx, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export_onnx(&self) -> Promise {
        self.export_as(Format::Onnx)
    }

    /// The model's state dict in fastai's `vision_learner` layout, as `.safetensors` bytes.
    #[wasm_bindgen(js_name = exportPyTorch, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export_pytorch(&self) -> Promise {
        self.export_as(Format::PyTorch)
    }
}

/// Settings for a small training set of `n_train` photos (batch size, fine_tune's epochs, and
/// why), or null where fastai's defaults already take enough optimiser steps.
#[wasm_bindgen(js_name = proposeSettings, unchecked_return_type = "SmallDataProposal | null")]
pub fn propose_settings(n_train: usize) -> Result<JsValue, JsValue> {
    match learner::small_data::propose(n_train) {
        Some(p) => to_js(&p),
        None => Ok(JsValue::NULL),
    }
}

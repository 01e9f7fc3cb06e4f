//! The dataset a page builds from dropped files, the sample sets, and weights import.

use std::rc::Rc;

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::{Backend, from_js, js_err, rgba_to_js, to_js};
use crate::augment::AugConfig;
use crate::data::{self, DataOptions, Datasets, Item};
use crate::model::Arch;

/// A labelled, split dataset built from `{name, bytes}` entries (names are relative paths
/// such as `cats/1.jpg`, or pets-style file names).
#[wasm_bindgen]
pub struct Dataset {
    pub(super) inner: Rc<Datasets>,
}

/// `{name, bytes}` objects from JS as the core's items.
pub(super) fn items_from_js(files: &js_sys::Array) -> Result<Vec<Item>, JsValue> {
    let mut items = Vec::with_capacity(files.length() as usize);
    for (i, f) in files.iter().enumerate() {
        let name = js_sys::Reflect::get(&f, &"name".into())?
            .as_string()
            .ok_or_else(|| js_err(format!("file #{i} has no string name")))?;
        let bytes = js_sys::Reflect::get(&f, &"bytes".into())?;
        let bytes: Uint8Array = bytes.dyn_into().map_err(|_| js_err(format!("{name}: its bytes must be a Uint8Array")))?;
        items.push(Item::new(name, bytes.to_vec()));
    }
    Ok(items)
}

#[wasm_bindgen]
impl Dataset {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "Array<{name: string, bytes: Uint8Array}>")] files: js_sys::Array,
        #[wasm_bindgen(unchecked_param_type = "DatasetOptions | undefined")] options: JsValue,
    ) -> Result<Dataset, JsValue> {
        let opts: DataOptions = from_js(options, "dataset option", DataOptions::KEYS)?;
        let items = items_from_js(&files)?;
        let config = opts.config().map_err(js_err)?;
        let inner = Datasets::from_items(items, config).map_err(js_err)?;
        Ok(Dataset { inner: Rc::new(inner) })
    }

    /// Apply the cleaner's relabels and deletions (`{file, oldLabel, newLabel}`, `newLabel`
    /// null to delete): all or none, a JS Error naming the file otherwise. Untouched files
    /// keep their split. Returns the new summary.
    #[wasm_bindgen(js_name = applyChanges, unchecked_return_type = "Summary")]
    pub fn apply_changes(&mut self, #[wasm_bindgen(unchecked_param_type = "Array<Change>")] changes: JsValue) -> Result<JsValue, JsValue> {
        let changes: Vec<data::Change> = serde_wasm_bindgen::from_value(changes).map_err(|e| js_err(format!("the changes should be {{file, oldLabel, newLabel}} objects: {e}")))?;
        Rc::make_mut(&mut self.inner).apply_changes(&changes).map_err(js_err)?;
        to_js(&self.inner.summary())
    }

    /// Add files to this dataset (a drop onto it): labelled and checked as at load time, split
    /// among themselves; files already there keep their split. Returns `{added: {train, valid,
    /// newClasses, skipped}, summary}`.
    #[wasm_bindgen(js_name = addFiles, unchecked_return_type = "{added: Added, summary: Summary}")]
    pub fn add_files(&mut self, #[wasm_bindgen(unchecked_param_type = "Array<{name: string, bytes: Uint8Array}>")] files: js_sys::Array) -> Result<JsValue, JsValue> {
        let items = items_from_js(&files)?;
        let added = Rc::make_mut(&mut self.inner).add_items(items);
        to_js(&serde_json::json!({ "added": added, "summary": self.inner.summary() }))
    }

    /// Rename a class (to a name not in use). Returns the new summary.
    #[wasm_bindgen(js_name = renameClass, unchecked_return_type = "Summary")]
    pub fn rename_class(&mut self, from: String, to: String) -> Result<JsValue, JsValue> {
        Rc::make_mut(&mut self.inner).rename_class(&from, &to).map_err(js_err)?;
        to_js(&self.inner.summary())
    }

    /// Take a class and its files out of the dataset. Returns the new summary.
    #[wasm_bindgen(js_name = removeClass, unchecked_return_type = "Summary")]
    pub fn remove_class(&mut self, name: String) -> Result<JsValue, JsValue> {
        Rc::make_mut(&mut self.inner).remove_class(&name).map_err(js_err)?;
        to_js(&self.inner.summary())
    }

    /// Every file in the dataset: `{file, label, split}` ("train" or "valid"), training files
    /// first; a multi-label photo's labels separated by spaces ("" for none).
    #[wasm_bindgen(unchecked_return_type = "Array<{file: string, label: string, split: 'train' | 'valid'}>")]
    pub fn files(&self) -> Result<JsValue, JsValue> {
        let d = &self.inner;
        let row = |s: &data::Sample, split: &str| serde_json::json!({ "file": s.item.name, "label": d.label_text(s), "split": split });
        to_js(&d.train.iter().map(|s| row(s, "train")).chain(d.valid.iter().map(|s| row(s, "valid"))).collect::<Vec<_>>())
    }

    /// Every change applied so far, in order.
    #[wasm_bindgen(unchecked_return_type = "Array<Change>")]
    pub fn changes(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.changes)
    }

    /// The changes as the CSV `kiln … --changes FILE` reads.
    #[wasm_bindgen(js_name = changesCsv)]
    pub fn changes_csv(&self) -> String {
        data::changes_to_csv(&self.inner.changes)
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
    #[wasm_bindgen(js_name = showBatch, unchecked_return_type = "Promise<{width: number, height: number, rgba: Uint8Array, labels: string[]}>")]
    pub fn show_batch(&self, backend: &Backend, n: usize, size: usize, seed: u64, do_flip: bool) -> Promise {
        let (dls, device) = (self.inner.clone(), backend.device.clone());
        future_to_promise(async move {
            let aug = AugConfig::new(size).with_do_flip(do_flip);
            let (images, labels) = data::augmented_samples(&dls, &aug, n, seed, &device).await.map_err(js_err)?;
            let grid = data::show_batch(&images, &labels, (images.len() as f64).sqrt().ceil() as usize);
            // The titles as text too, in the grid's order (the picture's only words are pixels).
            let out = rgba_to_js(grid)?;
            js_sys::Reflect::set(&out, &"labels".into(), &to_js(&labels)?)?;
            Ok(out)
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
        let (header, bytes) = crate::export::import_weights(&bytes, &source, arch.as_ref()).await.map_err(|e| js_err(format!("{source}: {e}")))?;
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

/// A project's `kiln-project.json`, checked as the CLI checks it (a Kiln project, a format
/// this Kiln reads, options in range, each photo named once): the manifest, or an error
/// saying what is wrong.
#[wasm_bindgen(js_name = checkProjectManifest, unchecked_return_type = "ProjectManifest")]
pub fn check_project_manifest(bytes: &[u8]) -> Result<JsValue, JsValue> {
    to_js(&crate::project::Manifest::from_json(bytes).map_err(js_err)?)
}

//! Using the model: fastai's `get_preds` over a dataset, and `predict` on one photo.

use burn::module::Module;
use burn::tensor::Tensor;

use super::{Event, LearnError, Learner, read_f32};
use crate::augment;
use crate::data::{Crop, Datasets, Sample, decode_rgb8, presize};
use crate::device::{is_cpu, on_cpu_pool};

/// Predictions over a dataset (fastai's `get_preds`): probabilities, targets, per-item losses.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preds {
    pub probs: Vec<Vec<f32>>,
    /// Each photo's classes: one a photo (serialised as a number each), or multi-label sets
    /// (serialised as arrays) when any photo has other than one.
    #[serde(serialize_with = "targets_as_given")]
    pub targets: Vec<Vec<usize>>,
    pub losses: Vec<f32>,
    /// A one-sigmoid-per-class model's threshold (None: softmax).
    pub thresh: Option<f32>,
}

fn targets_as_given<S: serde::Serializer>(targets: &[Vec<usize>], s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    if targets.iter().all(|t| t.len() == 1) { targets.iter().map(|t| t[0]).collect::<Vec<_>>().serialize(s) } else { targets.serialize(s) }
}

impl Preds {
    pub fn predicted(&self) -> Vec<usize> {
        self.probs.iter().map(|p| argmax(p)).collect()
    }
    /// Each photo's predicted set: every class above the threshold (one sigmoid per class),
    /// or the likeliest.
    pub fn predicted_sets(&self) -> Vec<Vec<usize>> {
        match self.thresh {
            Some(thresh) => self.probs.iter().map(|p| p.iter().enumerate().filter(|&(_, &v)| v > thresh).map(|(c, _)| c).collect()).collect(),
            None => self.predicted().into_iter().map(|c| vec![c]).collect(),
        }
    }
    /// Whether any photo has other than one label (a multi-label dataset).
    pub fn multi_label(&self) -> bool {
        self.targets.iter().any(|t| t.len() != 1)
    }
    /// fastai's `accuracy`, or `accuracy_multi(thresh)` for a one-sigmoid-per-class model: the
    /// share of (photo, class) pairs where "above the threshold" matches the labels.
    pub fn accuracy(&self) -> f32 {
        if let Some(thresh) = self.thresh {
            let pairs = self.probs.iter().map(Vec::len).sum::<usize>().max(1);
            let right: usize = self.probs.iter().zip(&self.targets).map(|(p, t)| p.iter().enumerate().filter(|&(c, &v)| (v > thresh) == t.contains(&c)).count()).sum();
            return right as f32 / pairs as f32;
        }
        let correct = self.predicted().iter().zip(&self.targets).filter(|(p, t)| t.contains(p)).count();
        correct as f32 / self.targets.len().max(1) as f32
    }
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Prediction {
    /// The likeliest class (for a one-sigmoid-per-class model, even when below the threshold).
    pub label: String,
    pub index: usize,
    /// One probability per class, in `classes` order.
    pub probs: Vec<f32>,
    /// The classes predicted: the likeliest, or with one sigmoid per class every class above
    /// the threshold, which may be none ("none of these").
    pub labels: Vec<String>,
}

/// What a prediction with no class above the threshold is called.
pub const NONE_OF_THESE: &str = "none of these";

impl Prediction {
    /// The predicted classes as words: one class, several joined by ", ", or "none of these".
    pub fn shown(&self) -> String {
        if self.labels.is_empty() { NONE_OF_THESE.into() } else { self.labels.join(", ") }
    }
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0)
}

impl Learner {
    /// fastai's `get_preds()`: predictions over the validation set.
    pub async fn get_preds(&mut self, dls: &Datasets) -> Result<Preds, LearnError> {
        self.get_preds_on(dls, &dls.valid, &mut |_| {}).await
    }

    /// fastai's `get_preds` over the given samples (validation transforms, eval mode).
    pub async fn get_preds_on(&mut self, dls: &Datasets, samples: &[Sample], on_event: &mut dyn FnMut(&Event)) -> Result<Preds, LearnError> {
        let model = self.model.valid();
        let inner = self.device.clone().inner();
        let mut out = Preds { probs: Vec::new(), targets: Vec::new(), losses: Vec::new(), thresh: self.config.loss_func.thresh() };
        let bs = self.config.batch_size;
        // On a GPU every batch has the same size: a short last one is padded with copies of its
        // first image (each image's output is its own in eval mode), so its shapes reuse the
        // kernels compiled, and under autotune tuned, for the others instead of new ones.
        let fixed = !is_cpu(&inner);
        for chunk in samples.chunks(bs) {
            let refs: Vec<&Sample> = chunk.iter().collect();
            let Some((images, targets)) = self.load_batch(dls, &refs, false, on_event) else { continue };
            let n = targets.len();
            let (images, padded) = match bs.checked_sub(n).filter(|&extra| fixed && extra > 0) {
                Some(extra) => {
                    let copies = images.clone().narrow(0, 0, 1).repeat_dim(0, extra);
                    let mut padded = targets.clone();
                    padded.extend(std::iter::repeat_n(targets[0].clone(), extra));
                    (Tensor::cat(vec![images, copies], 0), padded)
                }
                None => (images, targets.clone()),
            };
            let (probs, losses) = on_cpu_pool(&inner, || {
                let logits = model.forward(augment::valid_batch(images.inner(), self.config.aug.size));
                self.config.loss_func.probs_and_losses(logits, &padded)
            });
            let k = self.classes.len();
            let probs = read_f32(probs).await?;
            out.losses.extend(read_f32(losses).await?.into_iter().take(n));
            out.probs.extend(probs.chunks(k).take(n).map(|c| c.to_vec()));
            out.targets.extend(targets);
        }
        Ok(out)
    }

    /// A photo as Kiln presizes it: the centre crop at the presize, RGB in [0, 1],
    /// [1, 3, presize, presize] (what training batches start from; an exported ONNX model,
    /// which resizes to the training size itself, gives Kiln's prediction for it).
    pub fn predict_input(&self, bytes: &[u8]) -> Result<Tensor<4>, LearnError> {
        let px = self.presized(bytes).map_err(LearnError::Image)?;
        Ok(augment::to_tensor(&[px], self.presize as usize, &self.device.clone().inner()))
    }

    /// A photo's centre crop at the presize, RGB8, or why it could not be decoded.
    fn presized(&self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let img = decode_rgb8(bytes, crate::data::DataConfig::default().max_pixels).map_err(|e| e.to_string())?;
        Ok(presize(&img, self.presize, Crop::Centre).into_raw())
    }

    /// Presized photos as the model's input batch: resized to the training size, in [0, 1].
    fn model_input(&self, pixels: &[Vec<u8>]) -> Tensor<4> {
        let x = augment::to_tensor(pixels, self.presize as usize, &self.device.clone().inner());
        augment::resize_batch(x, self.config.aug.size)
    }

    /// Predict one image from its file bytes: the label and a probability per class.
    pub async fn predict(&self, bytes: &[u8]) -> Result<Prediction, LearnError> {
        self.predict_batch(&[bytes]).await?.pop().expect("one result per file").map_err(LearnError::Image)
    }

    /// Predict many images from their file bytes as one batch on the device: per file, in
    /// order, its prediction or why it could not be read (the others are predicted still).
    pub async fn predict_batch(&self, files: &[&[u8]]) -> Result<Vec<Result<Prediction, String>>, LearnError> {
        let decode = |bytes: &&[u8]| self.presized(bytes);
        #[cfg(feature = "rayon")]
        let decoded: Vec<Result<Vec<u8>, String>> = {
            use rayon::prelude::*;
            files.par_iter().map(decode).collect()
        };
        #[cfg(not(feature = "rayon"))]
        let decoded: Vec<Result<Vec<u8>, String>> = files.iter().map(decode).collect();
        let mut out: Vec<Result<Prediction, String>> = Vec::with_capacity(files.len());
        let mut pixels = Vec::new();
        for d in decoded {
            match d {
                Ok(px) => {
                    pixels.push(px);
                    // Filled in below, in the same order.
                    out.push(Ok(Prediction { label: String::new(), index: 0, probs: Vec::new(), labels: Vec::new() }));
                }
                Err(e) => out.push(Err(e)),
            }
        }
        if pixels.is_empty() {
            return Ok(out);
        }
        let inner = self.device.clone().inner();
        let model = self.model.valid();
        let x = self.model_input(&pixels);
        let loss_func = self.config.loss_func;
        let probs = on_cpu_pool(&inner, || loss_func.probs(model.forward(augment::normalize(x))));
        let probs = read_f32(probs).await?;
        let mut rows = probs.chunks(self.classes.len());
        for p in out.iter_mut().filter_map(|r| r.as_mut().ok()) {
            let row = rows.next().expect("one row of probabilities per decoded file");
            p.index = argmax(row);
            p.label = self.classes[p.index].clone();
            p.probs = row.to_vec();
            p.labels = match loss_func.thresh() {
                Some(thresh) => row.iter().enumerate().filter(|&(_, &v)| v > thresh).map(|(i, _)| self.classes[i].clone()).collect(),
                None => vec![p.label.clone()],
            };
        }
        Ok(out)
    }
}

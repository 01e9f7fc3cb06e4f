//! The Learner: fit_one_cycle, validation with fastai's metrics, predict and get_preds.
//!
//! The loop is async and reads tensors only with `*_async`, so the same code runs natively
//! (driven by `pollster`) and in the browser, where a blocking read panics on WebGPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData, activation};
use rand::SeedableRng;
use rand::rngs::StdRng;
use web_time::Instant;

use crate::augment::{self, AugConfig};
use crate::data::{Crop, DataLoader, Datasets, Sample, Skipped, decode_rgb8, presize};
use crate::device::{MemoryBudget, on_cpu_pool};
use crate::mixed_precision::{LossScaler, Precision};
use crate::loss;
use crate::model::{Arch, Classifier, ClassifierConfig, NUM_GROUPS, Pretrained};
use crate::optimizer::{Adam, AdamConfig};
use crate::schedule::{Lr, OneCycle};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LearnerConfig {
    pub model: ClassifierConfig,
    pub aug: AugConfig,
    /// The optimiser's batch (fastai's `bs`).
    pub batch_size: usize,
    /// Images per forward/backward pass; None picks the largest that fits the device's memory
    /// (see `device::MemoryBudget`), and gradients are accumulated up to `batch_size`.
    #[serde(default)]
    pub micro_batch: Option<usize>,
    pub adam: AdamConfig,
    /// Seeds augmentation, shuffling and random crops.
    pub seed: u64,
    /// fastai's `to_fp16`: mixed-precision training (see [`crate::mixed_precision`]). Kept in
    /// `.kiln` headers as a record of how the model was trained; exported weights are f32.
    #[serde(default)]
    pub fp16: bool,
}

impl LearnerConfig {
    pub fn new(model: ClassifierConfig, size: usize) -> Self {
        Self { model, aug: AugConfig::new(size), batch_size: 64, micro_batch: None, adam: AdamConfig::default(), seed: 42, fp16: false }
    }
    pub fn with_batch_size(mut self, bs: usize) -> Self {
        self.batch_size = bs;
        self
    }
    pub fn with_micro_batch(mut self, micro_batch: Option<usize>) -> Self {
        self.micro_batch = micro_batch;
        self
    }
    /// The DataLoader: the micro-batch asked for, or the largest that fits `budget`.
    pub fn loader(&self, budget: &MemoryBudget) -> DataLoader {
        let micro = self.micro_batch.unwrap_or_else(|| budget.micro_batch(&self.model.arch, self.aug.size));
        DataLoader::new(self.batch_size).with_micro_batch(micro)
    }
    pub fn with_aug(mut self, aug: AugConfig) -> Self {
        self.aug = aug;
        self
    }
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn with_fp16(mut self, fp16: bool) -> Self {
        self.fp16 = fp16;
        self
    }
}

/// Stops training between batches when set; the model keeps every update made so far.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct BatchStats {
    /// Which fit this batch belongs to: "fit", "frozen" or "unfrozen" (fine_tune), "lr_find".
    pub phase: &'static str,
    pub epoch: usize,
    /// Batch number over the whole fit, from 0.
    pub iter: usize,
    pub total_iters: usize,
    pub loss: f32,
    /// fastai's smoothed training loss (EMA, β = 0.98, debiased).
    pub smooth_loss: f32,
    /// The LR of each parameter group.
    pub lrs: Vec<f64>,
    pub mom: f64,
    pub elapsed_s: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct EpochStats {
    pub phase: &'static str,
    pub epoch: usize,
    pub train_loss: f32,
    pub valid_loss: f32,
    pub error_rate: f32,
    pub accuracy: f32,
    pub seconds: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Batch(BatchStats),
    Epoch(EpochStats),
    /// A file passed the header check but failed to decode; it is left out of its batch.
    Skipped(Skipped),
    /// The model after an epoch, as `.kiln` bytes (only with `snapshot_each_epoch`).
    #[serde(skip)]
    Snapshot(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("{0}")]
    Config(String),
    #[error("the dataset's {found} classes do not match the model's {expected}")]
    ClassMismatch { expected: usize, found: usize },
    #[error("reading a result back from the device failed: {0}")]
    Read(String),
    #[error("training diverged: the loss became {0}, so training stopped; the model keeps its weights from before that batch (try a lower learning rate, e.g. from lr_find)")]
    Diverged(f32),
    #[error("training in mixed precision (fp16) diverged: the loss became {0}, so training stopped; the model keeps its weights from before that batch. An activation may have outgrown f16's range (65504): train without fp16, or with a lower learning rate")]
    DivergedFp16(f32),
    #[error("{0}")]
    Image(String),
}

/// What `fit` did: the epoch table, and whether it stopped early.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FitReport {
    pub epochs: Vec<EpochStats>,
    pub cancelled: bool,
}

/// Predictions over a dataset (fastai's `get_preds`): probabilities, targets, per-item losses.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Preds {
    pub probs: Vec<Vec<f32>>,
    pub targets: Vec<usize>,
    pub losses: Vec<f32>,
}

impl Preds {
    pub fn predicted(&self) -> Vec<usize> {
        self.probs.iter().map(|p| argmax(p)).collect()
    }
    pub fn accuracy(&self) -> f32 {
        let correct = self.predicted().iter().zip(&self.targets).filter(|(p, t)| p == t).count();
        correct as f32 / self.targets.len().max(1) as f32
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Prediction {
    pub label: String,
    pub index: usize,
    /// One probability per class, in `classes` order.
    pub probs: Vec<f32>,
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0)
}

async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, LearnError> {
    let data = t.into_data_async().await.map_err(|e| LearnError::Read(format!("{e:?}")))?;
    data.convert::<f32>().try_to_vec::<f32>().map_err(|e| LearnError::Read(format!("{e:?}")))
}

pub struct Learner {
    pub model: Classifier,
    /// The training device (autodiff enabled).
    pub device: Device,
    pub classes: Vec<String>,
    pub config: LearnerConfig,
    pub opt: Adam,
    /// Batches and micro-batches (fastai's DataLoader), sized for this device's memory.
    pub loader: DataLoader,
    pub(crate) rng: StdRng,
    /// Presize side used when the learner was trained (kept in exports).
    pub presize: u32,
    /// Emit the model as `.kiln` bytes after every epoch (`Event::Snapshot`): the page keeps
    /// the last one, so a worker that dies (out of memory) restarts with it.
    pub snapshot_each_epoch: bool,
    /// What training passes compute in: f16 under `config.fp16` on a device with half precision.
    pub precision: Precision,
    /// The dynamic loss scale of mixed precision (unused in f32).
    pub scaler: LossScaler,
}

impl Learner {
    /// A fresh model for `classes` on `device` (autodiff is enabled here).
    pub fn new(config: LearnerConfig, classes: Vec<String>, presize: u32, device: &Device) -> Result<Self, LearnError> {
        if config.model.num_classes != classes.len() {
            return Err(LearnError::ClassMismatch { expected: config.model.num_classes, found: classes.len() });
        }
        if config.batch_size < 2 {
            return Err(LearnError::Config(format!("batch size {} is too small: BatchNorm needs at least 2", config.batch_size)));
        }
        if let Some(m) = config.micro_batch.filter(|&m| m < 2) {
            return Err(LearnError::Config(format!("micro-batch {m} is too small: BatchNorm needs at least 2 images a pass")));
        }
        if config.fp16 {
            crate::mixed_precision::fp16_support(device).map_err(LearnError::Config)?;
        }
        let device = device.clone().autodiff();
        let budget = MemoryBudget::of(&device);
        let (arch, size) = (&config.model.arch, config.aug.size);
        if config.micro_batch.is_none() && budget.micro_batch(arch, size) < 2 {
            let need = arch.train_fixed_bytes() + 2 * arch.train_bytes_per_image(size);
            return Err(LearnError::Config(format!(
                "{} at {size} px needs about {} MiB to train even two images at a time, more than this device's {} MiB: choose a smaller image size",
                arch.name(),
                need >> 20,
                budget.bytes >> 20
            )));
        }
        // Seeds burn's own RNG too (initial weights, dropout masks), for repeatable runs.
        device.seed(config.seed);
        let model = config.model.init(&device);
        Ok(Self::from_parts(model, device, classes, config, presize))
    }

    pub fn from_parts(model: Classifier, device: Device, classes: Vec<String>, config: LearnerConfig, presize: u32) -> Self {
        let device = device.autodiff();
        let loader = config.loader(&MemoryBudget::of(&device));
        // A model trained in fp16 and loaded where there is no half precision trains on in f32,
        // and its next export says so.
        let precision = if config.fp16 && crate::mixed_precision::fp16_support(&device).is_ok() { Precision::F16 } else { Precision::F32 };
        let config = LearnerConfig { fp16: precision == Precision::F16, ..config };
        Self {
            loader,
            model: model.fork(&device),
            opt: Adam::new(config.adam.clone()),
            rng: StdRng::seed_from_u64(config.seed),
            device,
            classes,
            config,
            presize,
            snapshot_each_epoch: false,
            precision,
            scaler: LossScaler::default(),
        }
    }

    /// One optimisation step on one batch (indices into the training set). Returns the
    /// batch's mean loss, or None when fewer than two of its images could be decoded.
    pub async fn train_batch(
        &mut self,
        dls: &Datasets,
        batch: &[usize],
        lrs: &[f64],
        mom: f64,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Option<f32>, LearnError> {
        // The weights and BatchNorm statistics before this batch: a diverged batch (NaN or
        // infinite loss) is never applied, so the model keeps its last good state.
        let before = self.model.valid();
        let Some((grads, loss)) = self.batch_gradients(dls, batch, on_event).await? else { return Ok(None) };
        // BatchNorm's running statistics can overflow while the loss is still finite. (`valid()`
        // folds in this batch's pending updates; a plain visit would see the previous values.)
        let stats = match running_stats_sum(&self.model.valid()) {
            Some(t) => read_f32(t).await?[0],
            None => 0.0,
        };
        if !loss.is_finite() || !stats.is_finite() {
            // `train()` restores which parameters train (freeze state) too.
            self.model = before.train();
            if self.precision == Precision::F16 {
                return Err(LearnError::DivergedFp16(loss));
            }
            return Err(LearnError::Diverged(loss));
        }
        let scale = self.loss_scale();
        if self.precision == Precision::F16 {
            let finite = match grads_sum(&self.model, &grads) {
                Some(t) => read_f32(t).await?[0].is_finite(),
                None => true,
            };
            if !self.scaler.update(finite) {
                // Overflowed in f16: skip this step (weights and BatchNorm statistics as before).
                self.model = before.train();
                return Ok(Some(loss));
            }
        }
        let device = self.device.clone();
        on_cpu_pool(&device, || self.model = self.opt.step_scaled(self.model.clone(), grads, lrs, mom, 1.0 / scale));
        Ok(Some(loss))
    }

    /// The gradient of a batch's mean loss and the loss: a forward and backward pass per
    /// micro-batch (see [`DataLoader`]), each pass's loss weighted by its share of the batch,
    /// the gradients summed. Under mixed precision the gradients are multiplied by the loss
    /// scale (`train_batch` divides it out). None when fewer than two images could be decoded.
    pub async fn batch_gradients(&mut self, dls: &Datasets, batch: &[usize], on_event: &mut dyn FnMut(&Event)) -> Result<Option<(GradientsParams, f32)>, LearnError> {
        let loader = self.loader;
        let mut parts = Vec::new();
        for micro in loader.micro_batches(batch) {
            let samples: Vec<&Sample> = micro.iter().map(|&i| &dls.train[i]).collect();
            if let Some(part) = self.load_batch(dls, &samples, true, on_event) {
                parts.push(part);
            }
        }
        // BatchNorm cannot normalise a single image.
        parts.retain(|(_, targets)| targets.len() >= 2);
        let n: usize = parts.iter().map(|(_, t)| t.len()).sum();
        if n < 2 {
            return Ok(None);
        }
        let mut accum = GradientsAccumulator::<Classifier>::new();
        let mut total = 0.0;
        let scale = self.loss_scale() as f32;
        for (images, targets) in parts {
            let w = targets.len() as f32 / n as f32;
            let device = self.device.clone();
            let loss = on_cpu_pool(&device, || {
                let loss = self.forward_loss(images, &targets);
                // Mixed precision scales the loss (and so every gradient) by the loss scale.
                let weighted = if w * scale == 1.0 { loss.clone() } else { loss.clone() * (w * scale) };
                accum.accumulate(&self.model, GradientsParams::from_grads(weighted.backward(), &self.model));
                loss.detach()
            });
            // Read per pass: the pass's graph and activations are freed before the next.
            total += w * read_f32(loss).await?[0];
        }
        Ok(Some((accum.grads(), total)))
    }

    /// Decode, presize and upload one batch; files that fail to decode are reported and left out.
    fn load_batch(&mut self, dls: &Datasets, samples: &[&Sample], train: bool, on_event: &mut dyn FnMut(&Event)) -> Option<(Tensor<4>, Vec<usize>)> {
        use rand::Rng;
        let rng = &mut self.rng;
        let mut crop = || if train { Crop::At(rng.random()) } else { Crop::Centre };
        let results = dls.presize_batch(samples, &mut crop);
        let mut pixels = Vec::with_capacity(samples.len());
        let mut targets = Vec::with_capacity(samples.len());
        for (r, s) in results.into_iter().zip(samples) {
            match r {
                Ok(px) => {
                    pixels.push(px);
                    targets.push(s.label);
                }
                Err(skip) => on_event(&Event::Skipped(skip)),
            }
        }
        if pixels.is_empty() || (train && pixels.len() < 2) {
            return None;
        }
        Some((augment::to_tensor(&pixels, dls.config.presize as usize, &self.device), targets))
    }

    fn targets_tensor(&self, targets: &[usize], device: &Device) -> Tensor<1, Int> {
        let t: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
        Tensor::from_data(TensorData::new(t, [targets.len()]), device)
    }

    /// Augment a batch on the device, run the model and return the mean cross-entropy.
    fn forward_loss(&mut self, images: Tensor<4>, targets: &[usize]) -> Tensor<1> {
        let x = self.augment(images);
        self.model_loss(x, targets)
    }

    /// The training batch transform: one random affine warp and lighting change per image.
    pub fn augment(&mut self, images: Tensor<4>) -> Tensor<4> {
        let augs: Vec<_> = (0..images.dims()[0]).map(|_| self.config.aug.draw(&mut self.rng)).collect();
        augment::augment_batch(images, &augs, self.config.aug.size)
    }

    fn model_loss(&self, x: Tensor<4>, targets: &[usize]) -> Tensor<1> {
        let y = self.targets_tensor(targets, &self.device);
        loss::cross_entropy(self.model.forward_with(x, self.precision), y)
    }

    /// What the loss is multiplied by before backward: the loss scale under mixed precision.
    fn loss_scale(&self) -> f64 {
        if self.precision == Precision::F16 { self.scaler.scale } else { 1.0 }
    }

    /// One optimisation step on a batch; returns the loss tensor (not yet read).
    pub fn train_step(&mut self, images: Tensor<4>, targets: &[usize], lrs: &[f64], mom: f64) -> Tensor<1> {
        let x = self.augment(images);
        self.step(x, targets, lrs, mom)
    }

    /// The model's part of a step (forward, backward, Adam) on an already augmented batch.
    /// Under mixed precision an overflowing step is skipped as in [`Learner::train_batch`]; the
    /// check reads the device synchronously, so this is for native use (benches, tests): the
    /// browser trains through `train_batch`.
    pub fn step(&mut self, x: Tensor<4>, targets: &[usize], lrs: &[f64], mom: f64) -> Tensor<1> {
        if self.precision == Precision::F32 {
            let device = self.device.clone();
            return on_cpu_pool(&device, || {
                let loss = self.model_loss(x, targets);
                let grads = GradientsParams::from_grads(loss.backward(), &self.model);
                self.model = self.opt.step(self.model.clone(), grads, lrs, mom);
                loss.detach()
            });
        }
        let loss = self.model_loss(x, targets);
        let scale = self.loss_scale();
        let grads = GradientsParams::from_grads((loss.clone() * scale).backward(), &self.model);
        let finite = grads_sum(&self.model, &grads).is_none_or(|t| t.into_scalar::<f32>().is_finite());
        if self.scaler.update(finite) {
            self.model = self.opt.step_scaled(self.model.clone(), grads, lrs, mom, 1.0 / scale);
        }
        loss.detach()
    }

    /// fastai's `fit_one_cycle(epochs, lr_max)`, reporting every batch and epoch to `on_event`.
    pub async fn fit_one_cycle(
        &mut self,
        dls: &Datasets,
        epochs: usize,
        lr: Lr,
        sched: &OneCycle,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<FitReport, LearnError> {
        self.fit_phase("fit", dls, epochs, lr, sched, cancel, on_event).await
    }

    /// Start from a pretrained body (fastai's `vision_learner(pretrained=True)`): the body's
    /// weights and BatchNorm statistics replace the random ones, the head stays fresh, and the
    /// model is frozen as fastai leaves it, so a plain fit trains the head first.
    pub fn load_pretrained(&mut self, pretrained: Pretrained, arch: &Arch) -> Result<(), LearnError> {
        if *arch != self.config.model.arch {
            return Err(LearnError::Config(format!(
                "the pretrained weights are for {}, but the learner was set up for {}",
                arch.name(),
                self.config.model.arch.name()
            )));
        }
        self.model.body = pretrained.body.fork(&self.device);
        self.opt = Adam::new(self.config.adam.clone());
        self.freeze();
        Ok(())
    }

    /// Freeze every parameter group but the last (the head). BatchNorm layers keep training
    /// (fastai's train_bn), and frozen weights get no gradient, so their weight-gradient
    /// kernels are skipped.
    pub fn freeze(&mut self) {
        self.freeze_to(NUM_GROUPS - 1);
    }

    /// Train every parameter group.
    pub fn unfreeze(&mut self) {
        self.freeze_to(0);
    }

    /// Freeze the groups before `n`.
    pub fn freeze_to(&mut self, n: usize) {
        let mut mapper = Trainable { frozen_below: n, path: crate::model::ParamPath::default() };
        self.model = self.model.clone().map(&mut mapper);
    }

    /// fastai's `fine_tune`: one frozen one-cycle (head only, slice(base_lr), pct_start 0.99),
    /// then unfrozen with discriminative rates slice(base_lr/2/lr_mult, base_lr/2).
    pub async fn fine_tune(
        &mut self,
        dls: &Datasets,
        epochs: usize,
        opts: &FineTune,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<FitReport, LearnError> {
        let (frozen_lr, frozen_sched, unfrozen_lr, unfrozen_sched) = opts.phases();
        self.freeze();
        let mut report = FitReport { epochs: Vec::new(), cancelled: false };
        if opts.freeze_epochs > 0 {
            report = self.fit_phase("frozen", dls, opts.freeze_epochs, frozen_lr, &frozen_sched, cancel, on_event).await?;
            if report.cancelled {
                return Ok(report);
            }
        }
        self.unfreeze();
        let second = self.fit_phase("unfrozen", dls, epochs, unfrozen_lr, &unfrozen_sched, cancel, on_event).await?;
        report.epochs.extend(second.epochs);
        report.cancelled = second.cancelled;
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    async fn fit_phase(
        &mut self,
        phase: &'static str,
        dls: &Datasets,
        epochs: usize,
        lr: Lr,
        sched: &OneCycle,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<FitReport, LearnError> {
        lr.validate().map_err(LearnError::Config)?;
        if dls.classes != self.classes {
            return Err(LearnError::ClassMismatch { expected: self.classes.len(), found: dls.classes.len() });
        }
        if epochs == 0 {
            return Err(LearnError::Config("epochs must be at least 1".into()));
        }
        let lr_max = lr.per_group(NUM_GROUPS);
        let per_epoch = self.loader.batches_per_epoch(dls.train.len());
        let total = per_epoch * epochs;
        let start = Instant::now();
        let mut smooth = Smoother::default();
        let mut report = FitReport { epochs: Vec::new(), cancelled: false };
        let mut iter = 0;
        for epoch in 0..epochs {
            let t0 = Instant::now();
            let batches = self.loader.epoch(dls.train.len(), &mut self.rng);
            for batch in &batches {
                if cancel.is_cancelled() {
                    report.cancelled = true;
                    return Ok(report);
                }
                let p = iter as f64 / total as f64;
                let lrs: Vec<f64> = lr_max.iter().map(|&m| sched.lr(m, p)).collect();
                let mom = sched.mom(p);
                if let Some(loss) = self.train_batch(dls, batch, &lrs, mom, on_event).await? {
                    smooth.add(loss);
                    on_event(&Event::Batch(BatchStats {
                        phase,
                        epoch,
                        iter,
                        total_iters: total,
                        loss,
                        smooth_loss: smooth.value(),
                        lrs,
                        mom,
                        elapsed_s: start.elapsed().as_secs_f64(),
                    }));
                }
                iter += 1;
                // Lets the browser deliver messages (Cancel) between batches.
                crate::yield_now().await;
            }
            let v = self.validate(dls, on_event).await?;
            let stats = EpochStats {
                phase,
                epoch,
                train_loss: smooth.value(),
                valid_loss: v.0,
                error_rate: 1.0 - v.1,
                accuracy: v.1,
                seconds: t0.elapsed().as_secs_f64(),
            };
            on_event(&Event::Epoch(stats.clone()));
            report.epochs.push(stats);
            if self.snapshot_each_epoch {
                let bytes = crate::export::to_bytes(self).await.map_err(|e| LearnError::Read(e.to_string()))?;
                on_event(&Event::Snapshot(bytes));
            }
        }
        Ok(report)
    }

    /// Validation loss and accuracy.
    pub async fn validate(&mut self, dls: &Datasets, on_event: &mut dyn FnMut(&Event)) -> Result<(f32, f32), LearnError> {
        let preds = self.get_preds_on(dls, &dls.valid, on_event).await?;
        let loss = preds.losses.iter().sum::<f32>() / preds.losses.len().max(1) as f32;
        Ok((loss, preds.accuracy()))
    }

    /// fastai's `get_preds()`: predictions over the validation set.
    pub async fn get_preds(&mut self, dls: &Datasets) -> Result<Preds, LearnError> {
        self.get_preds_on(dls, &dls.valid, &mut |_| {}).await
    }

    /// fastai's `get_preds` over the given samples (validation transforms, eval mode).
    pub async fn get_preds_on(&mut self, dls: &Datasets, samples: &[Sample], on_event: &mut dyn FnMut(&Event)) -> Result<Preds, LearnError> {
        let model = self.model.valid();
        let inner = self.device.clone().inner();
        let mut out = Preds { probs: Vec::new(), targets: Vec::new(), losses: Vec::new() };
        let bs = self.config.batch_size;
        for chunk in samples.chunks(bs) {
            let refs: Vec<&Sample> = chunk.iter().collect();
            let Some((images, targets)) = self.load_batch(dls, &refs, false, on_event) else { continue };
            let y = self.targets_tensor(&targets, &inner);
            let (probs, losses) = on_cpu_pool(&inner, || {
                let logits = model.forward(augment::valid_batch(images.inner(), self.config.aug.size));
                let logp = loss::log_softmax(logits);
                let losses = loss::nll_per_item(logp.clone(), y);
                (logp.exp(), losses)
            });
            let probs = read_f32(probs).await?;
            out.losses.extend(read_f32(losses).await?);
            let k = self.classes.len();
            out.probs.extend(probs.chunks(k).map(|c| c.to_vec()));
            out.targets.extend(targets);
        }
        Ok(out)
    }

    /// What the model sees of a photo before normalisation: the centre crop at the presize,
    /// resized to the training size, RGB in [0, 1], [1, 3, size, size] (an exported ONNX
    /// model's input).
    pub fn predict_input(&self, bytes: &[u8]) -> Result<Tensor<4>, LearnError> {
        let img = decode_rgb8(bytes, crate::data::DataConfig::default().max_pixels).map_err(|e| LearnError::Image(e.to_string()))?;
        let px = presize(&img, self.presize, Crop::Centre).into_raw();
        let x = augment::to_tensor(&[px], self.presize as usize, &self.device.clone().inner());
        Ok(augment::resize_batch(x, self.config.aug.size))
    }

    /// Predict one image from its file bytes: the label and a probability per class.
    pub async fn predict(&self, bytes: &[u8]) -> Result<Prediction, LearnError> {
        let x = self.predict_input(bytes)?;
        let logits = self.model.valid().forward(augment::normalize(x));
        let probs = read_f32(activation::softmax(logits, 1)).await?;
        let index = argmax(&probs);
        Ok(Prediction { label: self.classes[index].clone(), index, probs })
    }
}

/// fine_tune's settings (fastai's defaults).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct FineTune {
    pub base_lr: f64,
    pub freeze_epochs: usize,
    pub lr_mult: f64,
    pub pct_start: f64,
    pub div: f64,
}

impl Default for FineTune {
    fn default() -> Self {
        Self { base_lr: 2e-3, freeze_epochs: 1, lr_mult: 100.0, pct_start: 0.3, div: 5.0 }
    }
}

impl FineTune {
    pub fn with_base_lr(mut self, base_lr: f64) -> Self {
        self.base_lr = base_lr;
        self
    }
    pub fn with_freeze_epochs(mut self, n: usize) -> Self {
        self.freeze_epochs = n;
        self
    }

    /// The two phases' learning rates and schedules, exactly as fastai's three steps.
    pub fn phases(&self) -> (Lr, OneCycle, Lr, OneCycle) {
        let frozen = OneCycle::default().with_pct_start(0.99);
        let base = self.base_lr / 2.0;
        let unfrozen = OneCycle::default().with_pct_start(self.pct_start).with_div(self.div);
        (Lr::Slice(self.base_lr), frozen, Lr::Range(base / self.lr_mult, base), unfrozen)
    }
}

/// Sets which parameters train: groups from `frozen_below` on, and BatchNorm everywhere.
struct Trainable {
    frozen_below: usize,
    path: crate::model::ParamPath,
}

impl burn::module::ModuleMapper for Trainable {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: burn::module::Param<Tensor<D>>) -> burn::module::Param<Tensor<D>> {
        if matches!(self.path.name(), "running_mean" | "running_var") {
            return param;
        }
        param.set_require_grad(self.path.in_batchnorm() || self.path.group() >= self.frozen_below)
    }
}

/// The sum of every BatchNorm running mean and variance: finite exactly when all of them are
/// (one value to read back instead of every statistic).
fn running_stats_sum(model: &Classifier) -> Option<Tensor<1>> {
    struct Sum(Option<Tensor<1>>, crate::model::ParamPath);
    impl burn::module::ModuleVisitor for Sum {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.1.enter(name, container_type);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.1.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            if matches!(self.1.name(), "running_mean" | "running_var") {
                let s = param.val().detach().sum();
                self.0 = Some(match self.0.take() {
                    Some(total) => total + s,
                    None => s,
                });
            }
        }
    }
    let mut sum = Sum(None, crate::model::ParamPath::default());
    model.visit(&mut sum);
    sum.0
}

/// The sum of every gradient's absolute values: finite exactly when no gradient overflowed.
fn grads_sum(model: &Classifier, grads: &GradientsParams) -> Option<Tensor<1>> {
    struct Sum<'a>(Option<Tensor<1>>, &'a GradientsParams);
    impl burn::module::ModuleVisitor for Sum<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            if let Some(g) = self.1.get::<D>(param.id) {
                let s = g.abs().sum();
                self.0 = Some(match self.0.take() {
                    Some(total) => total + s,
                    None => s,
                });
            }
        }
    }
    let mut sum = Sum(None, grads);
    model.visit(&mut sum);
    sum.0
}

/// fastai's SmoothenValue: EMA with β = 0.98, debiased.
#[derive(Default)]
pub struct Smoother {
    n: i32,
    avg: f64,
}

impl Smoother {
    pub fn add(&mut self, v: f32) {
        self.n += 1;
        self.avg = 0.98 * self.avg + 0.02 * v as f64;
    }
    pub fn value(&self) -> f32 {
        (self.avg / (1.0 - 0.98f64.powi(self.n))) as f32
    }
}

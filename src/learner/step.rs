//! One optimisation step, the only one: the page, the CLI, lr_find and the benches all train
//! through [`Learner::step`]. A batch is cut into passes that fit the device's memory
//! (gradients accumulated over them), checked for divergence and, under mixed precision, for
//! overflowing gradients, and then applied by Adam.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::Tensor;

use super::{Event, Hypers, LearnError, Learner, read_f32};
use crate::augment;
use crate::data::{Crop, Datasets, Sample};
use crate::device::on_cpu_pool;
use crate::mixed_precision::Precision;
use crate::model::{Classifier, ParamPath};

/// One forward/backward pass's images and their classes (one each, or a multi-label set).
pub struct Pass {
    pub images: Tensor<4>,
    pub targets: Vec<Vec<usize>>,
    /// Whether `images` are presized photos still to augment (training), or already augmented.
    pub augment: bool,
}

impl Pass {
    /// Presized images: the step augments them (one random warp and lighting change each).
    pub fn presized(images: Tensor<4>, targets: Vec<Vec<usize>>) -> Self {
        Self { images, targets, augment: true }
    }
    /// Images already augmented to the training size (benches time the model's part alone).
    pub fn augmented(images: Tensor<4>, targets: Vec<Vec<usize>>) -> Self {
        Self { images, targets, augment: false }
    }
}

impl Learner {
    /// One step on a batch of the training set (indices into `dls.train`): its passes loaded,
    /// then [`Learner::step`]. None when fewer than two of its images could be decoded
    /// (BatchNorm cannot normalise one).
    pub async fn train_batch(&mut self, dls: &Datasets, batch: &[usize], hypers: &Hypers, on_event: &mut dyn FnMut(&Event)) -> Result<Option<f32>, LearnError> {
        let passes = self.load_passes(dls, batch, on_event);
        if passes.is_empty() {
            return Ok(None);
        }
        self.step(passes, hypers).await.map(Some)
    }

    /// A batch's micro-batches decoded, presized (random crops) and uploaded; files that fail
    /// to decode are reported and left out, and so is a pass left with one image. Every crop
    /// is drawn before any augmentation, so the random stream does not depend on the split.
    pub fn load_passes(&mut self, dls: &Datasets, batch: &[usize], on_event: &mut dyn FnMut(&Event)) -> Vec<Pass> {
        let loader = self.loader;
        let mut passes = Vec::new();
        for micro in loader.micro_batches(batch) {
            let samples: Vec<&Sample> = micro.iter().map(|&i| &dls.train[i]).collect();
            if let Some((images, targets)) = self.load_batch(dls, &samples, true, on_event) {
                passes.push(Pass::presized(images, targets));
            }
        }
        passes.retain(|p| p.targets.len() >= 2);
        passes
    }

    /// One step on a presized batch already on the device, cut into micro-batches as
    /// `train_batch` cuts a batch of files.
    pub async fn train_step(&mut self, images: Tensor<4>, targets: &[Vec<usize>], hypers: &Hypers) -> Result<f32, LearnError> {
        let index: Vec<usize> = (0..targets.len()).collect();
        let passes = self
            .loader
            .micro_batches(&index)
            .into_iter()
            .map(|m| Pass::presized(images.clone().narrow(0, m[0], m.len()), targets[m[0]..m[0] + m.len()].to_vec()))
            .collect();
        self.step(passes, hypers).await
    }

    /// The step: the gradient of the batch's mean loss over `passes`, then Adam. A batch whose
    /// loss or BatchNorm statistics are not finite is never applied (the model keeps its last
    /// good state, and the error says so); under mixed precision a step whose gradients
    /// overflowed f16 is skipped and the loss scale lowered. Returns the batch's mean loss.
    pub async fn step(&mut self, passes: Vec<Pass>, hypers: &Hypers) -> Result<f32, LearnError> {
        // Until Adam runs, a step changes only BatchNorm's running statistics: they are all a
        // refused step has to put back. (A snapshot of the whole model, held through the forward
        // and backward passes, made them measurably slower.)
        let before = running_stats(&self.model);
        let (grads, loss) = self.gradients(passes).await?;
        // BatchNorm's running statistics can overflow while the loss is still finite.
        let stats = match running_stats_sum(&self.model.valid()) {
            Some(t) => read_f32(t).await?[0],
            None => 0.0,
        };
        if !loss.is_finite() || !stats.is_finite() {
            self.model = restore_running_stats(self.model.clone(), before);
            return Err(if self.precision == Precision::F16 { LearnError::DivergedFp16(loss) } else { LearnError::Diverged(loss) });
        }
        let scale = self.loss_scale();
        if self.precision == Precision::F16 {
            let finite = match grads_sum(&self.model, &grads) {
                Some(t) => read_f32(t).await?[0].is_finite(),
                None => true,
            };
            if !self.scaler.update(finite) {
                self.model = restore_running_stats(self.model.clone(), before);
                return Ok(loss);
            }
        }
        let device = self.device.clone();
        on_cpu_pool(&device, || self.model = self.opt.step_scaled(self.model.clone(), grads, &hypers.lrs, hypers.mom, 1.0 / scale));
        Ok(loss)
    }

    /// The summed gradients of every pass, each pass's loss weighted by its share of the batch
    /// (times the loss scale under mixed precision), and the batch's mean loss.
    pub async fn gradients(&mut self, passes: Vec<Pass>) -> Result<(GradientsParams, f32), LearnError> {
        let n: usize = passes.iter().map(|p| p.targets.len()).sum();
        let mut accum = GradientsAccumulator::<Classifier>::new();
        let mut total = 0.0;
        let scale = self.loss_scale() as f32;
        for pass in passes {
            let w = pass.targets.len() as f32 / n as f32;
            let device = self.device.clone();
            let loss = on_cpu_pool(&device, || {
                let x = if pass.augment { self.augment(pass.images) } else { pass.images };
                let loss = self.model_loss(x, &pass.targets);
                let weighted = if w * scale == 1.0 { loss.clone() } else { loss.clone() * (w * scale) };
                accum.accumulate(&self.model, GradientsParams::from_grads(weighted.backward(), &self.model));
                loss.detach()
            });
            sync_running_stats(&self.model);
            // Read per pass: the pass's graph and activations are freed before the next.
            total += w * read_f32(loss).await?[0];
        }
        Ok((accum.grads(), total))
    }

    /// Decode, presize and upload one batch; files that fail to decode are reported and left out.
    pub(super) fn load_batch(&mut self, dls: &Datasets, samples: &[&Sample], train: bool, on_event: &mut dyn FnMut(&Event)) -> Option<(Tensor<4>, Vec<Vec<usize>>)> {
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
                    targets.push(s.labels.clone());
                }
                Err(skip) => on_event(&Event::Skipped(skip)),
            }
        }
        if pixels.is_empty() || (train && pixels.len() < 2) {
            return None;
        }
        Some((augment::to_tensor(&pixels, dls.config.presize as usize, &self.device), targets))
    }

    /// The training batch transform: one random affine warp and lighting change per image.
    pub fn augment(&mut self, images: Tensor<4>) -> Tensor<4> {
        let augs: Vec<_> = (0..images.dims()[0]).map(|_| self.config.aug.draw(&mut self.rng)).collect();
        augment::augment_batch(images, &augs, self.config.aug.size)
    }

    fn model_loss(&self, x: Tensor<4>, targets: &[Vec<usize>]) -> Tensor<1> {
        self.config.loss_func.mean(self.model.forward_with(x, self.precision), targets)
    }

    /// What the loss is multiplied by before backward: the loss scale under mixed precision.
    fn loss_scale(&self) -> f64 {
        if self.precision == Precision::F16 { self.scaler.scale } else { 1.0 }
    }
}

/// burn's BatchNorm keeps the running statistics a training pass computes per thread, and
/// averages whatever threads left when it next syncs; a pass that runs on another thread than
/// the last starts from stale statistics. The threaded browser build runs each pass on
/// whichever pool thread is free, so without a sync after every pass the validation metrics
/// depended on scheduling. Syncing makes the updates sequential, as on one thread.
pub fn sync_running_stats(model: &Classifier) {
    let _ = model.valid();
}

/// The sum of every BatchNorm running mean and variance: finite exactly when all of them are
/// (one value to read back instead of every statistic).
/// BatchNorm's running statistics, flattened, in the model's visiting order.
fn running_stats(model: &Classifier) -> Vec<Tensor<1>> {
    struct Stats(Vec<Tensor<1>>, ParamPath);
    impl burn::module::ModuleVisitor for Stats {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.1.enter(name, container_type);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.1.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            if matches!(self.1.name(), "running_mean" | "running_var") {
                self.0.push(param.val().reshape([-1]));
            }
        }
    }
    let mut stats = Stats(Vec::new(), ParamPath::default());
    model.visit(&mut stats);
    stats.0
}

/// `model` with the running statistics `running_stats` took put back.
fn restore_running_stats(model: Classifier, stats: Vec<Tensor<1>>) -> Classifier {
    struct Restore(std::vec::IntoIter<Tensor<1>>, ParamPath);
    impl burn::module::ModuleMapper for Restore {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.1.enter(name, container_type);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.1.exit();
        }
        fn map_float<const D: usize>(&mut self, param: burn::module::Param<Tensor<D>>) -> burn::module::Param<Tensor<D>> {
            if !matches!(self.1.name(), "running_mean" | "running_var") {
                return param;
            }
            let saved = self.0.next().expect("one saved statistic per BatchNorm buffer");
            param.map(|t| saved.reshape(t.shape()))
        }
    }
    model.map(&mut Restore(stats.into_iter(), ParamPath::default()))
}

fn running_stats_sum(model: &Classifier) -> Option<Tensor<1>> {
    running_stats(model).into_iter().map(|t| t.sum()).reduce(|total, s| total + s)
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

//! The Learner (fastai's): a model, its data loader, optimiser and random state, and what it
//! does with them, one file each:
//! - [`config`]: how a learner is set up, and the user's options checked once for every shell;
//! - [`step`]: the one optimisation step (micro-batches, divergence and fp16 checks, Adam);
//! - [`fit`]: fit_one_cycle and fine_tune, validated every epoch;
//! - [`lr_find`]: fastai's learning-rate finder and its suggestions;
//! - [`predict`]: get_preds and predict;
//! - [`probe`]: timing a device on the learner's own work, for choosing one;
//! - [`events`]: what a fit reports (batch and epoch events, the report, errors, Cancel).
//!
//! The loop is async and reads tensors only with `*_async`, so the same code runs natively
//! (driven by `pollster`) and in the browser, where a blocking read panics on WebGPU.

pub mod config;
pub mod events;
pub mod fit;
pub mod small_data;
pub mod lr_find;
pub mod predict;
pub mod probe;
pub mod step;

pub use config::{LearnerConfig, LearnerOptions};
pub use events::{BatchStats, CancelToken, EpochStats, Event, FitReport, Hypers, LearnError, Metrics, Phase};
pub use fit::{Cycle, FineTune, FitOneCycle, Smoother};
pub use lr_find::{LrFind, LrFindConfig};
pub use predict::{NONE_OF_THESE, Preds, Prediction};
pub use step::{Pass, sync_running_stats};

use std::future::Future;
use std::pin::Pin;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::data::{DataLoader, Datasets};
use crate::device::MemoryBudget;
use crate::mixed_precision::{LossScaler, Precision};
use crate::model::{Arch, Classifier, NUM_GROUPS, ParamPath, Pretrained};
use crate::optimizer::Adam;

/// Writes a learner's model as file bytes (a plain function, so the learner stays `Send`).
pub type SaveModel = for<'a> fn(&'a Learner) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + 'a>>;

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
    /// Saves the model after every epoch (`Event::Snapshot`); the shell gives the format, so
    /// the learner does not depend on the file formats built on it.
    pub snapshot_each_epoch: Option<SaveModel>,
    /// What training passes compute in: f16 under `config.fp16` on a device with half precision.
    pub precision: Precision,
    /// The dynamic loss scale of mixed precision (unused in f32).
    pub scaler: LossScaler,
    /// Every epoch this model has trained, across fits and saves (fastai's recorder).
    pub history: Vec<EpochStats>,
    /// Parameter groups before this one are frozen (0: every group trains).
    pub frozen_below: usize,
}

impl Learner {
    /// Refuses a dataset this learner cannot train on: other classes, a class without training
    /// images, or sets of labels for a softmax model.
    pub fn check_data(&self, dls: &Datasets) -> Result<(), LearnError> {
        if dls.classes != self.classes {
            return Err(LearnError::ClassMismatch { expected: self.classes.len(), found: dls.classes.len() });
        }
        dls.check_learnable().map_err(LearnError::Data)?;
        if dls.multi_label() && self.config.loss_func.thresh().is_none() {
            return Err(LearnError::Data(
                "these photos have sets of labels (several, or none), which a softmax model cannot learn: train with one sigmoid per class (\"allow 'none of these'\", multiLabel: true, --multi-label)".into(),
            ));
        }
        Ok(())
    }

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
        if config.micro_batch.is_none() && arch.micro_batch(&budget, size) < 2 {
            let need = arch.train_fixed_bytes() + 2 * arch.train_bytes_per_image(size);
            return Err(LearnError::Config(format!(
                "{} at {size} px needs about {} MiB to train even two images at a time, more than this device's {} MiB: choose a smaller image size",
                arch.name(),
                need >> 20,
                budget.bytes >> 20
            )));
        }
        // Seeds burn's own RNG too (initial weights, dropout masks), for repeatable runs. The
        // RNG is one per process: the lock keeps learners made at the same time (tests, a
        // worker pool) from drawing from each other's seeded stream.
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let model = {
            let _one_at_a_time = INIT.lock().unwrap_or_else(|e| e.into_inner());
            device.seed(config.seed);
            config.model.init(&device)
        };
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
            snapshot_each_epoch: None,
            precision,
            scaler: LossScaler::default(),
            history: Vec::new(),
            frozen_below: 0,
        }
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
        let mut mapper = Trainable { frozen_below: n, train_bn: self.config.train_bn, path: ParamPath::default() };
        self.model = self.model.clone().map(&mut mapper);
        self.frozen_below = n;
    }
}

/// Sets which parameters train: groups from `frozen_below` on, and BatchNorm everywhere with
/// `train_bn`.
struct Trainable {
    frozen_below: usize,
    train_bn: bool,
    path: ParamPath,
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
        param.set_require_grad((self.train_bn && self.path.in_batchnorm()) || self.path.group() >= self.frozen_below)
    }
}

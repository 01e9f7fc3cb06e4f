//! How a learner is set up: [`LearnerConfig`] (kept in `.kiln` headers), and the options a
//! user chooses, checked here once for the CLI and the page alike.

use crate::augment::AugConfig;
use crate::device::MemoryBudget;
use crate::data::DataLoader;
use crate::model::{Arch, ClassifierConfig};
use crate::loss::LossFunc;
use crate::optimizer::AdamConfig;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LearnerConfig {
    pub model: ClassifierConfig,
    pub aug: AugConfig,
    /// The optimiser's batch (fastai's `bs`).
    pub batch_size: usize,
    /// Images per forward/backward pass; None picks the largest that fits the device's memory
    /// (see [`Arch::micro_batch`]), and gradients are accumulated up to `batch_size`.
    #[serde(default)]
    pub micro_batch: Option<usize>,
    pub adam: AdamConfig,
    /// Seeds augmentation, shuffling and random crops.
    pub seed: u64,
    /// fastai's `to_fp16`: mixed-precision training (see [`crate::mixed_precision`]). Kept in
    /// `.kiln` headers as a record of how the model was trained; exported weights are f32.
    #[serde(default)]
    pub fp16: bool,
    /// fastai's `loss_func`: softmax cross-entropy, or a sigmoid per class ("none of these").
    #[serde(default)]
    pub loss_func: LossFunc,
}

impl LearnerConfig {
    pub fn new(model: ClassifierConfig, size: usize) -> Self {
        Self { model, aug: AugConfig::new(size), batch_size: 64, micro_batch: None, adam: AdamConfig::default(), seed: 42, fp16: false, loss_func: LossFunc::CrossEntropy }
    }
    pub fn with_batch_size(mut self, bs: usize) -> Self {
        self.batch_size = bs;
        self
    }
    pub fn with_micro_batch(mut self, micro_batch: Option<usize>) -> Self {
        self.micro_batch = micro_batch;
        self
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
    pub fn with_loss_func(mut self, loss_func: LossFunc) -> Self {
        self.loss_func = loss_func;
        self
    }
    /// The DataLoader: the micro-batch asked for, or the largest that fits `budget`.
    pub fn loader(&self, budget: &MemoryBudget) -> DataLoader {
        let micro = self.micro_batch.unwrap_or_else(|| self.model.arch.micro_batch(budget, self.aug.size));
        DataLoader::new(self.batch_size).with_micro_batch(micro)
    }
}

/// A new learner's settings as a user gives them (the CLI's flags, the page's options).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LearnerOptions {
    /// efficientnet_lite0, resnet18, resnet34 or tiny.
    #[serde(deserialize_with = "arch_by_name", serialize_with = "arch_name")]
    pub arch: Arch,
    /// Training image size after augmentation.
    pub size: usize,
    pub batch_size: usize,
    /// Images per forward/backward pass; None sizes it to the device's memory.
    pub micro_batch: Option<usize>,
    pub seed: u64,
    pub do_flip: bool,
    /// For the tiny ResNet: its four stages' channel widths.
    pub widths: Option<[usize; 4]>,
    /// Width of the head's hidden layer.
    pub hidden: usize,
    /// Mixed precision (fastai's `to_fp16`); refused where the device has no half precision.
    pub fp16: bool,
    /// One sigmoid per class (fastai's `BCEWithLogitsLossFlat`), so a photo can be "none of
    /// these": its classes are those above `thresh`.
    pub multi_label: bool,
    /// The probability a class needs to be predicted with `multi_label` (fastai's 0.5).
    pub thresh: f32,
}

impl Default for LearnerOptions {
    fn default() -> Self {
        Self { arch: Arch::EfficientNetLite0, size: 224, batch_size: 64, micro_batch: None, seed: 42, do_flip: true, widths: None, hidden: 512, fp16: false, multi_label: false, thresh: 0.5 }
    }
}

/// The name `arch_by_name` reads back (the tiny ResNet's widths travel as `widths`).
fn arch_name<S: serde::Serializer>(arch: &Arch, s: S) -> Result<S::Ok, S::Error> {
    match arch {
        Arch::Custom(_) => s.serialize_str("tiny"),
        arch => s.serialize_str(&arch.name()),
    }
}

fn arch_by_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Arch, D::Error> {
    let name = <String as serde::Deserialize>::deserialize(d)?;
    name.parse().map_err(serde::de::Error::custom)
}

impl LearnerOptions {
    /// The options that give `config` (what a model file records of how it was set up).
    pub fn of(config: &LearnerConfig) -> Self {
        let arch = &config.model.arch;
        Self {
            // The tiny ResNet is named by its default; its widths travel as `widths`.
            arch: match arch {
                Arch::Custom(_) => Arch::Custom(crate::model::ResNetConfig::tiny()),
                arch => arch.clone(),
            },
            size: config.aug.size,
            batch_size: config.batch_size,
            micro_batch: config.micro_batch,
            seed: config.seed,
            do_flip: config.aug.do_flip,
            widths: match arch {
                Arch::Custom(c) => Some(c.widths),
                _ => None,
            },
            hidden: config.model.hidden,
            fp16: config.fp16,
            multi_label: config.loss_func.thresh().is_some(),
            thresh: config.loss_func.thresh().unwrap_or(0.5),
        }
    }

    /// The option names, as the page's options object spells them.
    pub const KEYS: &'static [&'static str] = &["arch", "size", "batchSize", "microBatch", "seed", "doFlip", "widths", "hidden", "fp16", "multiLabel", "thresh"];

    /// The learner's configuration for `num_classes` classes, or a sentence naming the value
    /// that is out of range.
    pub fn config(&self, num_classes: usize) -> Result<LearnerConfig, String> {
        if !(8..=1024).contains(&self.size) {
            return Err(format!("the image size {} must be between 8 and 1024 pixels (224 is usual)", self.size));
        }
        if self.batch_size < 2 {
            return Err(format!("the batch size {} is too small: BatchNorm needs at least 2 images", self.batch_size));
        }
        if !(self.thresh > 0.0 && self.thresh < 1.0) {
            return Err(format!("the threshold {} must be between 0 and 1 (fastai's is 0.5)", self.thresh));
        }
        if self.hidden == 0 {
            return Err("the head's hidden width must be at least 1 (fastai's is 512)".into());
        }
        let arch = match (&self.arch, self.widths) {
            (Arch::Custom(c), Some(w)) if w.iter().all(|&w| w > 0) => Arch::Custom(c.clone().with_widths(w)),
            (Arch::Custom(_), Some(w)) => return Err(format!("the tiny ResNet's widths {w:?} must all be at least 1")),
            (arch, Some(_)) => return Err(format!("widths apply to the tiny ResNet only, not {}", arch.name())),
            (arch, None) => arch.clone(),
        };
        let model = ClassifierConfig::new(arch, num_classes).with_hidden(self.hidden);
        Ok(LearnerConfig::new(model, self.size)
            .with_batch_size(self.batch_size)
            .with_micro_batch(self.micro_batch)
            .with_seed(self.seed)
            .with_fp16(self.fp16)
            .with_loss_func(if self.multi_label { LossFunc::Bce { thresh: self.thresh } } else { LossFunc::CrossEntropy })
            .with_aug(AugConfig::new(self.size).with_do_flip(self.do_flip)))
    }
}

//! How a learner is set up: [`LearnerConfig`] (kept in `.kiln` headers), and the options a
//! user chooses, checked here once for the CLI and the page alike.

use crate::augment::AugConfig;
use crate::device::MemoryBudget;
use crate::data::DataLoader;
use crate::model::{Arch, ClassifierConfig, HeadOptions};
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
    /// fastai's `loss_func`: softmax cross-entropy (plain or label-smoothed), or a sigmoid per
    /// class ("none of these").
    #[serde(default)]
    pub loss_func: LossFunc,
    /// fastai's `train_bn`: BatchNorm layers train while their group is frozen.
    #[serde(default = "yes")]
    pub train_bn: bool,
    /// fastai's `moms`: one-cycle's momentum at the start, the peak learning rate, and the end.
    #[serde(default = "default_moms")]
    pub moms: (f64, f64, f64),
}

fn yes() -> bool {
    true
}
fn default_moms() -> (f64, f64, f64) {
    crate::schedule::OneCycle::default().moms
}

impl LearnerConfig {
    pub fn new(model: ClassifierConfig, size: usize) -> Self {
        Self {
            model,
            aug: AugConfig::new(size),
            batch_size: 64,
            micro_batch: None,
            adam: AdamConfig::default(),
            seed: 42,
            fp16: false,
            loss_func: LossFunc::CrossEntropy,
            train_bn: true,
            moms: default_moms(),
        }
    }
    pub fn with_train_bn(mut self, train_bn: bool) -> Self {
        self.train_bn = train_bn;
        self
    }
    pub fn with_moms(mut self, moms: (f64, f64, f64)) -> Self {
        self.moms = moms;
        self
    }
    pub fn with_adam(mut self, adam: AdamConfig) -> Self {
        self.adam = adam;
        self
    }

    /// The keyword arguments of fastai's `vision_learner` that build this learner: every
    /// option Kiln sets, fastai's defaults written out for the head.
    pub fn fastai_args(&self) -> String {
        let m = &self.model.head;
        let lin_ftrs: Vec<String> = m.lin_ftrs().iter().map(usize::to_string).collect();
        let mut args = vec![format!("concat_pool={}", py(m.concat_pool)), format!("lin_ftrs=[{}]", lin_ftrs.join(", "))];
        let d = HeadOptions::default();
        if m.ps != d.ps {
            args.push(format!("ps={}", m.ps));
        }
        if m.first_bn != d.first_bn {
            args.push(format!("first_bn={}", py(m.first_bn)));
        }
        if m.bn_final != d.bn_final {
            args.push(format!("bn_final={}", py(m.bn_final)));
        }
        if m.lin_first != d.lin_first {
            args.push(format!("lin_first={}", py(m.lin_first)));
        }
        match self.loss_func {
            LossFunc::CrossEntropy => {}
            LossFunc::Bce { thresh } => args.push(format!("loss_func=BCEWithLogitsLossFlat(thresh={thresh}), metrics=partial(accuracy_multi, thresh={thresh})")),
            l @ LossFunc::LabelSmoothing { .. } => args.push(format!("loss_func={}", l.fastai())),
        }
        let adam = AdamConfig::default();
        if self.adam.wd != adam.wd {
            args.push(format!("wd={}", self.adam.wd));
        }
        if self.adam.wd_bn_bias {
            args.push("wd_bn_bias=True".into());
        }
        if !self.train_bn {
            args.push("train_bn=False".into());
        }
        if self.moms != default_moms() {
            args.push(format!("moms=({}, {}, {})", self.moms.0, self.moms.1, self.moms.2));
        }
        args.join(", ")
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
    /// fastai's `lin_ftrs`: every hidden layer's width (overrides `hidden`).
    pub lin_ftrs: Option<Vec<usize>>,
    /// Mixed precision (fastai's `to_fp16`); refused where the device has no half precision.
    pub fp16: bool,
    /// One sigmoid per class (fastai's `BCEWithLogitsLossFlat`), so a photo can be "none of
    /// these": its classes are those above `thresh`.
    pub multi_label: bool,
    /// The probability a class needs to be predicted with `multi_label` (fastai's 0.5).
    pub thresh: f32,
    /// fastai's `loss_func` by name: CrossEntropyLossFlat, LabelSmoothingCrossEntropy (eps 0.1)
    /// or BCEWithLogitsLossFlat (the same as `multi_label`); None: from `multi_label`.
    pub loss_func: Option<String>,
    /// vision_learner's head: dropout `ps`, `concat_pool`, `first_bn`, `bn_final`.
    pub ps: f64,
    pub concat_pool: bool,
    pub first_bn: bool,
    pub bn_final: bool,
    pub lin_first: bool,
    /// vision_learner's training options: weight decay `wd`, `wd_bn_bias`, `train_bn`, `moms`.
    pub wd: f64,
    pub wd_bn_bias: bool,
    pub train_bn: bool,
    pub moms: [f64; 3],
}

impl Default for LearnerOptions {
    fn default() -> Self {
        let m = HeadOptions::default();
        let moms = default_moms();
        Self {
            arch: Arch::EfficientNetLite0,
            size: 224,
            batch_size: 64,
            micro_batch: None,
            seed: 42,
            do_flip: true,
            widths: None,
            hidden: m.hidden,
            lin_ftrs: None,
            fp16: false,
            multi_label: false,
            thresh: 0.5,
            loss_func: None,
            ps: m.ps,
            concat_pool: m.concat_pool,
            first_bn: m.first_bn,
            bn_final: m.bn_final,
            lin_first: m.lin_first,
            wd: AdamConfig::default().wd,
            wd_bn_bias: false,
            train_bn: true,
            moms: [moms.0, moms.1, moms.2],
        }
    }
}

fn py(b: bool) -> &'static str {
    if b { "True" } else { "False" }
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
            hidden: config.model.head.hidden,
            lin_ftrs: (!config.model.head.more_hidden.is_empty()).then(|| config.model.head.lin_ftrs()),
            fp16: config.fp16,
            multi_label: config.loss_func.thresh().is_some(),
            thresh: config.loss_func.thresh().unwrap_or(0.5),
            loss_func: match config.loss_func {
                LossFunc::LabelSmoothing { .. } => Some("LabelSmoothingCrossEntropy".into()),
                _ => None,
            },
            ps: config.model.head.ps,
            concat_pool: config.model.head.concat_pool,
            first_bn: config.model.head.first_bn,
            bn_final: config.model.head.bn_final,
            lin_first: config.model.head.lin_first,
            wd: config.adam.wd,
            wd_bn_bias: config.adam.wd_bn_bias,
            train_bn: config.train_bn,
            moms: [config.moms.0, config.moms.1, config.moms.2],
        }
    }

    /// The option names, as the page's options object spells them.
    pub const KEYS: &'static [&'static str] = &[
        "arch", "size", "batchSize", "microBatch", "seed", "doFlip", "widths", "hidden", "linFtrs", "fp16", "multiLabel", "thresh", "lossFunc", "ps", "concatPool", "firstBn", "bnFinal", "linFirst", "wd",
        "wdBnBias", "trainBn", "moms",
    ];

    /// The loss function the options name.
    fn loss(&self) -> Result<LossFunc, String> {
        let bce = LossFunc::Bce { thresh: self.thresh };
        let named = match self.loss_func.as_deref().map(|s| s.to_ascii_lowercase().replace(['_', '-'], "")) {
            None => None,
            Some(n) if n.starts_with("crossentropy") => Some(LossFunc::CrossEntropy),
            Some(n) if n.starts_with("labelsmoothing") => Some(LossFunc::LabelSmoothing { eps: 0.1 }),
            Some(n) if n.starts_with("bce") => Some(bce),
            Some(_) => {
                return Err(format!(
                    "the loss function {:?} is not one Kiln trains with: use CrossEntropyLossFlat, LabelSmoothingCrossEntropy or BCEWithLogitsLossFlat",
                    self.loss_func.as_deref().unwrap_or("")
                ));
            }
        };
        match (named, self.multi_label) {
            (None, false) => Ok(LossFunc::CrossEntropy),
            (None, true) | (Some(LossFunc::Bce { .. }), _) => Ok(bce),
            (Some(l), false) => Ok(l),
            (Some(l), true) => Err(format!("one sigmoid per class (multi-label) trains with BCEWithLogitsLossFlat, not {}", l.fastai())),
        }
    }

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
        let lin_ftrs = self.lin_ftrs.clone().unwrap_or_else(|| vec![self.hidden]);
        if lin_ftrs.is_empty() || lin_ftrs.contains(&0) {
            return Err(format!("the head's hidden widths lin_ftrs {lin_ftrs:?} must be one or more widths of at least 1 (fastai's is [512])"));
        }
        if !(0.0..1.0).contains(&self.ps) {
            return Err(format!("the head's dropout ps {} must be at least 0 and below 1 (fastai's is 0.5)", self.ps));
        }
        if !(0.0..1.0).contains(&self.wd) {
            return Err(format!("the weight decay wd {} must be at least 0 and below 1 (fastai's is 0.01)", self.wd));
        }
        if self.moms.iter().any(|m| !(0.0..1.0).contains(m)) {
            return Err(format!("the momentums {:?} must each be at least 0 and below 1 (fastai's are 0.95, 0.85, 0.95)", self.moms));
        }
        let loss_func = self.loss()?;
        let arch = match (&self.arch, self.widths) {
            (Arch::Custom(c), Some(w)) if w.iter().all(|&w| w > 0) => Arch::Custom(c.clone().with_widths(w)),
            (Arch::Custom(_), Some(w)) => return Err(format!("the tiny ResNet's widths {w:?} must all be at least 1")),
            (arch, Some(_)) => return Err(format!("widths apply to the tiny ResNet only, not {}", arch.name())),
            (arch, None) => arch.clone(),
        };
        let head = HeadOptions { ps: self.ps, concat_pool: self.concat_pool, first_bn: self.first_bn, bn_final: self.bn_final, lin_first: self.lin_first, ..HeadOptions::default() }
            .with_lin_ftrs(&lin_ftrs);
        let model = ClassifierConfig::new(arch, num_classes).with_head(head);
        Ok(LearnerConfig::new(model, self.size)
            .with_batch_size(self.batch_size)
            .with_micro_batch(self.micro_batch)
            .with_seed(self.seed)
            .with_fp16(self.fp16)
            .with_loss_func(loss_func)
            .with_train_bn(self.train_bn)
            .with_moms((self.moms[0], self.moms[1], self.moms[2]))
            .with_adam(AdamConfig { wd: self.wd, wd_bn_bias: self.wd_bn_bias, ..AdamConfig::default() })
            .with_aug(AugConfig::new(self.size).with_do_flip(self.do_flip)))
    }
}

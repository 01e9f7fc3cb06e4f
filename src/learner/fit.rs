//! fastai's training loop: `fit_one_cycle`, and `fine_tune` on top of it (a frozen one-cycle
//! for the head, then every layer with discriminative learning rates), with validation after
//! every epoch.

use web_time::Instant;

use super::{BatchStats, CancelToken, EpochStats, Event, FitReport, Hypers, LearnError, Learner, Metrics, Phase};
use crate::data::Datasets;
use crate::model::NUM_GROUPS;
use serde::Deserialize;

use crate::schedule::{Lr, OneCycle};

/// fine_tune's settings (fastai's defaults); the page's options object spells them in camelCase.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
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
    pub const KEYS: &'static [&'static str] = &["baseLr", "freezeEpochs", "lrMult", "pctStart", "div"];

    /// A sentence naming the value that is out of range, if one is.
    pub fn validate(&self) -> Result<(), String> {
        Lr::Single(self.base_lr).validate()?;
        if !(self.lr_mult >= 1.0 && self.lr_mult.is_finite()) {
            return Err(format!("lr_mult {} must be at least 1 (fastai's is 100)", self.lr_mult));
        }
        if !(0.0..=1.0).contains(&self.pct_start) {
            return Err(format!("pct_start {} must be between 0 and 1 (fastai's is 0.3)", self.pct_start));
        }
        if !(self.div > 0.0 && self.div.is_finite()) {
            return Err(format!("div {} must be above 0 (fastai's is 5)", self.div));
        }
        Ok(())
    }
    pub fn with_base_lr(mut self, base_lr: f64) -> Self {
        self.base_lr = base_lr;
        self
    }
    pub fn with_freeze_epochs(mut self, n: usize) -> Self {
        self.freeze_epochs = n;
        self
    }
}

/// fit_one_cycle's settings by hand, as the book trains after fine_tune: `lr_max` is one rate,
/// `[hi]` (fastai's `slice(hi)`) or `[lo, hi]` (`slice(lo, hi)`: discriminative rates from
/// the body's first group to the head). The page's options object spells them in camelCase.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FitOneCycle {
    #[serde(deserialize_with = "lr_max")]
    pub lr_max: Lr,
    pub pct_start: f64,
    pub div: f64,
}

impl Default for FitOneCycle {
    fn default() -> Self {
        let sched = OneCycle::default();
        Self { lr_max: Lr::Single(1e-3), pct_start: sched.pct_start, div: sched.div }
    }
}

impl FitOneCycle {
    pub const KEYS: &'static [&'static str] = &["lrMax", "pctStart", "div"];

    pub fn validate(&self) -> Result<(), String> {
        self.lr_max.validate()?;
        if !(0.0..=1.0).contains(&self.pct_start) {
            return Err(format!("pct_start {} must be between 0 and 1 (fastai's is 0.25)", self.pct_start));
        }
        if !(self.div > 0.0 && self.div.is_finite()) {
            return Err(format!("div {} must be above 0 (fastai's is 25)", self.div));
        }
        Ok(())
    }
    pub fn schedule(&self) -> OneCycle {
        OneCycle::default().with_pct_start(self.pct_start).with_div(self.div)
    }
}

fn lr_max<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Lr, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum LrMax {
        One(f64),
        Slice(Vec<f64>),
    }
    match LrMax::deserialize(d)? {
        LrMax::One(lr) => Ok(Lr::Single(lr)),
        LrMax::Slice(v) => Lr::from_slice(&v).map_err(serde::de::Error::custom),
    }
}

/// One one-cycle fit: its name in events, length, learning rates and schedule.
#[derive(Clone, Debug)]
pub struct Cycle {
    pub phase: Phase,
    pub epochs: usize,
    pub lr: Lr,
    pub sched: OneCycle,
}

impl Learner {
    /// fastai's `fit_one_cycle(epochs, lr_max)`, reporting every batch and epoch to `on_event`.
    pub async fn fit_one_cycle(&mut self, dls: &Datasets, epochs: usize, lr: Lr, sched: &OneCycle, cancel: &CancelToken, on_event: &mut dyn FnMut(&Event)) -> Result<FitReport, LearnError> {
        let cycle = Cycle { phase: Phase::Fit, epochs, lr, sched: sched.clone() };
        self.fit_cycle(&cycle, dls, cancel, on_event).await
    }

    /// fastai's `fine_tune`, as its source reads:
    /// `freeze(); fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99);`
    /// `base_lr /= 2; unfreeze(); fit_one_cycle(epochs, slice(base_lr/lr_mult, base_lr), pct_start, div)`.
    pub async fn fine_tune(&mut self, dls: &Datasets, epochs: usize, opts: &FineTune, cancel: &CancelToken, on_event: &mut dyn FnMut(&Event)) -> Result<FitReport, LearnError> {
        opts.validate().map_err(LearnError::Config)?;
        let mut report = FitReport { epochs: Vec::new(), cancelled: false };
        self.freeze();
        if opts.freeze_epochs > 0 {
            let frozen = Cycle { phase: Phase::Frozen, epochs: opts.freeze_epochs, lr: Lr::Slice(opts.base_lr), sched: OneCycle::default().with_pct_start(0.99) };
            report = self.fit_cycle(&frozen, dls, cancel, on_event).await?;
            if report.cancelled {
                return Ok(report);
            }
        }
        let base_lr = opts.base_lr / 2.0;
        self.unfreeze();
        let unfrozen = Cycle {
            phase: Phase::Unfrozen,
            epochs,
            lr: Lr::Range(base_lr / opts.lr_mult, base_lr),
            sched: OneCycle::default().with_pct_start(opts.pct_start).with_div(opts.div),
        };
        let second = self.fit_cycle(&unfrozen, dls, cancel, on_event).await?;
        report.epochs.extend(second.epochs);
        report.cancelled = second.cancelled;
        Ok(report)
    }

    /// One one-cycle fit, validated after every epoch.
    pub async fn fit_cycle(&mut self, cycle: &Cycle, dls: &Datasets, cancel: &CancelToken, on_event: &mut dyn FnMut(&Event)) -> Result<FitReport, LearnError> {
        cycle.lr.validate().map_err(LearnError::Config)?;
        self.check_data(dls)?;
        if cycle.epochs == 0 {
            return Err(LearnError::Config("epochs must be at least 1".into()));
        }
        let lr_max = cycle.lr.per_group(NUM_GROUPS);
        // The learner's momentums (fastai's `Learner(moms=…)`) drive every cycle.
        let cycle = &Cycle { sched: OneCycle { moms: self.config.moms, ..cycle.sched.clone() }, ..cycle.clone() };
        let per_epoch = self.loader.batches_per_epoch(dls.train.len());
        let total = per_epoch * cycle.epochs;
        let start = Instant::now();
        let mut smooth = Smoother::default();
        let mut report = FitReport { epochs: Vec::new(), cancelled: false };
        let mut iter = 0;
        for epoch in 0..cycle.epochs {
            let t0 = Instant::now();
            let batches = self.loader.epoch(dls.train.len(), &mut self.rng);
            for batch in &batches {
                // Lets the browser deliver a Cancel pressed during the last batch, validation or
                // the previous phase before this batch starts.
                crate::device::yield_now().await;
                if cancel.is_cancelled() {
                    report.cancelled = true;
                    return Ok(report);
                }
                let p = iter as f64 / total as f64;
                let hypers = Hypers { lrs: lr_max.iter().map(|&m| cycle.sched.lr(m, p)).collect(), mom: cycle.sched.mom(p) };
                if let Some(loss) = self.train_batch(dls, batch, &hypers, on_event).await? {
                    smooth.add(loss);
                    let elapsed_s = start.elapsed().as_secs_f64();
                    on_event(&Event::Batch(BatchStats { phase: cycle.phase, epoch, iter, total_iters: total, loss, smooth_loss: smooth.value(), hypers, elapsed_s }));
                }
                iter += 1;
            }
            let metrics = self.validate(dls, on_event).await?;
            let number = self.history.len();
            let stats = EpochStats { phase: cycle.phase, epoch, number, train_loss: smooth.value(), metrics, seconds: t0.elapsed().as_secs_f64() };
            self.history.push(stats.clone());
            on_event(&Event::Epoch(stats.clone()));
            report.epochs.push(stats);
            if let Some(save) = self.snapshot_each_epoch {
                // Awaited here, so the snapshot leaves before the next epoch starts.
                on_event(&Event::Snapshot(save(self).await.map_err(LearnError::Read)?));
            }
        }
        Ok(report)
    }

    /// fastai's metrics over the validation set: loss, accuracy and error rate.
    pub async fn validate(&mut self, dls: &Datasets, on_event: &mut dyn FnMut(&Event)) -> Result<Metrics, LearnError> {
        let preds = self.get_preds_on(dls, &dls.valid, on_event).await?;
        let loss = preds.losses.iter().sum::<f32>() / preds.losses.len().max(1) as f32;
        Ok(Metrics::new(loss, preds.accuracy()))
    }
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

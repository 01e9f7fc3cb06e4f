//! What a fit tells its caller: batch and epoch events, the report, errors, and Cancel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::data::Skipped;

/// Which fit a batch or epoch belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// fit_one_cycle.
    Fit,
    /// fine_tune's first, head-only phase.
    Frozen,
    /// fine_tune's second phase, every layer training.
    Unfrozen,
    LrFind,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Fit => "fit",
            Phase::Frozen => "frozen",
            Phase::Unfrozen => "unfrozen",
            Phase::LrFind => "lr_find",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
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

/// The hyper-parameters of one optimiser step: a learning rate per parameter group, and
/// Adam's β1 (the one-cycle momentum).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Hypers {
    pub lrs: Vec<f64>,
    pub mom: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchStats {
    pub phase: Phase,
    pub epoch: usize,
    /// Batch number over the whole fit, from 0.
    pub iter: usize,
    pub total_iters: usize,
    pub loss: f32,
    /// fastai's smoothed training loss (EMA, β = 0.98, debiased).
    pub smooth_loss: f32,
    #[serde(flatten)]
    pub hypers: Hypers,
    pub elapsed_s: f64,
}

/// fastai's validation metrics: the loss, accuracy and error rate over the validation set.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    #[serde(deserialize_with = "nan_if_null")]
    pub valid_loss: f32,
    #[serde(deserialize_with = "nan_if_null")]
    pub accuracy: f32,
    #[serde(deserialize_with = "nan_if_null")]
    pub error_rate: f32,
}

/// JSON has no NaN (serde_json writes it as null): a saved history reads it back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    Ok(<Option<f32> as serde::Deserialize>::deserialize(d)?.unwrap_or(f32::NAN))
}

impl Metrics {
    pub fn new(valid_loss: f32, accuracy: f32) -> Self {
        Self { valid_loss, accuracy, error_rate: 1.0 - accuracy }
    }
}

/// A row of fastai's epoch table.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpochStats {
    pub phase: Phase,
    /// The epoch within its fit, from 0.
    pub epoch: usize,
    /// The epoch within the model's whole history (every fit it had, across saves), from 0:
    /// training by hand after fine_tune continues the table's numbering.
    #[serde(default)]
    pub number: usize,
    #[serde(deserialize_with = "nan_if_null")]
    pub train_loss: f32,
    #[serde(flatten)]
    pub metrics: Metrics,
    pub seconds: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Batch(BatchStats),
    Epoch(EpochStats),
    /// A file passed the header check but failed to decode; it is left out of its batch.
    Skipped(Skipped),
    /// The model after an epoch, saved by the learner's `snapshot_each_epoch`: the page keeps
    /// the last one, so a worker that dies (out of memory, a lost GPU) restarts with it.
    #[serde(skip)]
    Snapshot(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("{0}")]
    Config(String),
    /// The dataset cannot train this model (a class without training images).
    #[error("{0}")]
    Data(String),
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
#[serde(rename_all = "camelCase")]
pub struct FitReport {
    pub epochs: Vec<EpochStats>,
    pub cancelled: bool,
}

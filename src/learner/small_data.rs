//! Settings for a small training set. fastai's defaults (batch 64, `fine_tune(1)`) assume
//! thousands of photos: with `drop_last`, 116 training photos make one optimiser step an epoch,
//! two in all, and the model barely moves. A class's camera set or a pet owner's folder is tens
//! to hundreds of photos, so Kiln proposes a smaller batch and more epochs there, and says so.

/// Optimiser steps a fine_tune should take at least.
pub const MIN_STEPS: usize = 30;
/// fastai's defaults, which the proposal is measured against.
const FASTAI_BATCH: usize = 64;
const FASTAI_EPOCHS: usize = 1;

/// Settings for fine_tune on a small training set, and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    pub batch_size: usize,
    pub freeze_epochs: usize,
    /// fine_tune's unfrozen epochs.
    pub epochs: usize,
    /// Optimiser steps in all with these settings, and with fastai's defaults.
    pub steps: usize,
    pub fastai_steps: usize,
    /// One sentence for the user.
    pub why: String,
}

/// Steps of fine_tune(epochs) with one frozen epoch, `drop_last` as fastai does.
fn steps(n_train: usize, batch_size: usize, epochs: usize) -> usize {
    (n_train / batch_size) * (1 + epochs)
}

/// A proposal when fastai's defaults would take fewer than [`MIN_STEPS`] steps on `n_train`
/// training photos; `None` when they are fine (or there is nothing to train on).
pub fn propose(n_train: usize) -> Option<Proposal> {
    let fastai_steps = steps(n_train, FASTAI_BATCH, FASTAI_EPOCHS);
    if fastai_steps >= MIN_STEPS || n_train < 2 {
        return None;
    }
    // The largest batch (64, 32, 16 or 8) that still gives four steps an epoch; BatchNorm wants
    // a few images a batch, so never below 8 unless there are fewer photos than that.
    let batch_size = [32, 16, 8].into_iter().find(|&b| n_train / b >= 4).unwrap_or(8).min(n_train.next_power_of_two() / 2).max(2);
    let per_epoch = n_train / batch_size;
    let epochs = (MIN_STEPS.div_ceil(per_epoch) - 1).clamp(1, 19);
    let steps = steps(n_train, batch_size, epochs);
    let why = format!(
        "{n_train} training photos: fastai's defaults (batch {FASTAI_BATCH}, fine_tune({FASTAI_EPOCHS})) take {fastai_steps} optimiser step{} in all, too few to learn from; batch {batch_size} and fine_tune({epochs}) take {steps}.",
        if fastai_steps == 1 { "" } else { "s" }
    );
    Some(Proposal { batch_size, freeze_epochs: 1, epochs, steps, fastai_steps, why })
}

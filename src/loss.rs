//! The loss functions fastai's vision learners use: cross-entropy (a stable log_softmax, then
//! the negative log likelihood of the target class) for one label a photo, and binary
//! cross-entropy with one sigmoid per class for "none of these" and several labels a photo.

use burn::tensor::{Device, Int, Tensor, TensorData, activation};

/// What the learner minimises (fastai's `loss_func`), kept in `.kiln` headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LossFunc {
    /// `CrossEntropyLossFlat`: a softmax over the classes, so every photo is one of them.
    #[default]
    CrossEntropy,
    /// `BCEWithLogitsLossFlat(thresh)`: one sigmoid per class, and a class is predicted where
    /// its probability exceeds `thresh`, so a photo can be none of them.
    Bce { thresh: f32 },
    /// `LabelSmoothingCrossEntropy(eps)`: cross-entropy against targets that give `eps` of the
    /// probability to the classes evenly, so the model is not pushed to certainty.
    LabelSmoothing { eps: f32 },
}

impl LossFunc {
    /// The threshold of a one-sigmoid-per-class model; None for softmax.
    pub fn thresh(&self) -> Option<f32> {
        match *self {
            LossFunc::CrossEntropy | LossFunc::LabelSmoothing { .. } => None,
            LossFunc::Bce { thresh } => Some(thresh),
        }
    }

    /// fastai's name for it, as a notebook writes it.
    pub fn fastai(&self) -> String {
        match *self {
            LossFunc::CrossEntropy => "CrossEntropyLossFlat()".into(),
            LossFunc::Bce { thresh } => format!("BCEWithLogitsLossFlat(thresh={thresh})"),
            LossFunc::LabelSmoothing { eps } => format!("LabelSmoothingCrossEntropy(eps={eps})"),
        }
    }

    /// The batch's mean loss, shape [1]; `targets` are each photo's classes (one for
    /// cross-entropy, any number for BCE).
    pub fn mean(&self, logits: Tensor<2>, targets: &[Vec<usize>]) -> Tensor<1> {
        let device = logits.device();
        match *self {
            LossFunc::CrossEntropy => cross_entropy(logits, class_tensor(targets, &device)),
            LossFunc::LabelSmoothing { eps } => label_smoothing_per_item(log_softmax(logits), class_tensor(targets, &device), eps).mean(),
            // fastai's flat BCE averages over every (photo, class) pair: the mean of the
            // per-photo means, as every photo has the same classes.
            LossFunc::Bce { .. } => {
                let k = logits.dims()[1];
                bce_hot_per_item(logits, hot_tensor(targets, k, &device)).mean()
            }
        }
    }

    /// Each photo's probabilities ([N, classes]) and loss ([N]).
    pub fn probs_and_losses(&self, logits: Tensor<2>, targets: &[Vec<usize>]) -> (Tensor<2>, Tensor<1>) {
        let device = logits.device();
        match *self {
            LossFunc::CrossEntropy => {
                let logp = log_softmax(logits);
                (logp.clone().exp(), nll_per_item(logp, class_tensor(targets, &device)))
            }
            LossFunc::LabelSmoothing { eps } => {
                let logp = log_softmax(logits);
                (logp.clone().exp(), label_smoothing_per_item(logp, class_tensor(targets, &device), eps))
            }
            LossFunc::Bce { .. } => {
                let k = logits.dims()[1];
                (activation::sigmoid(logits.clone()), bce_hot_per_item(logits, hot_tensor(targets, k, &device)))
            }
        }
    }

    /// Probabilities per class: a softmax, or one sigmoid each.
    pub fn probs(&self, logits: Tensor<2>) -> Tensor<2> {
        match self {
            LossFunc::CrossEntropy | LossFunc::LabelSmoothing { .. } => activation::softmax(logits, 1),
            LossFunc::Bce { .. } => activation::sigmoid(logits),
        }
    }
}

/// log(softmax(x)) along dim 1, computed without ever taking log of a softmax.
pub fn log_softmax(logits: Tensor<2>) -> Tensor<2> {
    let max = logits.clone().max_dim(1).detach();
    let shifted = logits - max;
    let lse = shifted.clone().exp().sum_dim(1).log();
    shifted - lse
}

/// −log p(target) per item, shape [N].
pub fn nll_per_item(log_probs: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let n = targets.dims()[0];
    log_probs.gather(1, targets.reshape([n, 1])).reshape([n]).neg()
}

/// fastai's LabelSmoothingCrossEntropy per item, shape [N]: eps · mean over the classes of
/// −log p, plus (1 − eps) · −log p(target).
pub fn label_smoothing_per_item(log_probs: Tensor<2>, targets: Tensor<1, Int>, eps: f32) -> Tensor<1> {
    let [n, k] = log_probs.dims();
    let smooth = log_probs.clone().sum_dim(1).reshape([n]).neg().div_scalar(k as f32);
    smooth.mul_scalar(eps) + nll_per_item(log_probs, targets).mul_scalar(1.0 - eps)
}

/// Mean cross-entropy over the batch, shape [1].
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    nll_per_item(log_softmax(logits), targets).mean()
}

/// Binary cross-entropy with logits against the one-hot targets, averaged over the classes:
/// one value a photo, shape [N].
pub fn bce_per_item(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let k = logits.dims()[1];
    bce_hot_per_item(logits, targets.one_hot::<2>(k).float())
}

/// Binary cross-entropy with logits against multi-hot targets `y` ([N, classes] of 0/1),
/// averaged over the classes: one value a photo, shape [N]. Written as
/// max(x, 0) − x·y + log(1 + e^−|x|), which never takes the log of a sigmoid that rounded to
/// 0 or 1.
pub fn bce_hot_per_item(logits: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
    let n = logits.dims()[0];
    let per_class = logits.clone().clamp_min(0.0) - logits.clone() * y + logits.abs().neg().exp().add_scalar(1.0).log();
    per_class.mean_dim(1).reshape([n])
}

/// Each photo's (first) class, shape [N]: cross-entropy's targets.
pub fn class_tensor(targets: &[Vec<usize>], device: &Device) -> Tensor<1, Int> {
    let t: Vec<i64> = targets.iter().map(|t| t.first().copied().unwrap_or(0) as i64).collect();
    Tensor::from_data(TensorData::new(t, [targets.len()]), device)
}

/// Each photo's classes as a row of 0/1, shape [N, k]: BCE's targets.
pub fn hot_tensor(targets: &[Vec<usize>], k: usize, device: &Device) -> Tensor<2> {
    let mut y = vec![0f32; targets.len() * k];
    for (i, t) in targets.iter().enumerate() {
        for &c in t {
            y[i * k + c] = 1.0;
        }
    }
    Tensor::from_data(TensorData::new(y, [targets.len(), k]), device)
}

//! Cross-entropy: a stable log_softmax (row max subtracted, logsumexp) then the negative log
//! likelihood of the target class, averaged over the batch.

use burn::tensor::{Int, Tensor};

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

/// Mean cross-entropy over the batch, shape [1].
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    nll_per_item(log_softmax(logits), targets).mean()
}

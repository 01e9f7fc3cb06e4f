//! fastai's `DataLoader` for training: a fresh shuffle every epoch, the last partial batch
//! dropped (`drop_last`, kept when it is the only batch), and each batch cut into micro-batches
//! that fit the device's memory. The learner accumulates gradients over a batch's
//! micro-batches, so the optimiser and the schedules still see `batch_size` images a step.

use rand::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataLoader {
    pub batch_size: usize,
    /// Images per forward/backward pass; `batch_size` when a whole batch fits in memory.
    pub micro_batch: usize,
}

impl DataLoader {
    pub fn new(batch_size: usize) -> Self {
        Self { batch_size, micro_batch: batch_size }
    }

    /// At most `m` images a pass, and at least 2 (BatchNorm needs two to normalise).
    pub fn with_micro_batch(mut self, m: usize) -> Self {
        self.micro_batch = m.clamp(2.min(self.batch_size), self.batch_size.max(1));
        self
    }

    /// Passes per optimiser step for a full batch.
    pub fn accumulation_steps(&self) -> usize {
        self.batch_size.div_ceil(self.micro_batch)
    }

    pub fn batches_per_epoch(&self, n: usize) -> usize {
        if n >= self.batch_size { n / self.batch_size } else { 1 }
    }

    /// One epoch's batches: indices into the training set, freshly shuffled.
    pub fn epoch(&self, n: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
        let idx = super::shuffled(n, rng);
        let per_epoch = self.batches_per_epoch(n);
        idx.chunks(self.batch_size.max(1)).take(per_epoch).map(|c| c.to_vec()).collect()
    }

    /// A batch cut into near-equal micro-batches of at most `micro_batch` images, so none is
    /// left with a single image while the batch has more (64 at 24 → 22 + 21 + 21).
    pub fn micro_batches<'a>(&self, batch: &'a [usize]) -> Vec<&'a [usize]> {
        let k = batch.len().div_ceil(self.micro_batch.max(1)).max(1);
        let (base, extra) = (batch.len() / k, batch.len() % k);
        let mut out = Vec::with_capacity(k);
        let mut start = 0;
        for i in 0..k {
            let len = base + usize::from(i < extra);
            out.push(&batch[start..start + len]);
            start += len;
        }
        out
    }
}

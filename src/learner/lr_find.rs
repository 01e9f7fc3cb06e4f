//! fastai's learning-rate finder: an exponentially growing LR per mini-batch, the smoothed loss
//! recorded, stopped at divergence; then the model and optimiser are put back as they were.
//! Suggestions (minimum, steep, valley, slide) follow fastai's `lr_find` suggestion functions.

use burn::module::Module;

use crate::data::Datasets;
use super::{BatchStats, CancelToken, Event, Hypers, LearnError, Learner, Phase, Smoother};
use crate::model::NUM_GROUPS;

/// lr_find's settings (fastai's defaults); the page's options object spells them in camelCase.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LrFindConfig {
    pub start_lr: f64,
    pub end_lr: f64,
    pub num_it: usize,
    pub stop_div: bool,
}

impl LrFindConfig {
    pub const KEYS: &'static [&'static str] = &["startLr", "endLr", "numIt", "stopDiv"];
}

impl Default for LrFindConfig {
    fn default() -> Self {
        Self { start_lr: 1e-7, end_lr: 10.0, num_it: 100, stop_div: true }
    }
}

/// A suggested learning rate and the point on the curve that marks it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    pub lr: f64,
    /// Where to mark it on the plot: (lr, loss).
    pub point: (f64, f64),
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Suggestions {
    pub minimum: Suggestion,
    pub steep: Suggestion,
    pub valley: Suggestion,
    pub slide: Suggestion,
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LrFind {
    /// Every LR tried and its smoothed loss (the full record, for the plot).
    pub lrs: Vec<f64>,
    pub losses: Vec<f64>,
    /// None when too few points were recorded to suggest anything.
    pub suggestions: Option<Suggestions>,
    /// Cancel stopped the sweep: the record holds the points before it.
    pub cancelled: bool,
}

/// The part of the record fastai suggests from: `[num_it/10 .. len−5]`, cut at the first NaN.
pub fn suggestion_window(lrs: &[f64], losses: &[f64], num_it: usize) -> (Vec<f64>, Vec<f64>) {
    let end = lrs.len().saturating_sub(5);
    let start = (num_it / 10).min(end);
    let mut l: Vec<f64> = lrs[start..end].to_vec();
    let mut s: Vec<f64> = losses[start..end].to_vec();
    if let Some(nan) = s.iter().position(|v| v.is_nan()) {
        l.truncate(nan);
        s.truncate(nan);
    }
    (l, s)
}

/// LR at the lowest loss, divided by 10.
pub fn minimum(lrs: &[f64], losses: &[f64]) -> Suggestion {
    let i = argmin(losses);
    Suggestion { lr: lrs[i] / 10.0, point: (lrs[i], losses[i]) }
}

/// LR where the loss falls fastest against log(lr).
pub fn steep(lrs: &[f64], losses: &[f64]) -> Suggestion {
    let grads: Vec<f64> = (1..losses.len()).map(|i| (losses[i] - losses[i - 1]) / (lrs[i].ln() - lrs[i - 1].ln())).collect();
    let i = argmin(&grads);
    Suggestion { lr: lrs[i], point: (lrs[i], losses[i]) }
}

/// fastai's valley: the longest decreasing stretch of the curve (longest decreasing
/// subsequence ending at each point, as fastai computes it), and the point about halfway along.
pub fn valley(lrs: &[f64], losses: &[f64]) -> Suggestion {
    let n = losses.len();
    // Signed, as in fastai's Python: a stretch decreasing from the first point starts at -1.
    let (mut max_start, mut max_end) = (0isize, 0usize);
    let mut lds = vec![1usize; n];
    for i in 1..n {
        for j in 0..i {
            if losses[i] < losses[j] && lds[i] < lds[j] + 1 {
                lds[i] = lds[j] + 1;
            }
            if lds[max_end] < lds[i] {
                max_end = i;
                max_start = max_end as isize - lds[max_end] as isize;
            }
        }
    }
    let sections = (max_end as isize - max_start) as f64 / 3.0;
    let idx = max_start + sections as isize + (sections / 2.0) as isize;
    // A negative index counts from the end, as Python's does.
    let idx = if idx < 0 { (n as isize + idx) as usize } else { idx as usize };
    Suggestion { lr: lrs[idx], point: (lrs[idx], losses[idx]) }
}

/// fastai's slide: walk a 15-point window left from the end until the loss gradient at both
/// ends differs by at most 0.005.
pub fn slide(lrs: &[f64], losses: &[f64]) -> Suggestion {
    let (lr_diff, thresh) = (15isize, 0.005);
    let n = losses.len() as isize;
    let grad = gradient(losses);
    let at = |i: isize| (i + n) as usize; // numpy's negative indices
    let mut r = -1isize;
    let mut l = r - lr_diff;
    let mut local_min_lr = lrs[at(l.max(-n))];
    while l >= -n && (grad[at(r)] - grad[at(l)]).abs() > thresh {
        local_min_lr = lrs[at(l)];
        r -= 1;
        l -= 1;
    }
    let loss = interp(local_min_lr.log10(), &lrs.iter().map(|v| v.log10()).collect::<Vec<_>>(), losses);
    Suggestion { lr: local_min_lr, point: (local_min_lr, loss) }
}

pub fn suggest(lrs: &[f64], losses: &[f64], num_it: usize) -> Option<Suggestions> {
    let (l, s) = suggestion_window(lrs, losses, num_it);
    if l.len() < 2 {
        return None;
    }
    Some(Suggestions { minimum: minimum(&l, &s), steep: steep(&l, &s), valley: valley(&l, &s), slide: slide(&l, &s) })
}

fn argmin(v: &[f64]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, x)| if *x < v[best] { i } else { best })
}

/// numpy.gradient with unit spacing: central differences inside, one-sided at the ends.
fn gradient(v: &[f64]) -> Vec<f64> {
    let n = v.len();
    (0..n)
        .map(|i| match i {
            0 => v[1] - v[0],
            i if i == n - 1 => v[n - 1] - v[n - 2],
            i => (v[i + 1] - v[i - 1]) / 2.0,
        })
        .collect()
}

/// numpy.interp for increasing `xs`.
fn interp(x: f64, xs: &[f64], ys: &[f64]) -> f64 {
    if x <= xs[0] {
        return ys[0];
    }
    for i in 1..xs.len() {
        if x <= xs[i] {
            let t = (x - xs[i - 1]) / (xs[i] - xs[i - 1]);
            return ys[i - 1] + t * (ys[i] - ys[i - 1]);
        }
    }
    ys[ys.len() - 1]
}

impl Learner {
    /// fastai's `lr_find`. The model, the optimiser state and the loss scale are restored afterwards.
    pub async fn lr_find(&mut self, dls: &Datasets, config: &LrFindConfig, cancel: &CancelToken, on_event: &mut dyn FnMut(&Event)) -> Result<LrFind, LearnError> {
        if !(config.start_lr > 0.0 && config.end_lr > config.start_lr && config.num_it >= 2) {
            return Err(LearnError::Config(format!(
                "lr_find needs 0 < start_lr < end_lr and num_it ≥ 2 (got {}, {}, {})",
                config.start_lr, config.end_lr, config.num_it
            )));
        }
        self.check_data(dls)?;
        // `valid()` syncs BatchNorm's running statistics into a copy that the steps below cannot
        // touch (a plain clone shares them); `train()` turns it back into the training model.
        let (model, opt, scaler) = (self.model.valid(), self.opt.clone(), self.scaler.clone());
        let result = self.record_lr_find(dls, config, cancel, on_event).await;
        self.model = model.train();
        self.opt = opt;
        self.scaler = scaler;
        result
    }

    /// The finder's steps and record, leaving the model trained by them.
    async fn record_lr_find(&mut self, dls: &Datasets, config: &LrFindConfig, cancel: &CancelToken, on_event: &mut dyn FnMut(&Event)) -> Result<LrFind, LearnError> {
        let per_epoch = self.loader.batches_per_epoch(dls.train.len());
        let start = web_time::Instant::now();
        let (mut lrs, mut losses) = (Vec::new(), Vec::new());
        let mut smooth = Smoother::default();
        let mut best = f64::INFINITY;
        let mut batches = Vec::new();
        let mut cancelled = false;
        for iter in 0..config.num_it {
            if cancel.is_cancelled() {
                cancelled = true;
                break;
            }
            let b = iter % per_epoch;
            if b == 0 {
                batches = self.loader.epoch(dls.train.len(), &mut self.rng);
            }
            let lr = config.start_lr * (config.end_lr / config.start_lr).powf(iter as f64 / config.num_it as f64);
            let hypers = Hypers { lrs: vec![lr; NUM_GROUPS], mom: 0.9 };
            let loss = match self.train_batch(dls, &batches[b], &hypers, on_event).await {
                Ok(Some(loss)) => loss,
                Ok(None) => continue,
                // fastai stops at divergence; a non-finite loss is the extreme case of it.
                Err(LearnError::Diverged(_) | LearnError::DivergedFp16(_)) if config.stop_div => break,
                Err(LearnError::Diverged(loss) | LearnError::DivergedFp16(loss)) => {
                    lrs.push(lr);
                    losses.push(loss as f64);
                    break;
                }
                Err(e) => return Err(e),
            };
            smooth.add(loss);
            let s = smooth.value() as f64;
            lrs.push(lr);
            losses.push(s);
            on_event(&Event::Batch(BatchStats {
                phase: Phase::LrFind,
                epoch: iter / per_epoch,
                iter,
                total_iters: config.num_it,
                loss,
                smooth_loss: s as f32,
                hypers,
                elapsed_s: start.elapsed().as_secs_f64(),
            }));
            crate::device::yield_now().await;
            if s < best {
                best = s;
            }
            if config.stop_div && (s > 4.0 * best || s.is_nan()) {
                break;
            }
        }
        let suggestions = suggest(&lrs, &losses, config.num_it);
        Ok(LrFind { lrs, losses, suggestions, cancelled })
    }
}

//! Hyper-parameter schedules: fit_one_cycle's LR and momentum, and discriminative LRs.

use std::f64::consts::PI;

/// Cosine segment from `a` to `b` at position `t` in [0, 1] (fastai's SchedCos).
pub fn cos_anneal(a: f64, b: f64, t: f64) -> f64 {
    a + (1.0 + (PI * (1.0 - t)).cos()) * (b - a) / 2.0
}

/// fit_one_cycle's settings (fastai's defaults).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OneCycle {
    pub div: f64,
    pub div_final: f64,
    pub pct_start: f64,
    pub moms: (f64, f64, f64),
}

impl Default for OneCycle {
    fn default() -> Self {
        Self { div: 25.0, div_final: 1e5, pct_start: 0.25, moms: (0.95, 0.85, 0.95) }
    }
}

impl OneCycle {
    pub fn with_pct_start(mut self, pct_start: f64) -> Self {
        self.pct_start = pct_start;
        self
    }
    pub fn with_div(mut self, div: f64) -> Self {
        self.div = div;
        self
    }

    /// Which phase and where in it, for progress `p` in [0, 1] (fastai's combine_scheds).
    fn phase(&self, p: f64) -> (bool, f64) {
        if p < self.pct_start {
            (true, p / self.pct_start)
        } else {
            (false, ((p - self.pct_start) / (1.0 - self.pct_start)).min(1.0))
        }
    }

    /// The learning rate at progress `p` for a group whose peak is `lr_max`.
    pub fn lr(&self, lr_max: f64, p: f64) -> f64 {
        match self.phase(p) {
            (true, t) => cos_anneal(lr_max / self.div, lr_max, t),
            (false, t) => cos_anneal(lr_max, lr_max / self.div_final, t),
        }
    }

    /// Adam's beta1 at progress `p`.
    pub fn mom(&self, p: f64) -> f64 {
        let (a, b, c) = self.moms;
        match self.phase(p) {
            (true, t) => cos_anneal(a, b, t),
            (false, t) => cos_anneal(b, c, t),
        }
    }
}

/// A learning rate for every parameter group: one value, or fastai's `slice`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Lr {
    /// The same rate for every group.
    Single(f64),
    /// `slice(hi)`: hi/10 for every group but the last, hi for the last.
    Slice(f64),
    /// `slice(lo, hi)`: geometric spacing from lo to hi (fastai's even_mults).
    Range(f64, f64),
}

impl Lr {
    pub fn per_group(&self, n: usize) -> Vec<f64> {
        match *self {
            Lr::Single(lr) => vec![lr; n],
            Lr::Slice(hi) => (0..n).map(|i| if i + 1 == n { hi } else { hi / 10.0 }).collect(),
            Lr::Range(lo, hi) => {
                if n == 1 {
                    return vec![hi];
                }
                let step = (hi / lo).powf(1.0 / (n - 1) as f64);
                (0..n).map(|i| lo * step.powi(i as i32)).collect()
            }
        }
    }

    /// fastai's `slice(hi)` from `[hi]`, `slice(lo, hi)` from `[lo, hi]`.
    pub fn from_slice(v: &[f64]) -> Result<Lr, String> {
        match *v {
            [hi] => Ok(Lr::Slice(hi)),
            [lo, hi] => Ok(Lr::Range(lo, hi)),
            _ => Err(format!("a learning-rate slice has one or two values (hi, or lo and hi), not {}", v.len())),
        }
    }

    /// The CLI's spelling: `0.001` is one rate for every group, `1e-6,1e-4` is `slice(1e-6, 1e-4)`.
    pub fn parse(text: &str) -> Result<Lr, String> {
        let values: Vec<f64> = text
            .split(',')
            .map(|v| v.trim().parse::<f64>().map_err(|_| format!("learning rate {v:?} is not a number (write e.g. 1e-3, or LO,HI such as 1e-6,1e-4)")))
            .collect::<Result<_, _>>()?;
        let lr = if let [one] = *values { Lr::Single(one) } else { Lr::from_slice(&values)? };
        lr.validate()?;
        Ok(lr)
    }

    pub fn validate(&self) -> Result<(), String> {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        match *self {
            Lr::Single(v) | Lr::Slice(v) if ok(v) => Ok(()),
            Lr::Range(lo, hi) if ok(lo) && ok(hi) && lo <= hi => Ok(()),
            other => Err(format!("learning rate {other:?} must be positive and finite (and lo ≤ hi for a range)")),
        }
    }
}

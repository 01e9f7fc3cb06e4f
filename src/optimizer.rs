//! fastai's Adam: mom 0.9 (driven by fit_one_cycle), sqr_mom 0.99, eps 1e-5, decoupled weight
//! decay 0.01 (`p *= 1 − lr·wd`), none on BatchNorm and bias parameters; one learning rate per
//! parameter group. Written as a module mapper because burn's Adam has a fixed beta1 and one
//! weight decay for all parameters.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use crate::model::ParamPath;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    pub sqr_mom: f64,
    pub eps: f64,
    pub wd: f64,
    /// fastai's `wd_bn_bias`: weight decay on BatchNorm and bias parameters too.
    #[serde(default)]
    pub wd_bn_bias: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self { sqr_mom: 0.99, eps: 1e-5, wd: 0.01, wd_bn_bias: false }
    }
}

#[derive(Clone)]
struct State {
    grad_avg: Tensor<1>,
    sqr_avg: Tensor<1>,
    step: i32,
}

/// Adam with per-parameter state kept between steps. Cloning it snapshots the state cheaply
/// (tensors are immutable handles), which lr_find uses to restore it.
#[derive(Clone, Default)]
pub struct Adam {
    pub config: AdamConfig,
    states: HashMap<ParamId, State>,
}

impl Adam {
    pub fn new(config: AdamConfig) -> Self {
        Self { config, states: HashMap::new() }
    }

    /// One update of every parameter that has a gradient, with `lrs[group]` and beta1 = `mom`.
    pub fn step<M: Module>(&mut self, module: M, grads: GradientsParams, lrs: &[f64], mom: f64) -> M {
        self.step_scaled(module, grads, lrs, mom, 1.0)
    }

    /// [`Adam::step`] with gradients multiplied by `grad_scale` first (mixed precision divides
    /// out its loss scale here).
    pub fn step_scaled<M: Module>(&mut self, module: M, grads: GradientsParams, lrs: &[f64], mom: f64, grad_scale: f64) -> M {
        let mut mapper = AdamMapper { adam: self, grads, lrs, mom, grad_scale, path: ParamPath::default() };
        module.map(&mut mapper)
    }

    /// The dtypes of every state tensor (both moments of every parameter): f32 always, also
    /// under mixed precision.
    pub fn state_dtypes(&self) -> Vec<burn::tensor::DType> {
        self.states.values().flat_map(|s| [s.grad_avg.dtype(), s.sqr_avg.dtype()]).collect()
    }

    pub fn reset(&mut self) {
        self.states.clear();
    }

    /// Every parameter's state as (id, step, grad_avg, sqr_avg), sorted by id. Reads tensors
    /// synchronously, so it is for native checks (the browser forbids blocking reads).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn state_snapshot(&self) -> Vec<(String, i32, Vec<f32>, Vec<f32>)> {
        let read = |t: &Tensor<1>| t.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
        let mut out: Vec<_> = self.states.iter().map(|(id, s)| (id.to_string(), s.step, read(&s.grad_avg), read(&s.sqr_avg))).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

struct AdamMapper<'a> {
    adam: &'a mut Adam,
    grads: GradientsParams,
    lrs: &'a [f64],
    mom: f64,
    grad_scale: f64,
    path: ParamPath,
}

impl ModuleMapper for AdamMapper<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let require_grad = tensor.is_require_grad();
        let shape = tensor.shape();
        let numel = shape.num_elements();
        let p = tensor.inner().reshape([numel]);
        let g = grad.reshape([numel]);
        let g = if self.grad_scale == 1.0 { g } else { g * self.grad_scale };

        let cfg = &self.adam.config;
        let lr = self.lrs[self.path.group().min(self.lrs.len() - 1)];
        let wd = if !cfg.wd_bn_bias && (self.path.in_batchnorm() || self.path.name() == "bias") { 0.0 } else { cfg.wd };

        let state = match self.adam.states.remove(&id) {
            Some(s) => s,
            None => State { grad_avg: p.zeros_like(), sqr_avg: p.zeros_like(), step: 0 },
        };
        let step = state.step + 1;
        let k = Coefficients {
            mom: self.mom,
            sqr_mom: cfg.sqr_mom,
            debias1: 1.0 - self.mom.powi(step),
            debias2: 1.0 - cfg.sqr_mom.powi(step),
            decay: if wd > 0.0 { Some(1.0 - lr * wd) } else { None },
            lr,
            eps: cfg.eps,
        };
        let fused = numel >= FUSED_MIN && [&p, &g, &state.grad_avg, &state.sqr_avg].iter().all(|t| on_cpu(t));
        let (p, grad_avg, sqr_avg) = if fused {
            k.fused(p, g, state.grad_avg, state.sqr_avg)
        } else {
            k.tensor_ops(p, g, state.grad_avg, state.sqr_avg)
        };
        self.adam.states.insert(id, State { grad_avg, sqr_avg, step });

        let mut p = Tensor::from_inner(p.reshape(shape));
        if require_grad {
            p = p.require_grad();
        }
        Param::from_mapped_value(id, p, mapper)
    }
}

/// Smaller tensors (biases, BatchNorm's) keep the tensor form: the memory traffic is in the
/// large weights (an A/B measured 16 Ki and 512 Ki alike).
const FUSED_MIN: usize = 1 << 14;

fn on_cpu(t: &Tensor<1>) -> bool {
    crate::device::is_cpu(&t.device()) && t.dtype() == burn::tensor::DType::F32
}

/// One Adam update's scalars, in f64 as fastai computes them.
struct Coefficients {
    mom: f64,
    sqr_mom: f64,
    debias1: f64,
    debias2: f64,
    /// Decoupled weight decay's factor `1 − lr·wd`, where the parameter has weight decay.
    decay: Option<f64>,
    lr: f64,
    eps: f64,
}

impl Coefficients {
    /// The update as tensor operations: (new parameter, first moment, second moment).
    fn tensor_ops(&self, p: Tensor<1>, g: Tensor<1>, grad_avg: Tensor<1>, sqr_avg: Tensor<1>) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
        let grad_avg = grad_avg * self.mom + g.clone() * (1.0 - self.mom);
        let sqr_avg = sqr_avg * self.sqr_mom + g.square() * (1.0 - self.sqr_mom);
        let p = match self.decay {
            Some(d) => p * d,
            None => p,
        };
        let update = (grad_avg.clone() / self.debias1) / ((sqr_avg.clone() / self.debias2).sqrt() + self.eps);
        (p - update * self.lr, grad_avg, sqr_avg)
    }

    /// The same arithmetic in f32, one pass over the four arrays, in place: on the CPU backend the
    /// tensor form is a dozen passes over memory (ResNet-18's 11.7 M parameters, 47 MB each), most
    /// of them on one thread.
    fn fused(&self, p: Tensor<1>, g: Tensor<1>, grad_avg: Tensor<1>, sqr_avg: Tensor<1>) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
        let device = p.device();
        // Unique CPU tensors hand over their buffers; shared ones (an lr_find snapshot) are copied.
        let vec = |t: Tensor<1>| t.into_data().try_into_vec::<f32>().expect("checked by on_cpu: f32");
        let (mut p, g, mut m, mut v) = (vec(p), vec(g), vec(grad_avg), vec(sqr_avg));
        let f = |x: f64| x as f32;
        let (b1, nb1, b2, nb2) = (f(self.mom), f(1.0 - self.mom), f(self.sqr_mom), f(1.0 - self.sqr_mom));
        let (d1, d2, lr, eps, decay) = (f(self.debias1), f(self.debias2), f(self.lr), f(self.eps), self.decay.map(f));
        let update = |p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m = *m * b1 + g * nb1;
                *v = *v * b2 + (g * g) * nb2;
                if let Some(d) = decay {
                    *p *= d;
                }
                *p -= (*m / d1) / ((*v / d2).sqrt() + eps) * lr;
            }
        };
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            const CHUNK: usize = 1 << 15;
            p.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .for_each(|(((p, g), m), v)| update(p, g, m, v));
        }
        #[cfg(not(feature = "rayon"))]
        update(&mut p, &g, &mut m, &mut v);
        let n = p.len();
        let tensor = |x: Vec<f32>| Tensor::<1>::from_data(burn::tensor::TensorData::new(x, [n]), &device);
        (tensor(p), tensor(m), tensor(v))
    }
}

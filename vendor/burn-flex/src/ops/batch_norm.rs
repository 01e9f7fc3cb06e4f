//! Kiln patch: training-mode BatchNorm, forward and backward, as direct per-channel passes (f32).
//!
//! burn-backend's defaults build both out of tensor operations: a channels-first permuted copy of
//! the input for each statistic, then a dozen elementwise passes in the backward. Here the
//! forward reads `x` once for mean and variance and once more to write the output; the backward
//! reads `x` and the output gradient once for its two sums and once more to write the input
//! gradient. Sums are accumulated per plane in f32 lanes and across planes in f64.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_std::{Bytes, Shape};

use crate::{FlexTensor, Layout};

use super::uninit_vec as uninit;

fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(shape), DType::F32)
}

/// [batch, channels, spatial] of a `[batch, channels, ...]` tensor.
fn dims(x: &FlexTensor) -> (usize, usize, usize) {
    let shape = x.layout().shape();
    (shape[0], shape[1], shape.num_elements() / (shape[0] * shape[1]).max(1))
}

/// Two sums over a plane in one pass, each in eight f32 lanes then f64: `Σ f(a, b).0` and
/// `Σ f(a, b).1` (`b` empty: `f` gets `a`'s value twice).
#[inline(always)]
fn two_sums(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> (f32, f32)) -> (f64, f64) {
    let b = if b.is_empty() { a } else { &b[..a.len()] };
    let (mut s, mut t) = ([0f32; 8], [0f32; 8]);
    let (mut s_tail, mut t_tail) = (0f32, 0f32);
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        let (u, v) = f(*x, *y);
        s_tail += u;
        t_tail += v;
    }
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            let (u, v) = f(x[i], y[i]);
            s[i] += u;
            t[i] += v;
        }
    }
    let total = |acc: [f32; 8], tail: f32| acc.iter().map(|&v| v as f64).sum::<f64>() + tail as f64;
    (total(s, s_tail), total(t, t_tail))
}

fn per_channel<R: Send>(channels: usize, f: impl Fn(usize) -> R + Send + Sync) -> Vec<R> {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..channels).into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "rayon"))]
    (0..channels).map(f).collect()
}

/// Apply `f(channel, src plane, dst plane)` to every plane of a `[n, c, spatial]` buffer.
fn per_plane(out: &mut [f32], channels: usize, spatial: usize, f: impl Fn(usize, usize, &mut [f32]) + Send + Sync) {
    let plane = |(idx, dst): (usize, &mut [f32])| f(idx % channels, idx, dst);
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(spatial.max(1)).enumerate().for_each(plane);
    }
    #[cfg(not(feature = "rayon"))]
    out.chunks_mut(spatial.max(1)).enumerate().for_each(plane);
}

/// (output, mean, biased variance) of training-mode BatchNorm; `None` unless all are f32.
pub fn batch_norm_train_f32(x: &FlexTensor, gamma: &FlexTensor, beta: &FlexTensor, epsilon: f64) -> Option<(FlexTensor, FlexTensor, FlexTensor)> {
    if [x.dtype(), gamma.dtype(), beta.dtype()].iter().any(|d| *d != DType::F32) {
        return None;
    }
    let (n, c, s) = dims(x);
    let x = x.clone().to_contiguous();
    let (gamma, beta) = (gamma.clone().to_contiguous(), beta.clone().to_contiguous());
    let (xd, gd, bd): (&[f32], &[f32], &[f32]) = (x.storage(), gamma.storage(), beta.storage());
    let count = (n * s).max(1) as f64;
    let plane = |i: usize, ch: usize| &xd[(i * c + ch) * s..(i * c + ch + 1) * s];
    // Mean and variance in one pass: sums of (x − k) and (x − k)² with k one of the channel's
    // own values, so the shifted mean stays within a few standard deviations of zero and the
    // variance's subtraction loses little (the textbook Σx² − (Σx)² form would not).
    let stats: Vec<(f32, f32)> = per_channel(c, |ch| {
        let k = plane(0, ch).first().copied().unwrap_or(0.0);
        let (sum, sq) = (0..n).map(|i| two_sums(plane(i, ch), &[], |v, _| (v - k, (v - k) * (v - k)))).fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        let shifted_mean = sum / count;
        ((k as f64 + shifted_mean) as f32, (sq / count - shifted_mean * shifted_mean).max(0.0) as f32)
    });
    let scale: Vec<f32> = stats.iter().enumerate().map(|(ch, &(_, var))| gd[ch] / (var as f64 + epsilon).sqrt() as f32).collect();
    let mut out = uninit(xd.len());
    // (x − μ)·a + β rather than x·a + (β − μ·a): the same cost, without cancelling two large
    // terms when the mean is large against the spread.
    per_plane(&mut out, c, s, |ch, idx, dst| {
        let (a, m, b) = (scale[ch], stats[ch].0, bd[ch]);
        dst.iter_mut().zip(&xd[idx * s..(idx + 1) * s]).for_each(|(o, v)| *o = (v - m) * a + b);
    });
    let shape = x.layout().shape().clone();
    let (mean, var): (Vec<f32>, Vec<f32>) = stats.into_iter().unzip();
    Some((tensor(out, shape), tensor(mean, Shape::from(vec![c])), tensor(var, Shape::from(vec![c]))))
}

/// (x_grad, gamma_grad, beta_grad) of training-mode BatchNorm; `None` unless all are f32.
pub fn batch_norm_train_backward_f32(
    x: &FlexTensor,
    gamma: &FlexTensor,
    mean: &FlexTensor,
    variance: &FlexTensor,
    epsilon: f64,
    output_grad: &FlexTensor,
) -> Option<(FlexTensor, FlexTensor, FlexTensor)> {
    if [x.dtype(), gamma.dtype(), mean.dtype(), variance.dtype(), output_grad.dtype()].iter().any(|d| *d != DType::F32) {
        return None;
    }
    let (n, c, s) = dims(x);
    let x = x.clone().to_contiguous();
    let grad = output_grad.clone().to_contiguous();
    let (gamma, mean, variance) = (gamma.clone().to_contiguous(), mean.clone().to_contiguous(), variance.clone().to_contiguous());
    let (xd, gr, gm, mu, var): (&[f32], &[f32], &[f32], &[f32], &[f32]) = (x.storage(), grad.storage(), gamma.storage(), mean.storage(), variance.storage());
    let count = (n * s).max(1) as f64;
    let px = |i: usize, ch: usize| &xd[(i * c + ch) * s..(i * c + ch + 1) * s];
    let pg = |i: usize, ch: usize| &gr[(i * c + ch) * s..(i * c + ch + 1) * s];
    // Per channel: Σg (beta's gradient) and Σg·(x − mean).
    let sums: Vec<(f64, f64)> = per_channel(c, |ch| {
        let m = mu[ch];
        (0..n).map(|i| two_sums(pg(i, ch), px(i, ch), |g, v| (g, g * (v - m)))).fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    let inv_std: Vec<f64> = var.iter().map(|&v| 1.0 / (v as f64 + epsilon).sqrt()).collect();
    // x_grad = γ·inv_std·(g − mean(g) − x̂·mean(g·x̂)), x̂ = (x − mean)·inv_std
    let coef: Vec<(f32, f32, f32)> = (0..c)
        .map(|ch| {
            let (sg, sgx) = sums[ch];
            let k = gm[ch] as f64 * inv_std[ch];
            let mean_g = sg / count;
            let mean_gxhat = sgx * inv_std[ch] / count;
            // k·(g − mean_g − (x − μ)·inv_std·mean_gxhat) = k·g + a·(x − μ) + b
            let a = -k * inv_std[ch] * mean_gxhat;
            (k as f32, a as f32, (-k * mean_g) as f32)
        })
        .collect();
    let mut dx = uninit(xd.len());
    per_plane(&mut dx, c, s, |ch, idx, dst| {
        let ((k, a, b), m) = (coef[ch], mu[ch]);
        let r = idx * s..(idx + 1) * s;
        dst.iter_mut().zip(&gr[r.clone()]).zip(&xd[r]).for_each(|((o, g), v)| *o = k * g + a * (v - m) + b);
    });
    let gamma_grad: Vec<f32> = (0..c).map(|ch| (sums[ch].1 * inv_std[ch]) as f32).collect();
    let beta_grad: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let shape = x.layout().shape().clone();
    Some((tensor(dx, shape), tensor(gamma_grad, Shape::from(vec![c])), tensor(beta_grad, Shape::from(vec![c]))))
}

//! Kiln patch: training-mode BatchNorm, forward and backward, as direct per-channel passes (f32).
//!
//! burn-backend's defaults build both out of tensor operations: a channels-first permuted copy of
//! the input for each statistic, then a dozen elementwise passes in the backward. Here the
//! forward reads `x` twice (mean, then variance) and writes the output once; the backward reads
//! `x` and the output gradient once for the two sums and once more to write the input gradient.
//! Sums are accumulated per plane in f32 lanes and across planes in f64.

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

#[inline]
fn sum(a: &[f32]) -> f64 {
    let mut acc = [0f32; 8];
    let chunks = a.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().map(|&v| v as f64).sum::<f64>() + tail as f64
}

/// Σ (a − m)² over a plane, and Σ g·(a − m) when `g` is given.
#[inline]
fn centred_sums(a: &[f32], m: f32, g: Option<&[f32]>) -> f64 {
    let mut acc = [0f32; 8];
    let mut tail = 0f32;
    match g {
        None => {
            let chunks = a.chunks_exact(8);
            for v in chunks.remainder() {
                tail += (v - m) * (v - m);
            }
            for c in chunks {
                for i in 0..8 {
                    acc[i] += (c[i] - m) * (c[i] - m);
                }
            }
        }
        Some(g) => {
            let (ac, gc) = (a.chunks_exact(8), g.chunks_exact(8));
            for (v, w) in ac.remainder().iter().zip(gc.remainder()) {
                tail += w * (v - m);
            }
            for (c, w) in ac.zip(gc) {
                for i in 0..8 {
                    acc[i] += w[i] * (c[i] - m);
                }
            }
        }
    }
    acc.iter().map(|&v| v as f64).sum::<f64>() + tail as f64
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
    let stats: Vec<(f32, f32)> = per_channel(c, |ch| {
        let mean = ((0..n).map(|i| sum(plane(i, ch))).sum::<f64>() / count) as f32;
        let var = ((0..n).map(|i| centred_sums(plane(i, ch), mean, None)).sum::<f64>() / count) as f32;
        (mean, var)
    });
    let scale: Vec<(f32, f32)> = stats
        .iter()
        .enumerate()
        .map(|(ch, &(mean, var))| {
            let a = gd[ch] / (var as f64 + epsilon).sqrt() as f32;
            (a, bd[ch] - mean * a)
        })
        .collect();
    let mut out = uninit(xd.len());
    per_plane(&mut out, c, s, |ch, idx, dst| {
        let (a, b) = scale[ch];
        dst.iter_mut().zip(&xd[idx * s..(idx + 1) * s]).for_each(|(o, v)| *o = v * a + b);
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
        let sg = (0..n).map(|i| sum(pg(i, ch))).sum::<f64>();
        let sgx = (0..n).map(|i| centred_sums(px(i, ch), mu[ch], Some(pg(i, ch)))).sum::<f64>();
        (sg, sgx)
    });
    let inv_std: Vec<f64> = var.iter().map(|&v| 1.0 / (v as f64 + epsilon).sqrt()).collect();
    // x_grad = γ·inv_std·(g − mean(g) − x̂·mean(g·x̂)), x̂ = (x − mean)·inv_std
    let coef: Vec<(f32, f32, f32)> = (0..c)
        .map(|ch| {
            let (sg, sgx) = sums[ch];
            let k = gm[ch] as f64 * inv_std[ch];
            let mean_g = sg / count;
            let mean_gxhat = sgx * inv_std[ch] / count;
            // k·(g − mean_g − (x − μ)·inv_std·mean_gxhat) = k·g + a·x + b
            let a = -k * inv_std[ch] * mean_gxhat;
            let b = -k * mean_g - a * mu[ch] as f64;
            (k as f32, a as f32, b as f32)
        })
        .collect();
    let mut dx = uninit(xd.len());
    per_plane(&mut dx, c, s, |ch, idx, dst| {
        let (k, a, b) = coef[ch];
        let r = idx * s..(idx + 1) * s;
        dst.iter_mut().zip(&gr[r.clone()]).zip(&xd[r]).for_each(|((o, g), v)| *o = k * g + a * v + b);
    });
    let gamma_grad: Vec<f32> = (0..c).map(|ch| (sums[ch].1 * inv_std[ch]) as f32).collect();
    let beta_grad: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let shape = x.layout().shape().clone();
    Some((tensor(dx, shape), tensor(gamma_grad, Shape::from(vec![c])), tensor(beta_grad, Shape::from(vec![c]))))
}

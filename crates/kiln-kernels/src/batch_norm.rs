//! Training-mode BatchNorm, forward and backward, as direct per-channel passes (f32, NCHW or
//! any `[batch, channels, spatial]` layout).
//!
//! Built out of tensor operations, both take a channels-first permuted copy of the input for
//! each statistic, then a dozen elementwise passes in the backward. Here the forward reads `x`
//! once for mean and variance and once more to write the output; the backward reads `x` and the
//! output gradient once for its two sums and once more to write the input gradient. Sums are
//! accumulated per plane in f32 vector lanes and across planes in f64.

use alloc::vec::Vec;

use crate::par::{for_each_chunk, for_parts, uninit_vec as uninit};

/// `(Σ(a − ka), Σ(a − ka)·(b − kb))` over a plane, in f32 lanes then f64.
///
/// Written with explicit vectors: given the scalar loop, LLVM paired the two accumulators into
/// one vector and computed every element with scalar loads (wasm: `replace_lane` per element),
/// which made these reductions twice as slow as the passes that also write a full plane.
fn centred_sums(a: &[f32], ka: f32, b: &[f32], kb: f32) -> (f64, f64) {
    let b = &b[..a.len()];
    #[cfg(feature = "simd")]
    let (s, t, done) = centred_sums_simd(a, ka, b, kb);
    #[cfg(not(feature = "simd"))]
    let (s, t, done) = (0f32, 0f32, 0usize);
    let (mut s, mut t) = (s as f64, t as f64);
    for (x, y) in a[done..].iter().zip(&b[done..]) {
        let d = x - ka;
        s += d as f64;
        t += (d * (y - kb)) as f64;
    }
    (s, t)
}

/// The vector part of `centred_sums`: its two f32 sums and how many elements they cover.
#[cfg(feature = "simd")]
#[macerator::with_simd]
fn centred_sums_simd<S: macerator::Simd>(a: &[f32], ka: f32, b: &[f32], kb: f32) -> (f32, f32, usize) {
    use macerator::{Scalar, vload_unaligned};
    let lanes = S::lanes32();
    let (vka, vkb, zero) = (ka.splat::<S>(), kb.splat::<S>(), 0f32.splat::<S>());
    // Two accumulators each, so consecutive adds do not wait on one another.
    let (mut s0, mut s1, mut t0, mut t1) = (zero, zero, zero, zero);
    let step = 2 * lanes;
    let mut i = 0;
    while i + step <= a.len() {
        // SAFETY: i + 2·lanes ≤ a.len() = b.len().
        unsafe {
            let d0 = vload_unaligned::<S, _>(a.as_ptr().add(i)) - vka;
            let d1 = vload_unaligned::<S, _>(a.as_ptr().add(i + lanes)) - vka;
            let e0 = vload_unaligned::<S, _>(b.as_ptr().add(i)) - vkb;
            let e1 = vload_unaligned::<S, _>(b.as_ptr().add(i + lanes)) - vkb;
            s0 += d0;
            s1 += d1;
            t0 = d0.mul_add(e0, t0);
            t1 = d1.mul_add(e1, t1);
        }
        i += step;
    }
    ((s0 + s1).reduce_add(), (t0 + t1).reduce_add(), i)
}

/// Apply `f(channel, plane index, dst plane)` to every plane of a `[n, c, spatial]` buffer.
fn per_plane(out: &mut [f32], channels: usize, spatial: usize, f: impl Fn(usize, usize, &mut [f32]) + Send + Sync) {
    for_each_chunk(out, spatial, |idx, dst| f(idx % channels, idx, dst));
}

/// Training-mode BatchNorm of `x` `[n, c, s]` (`dims`): `(output, mean, biased variance)`, the
/// output `γ·(x − μ)/√(σ² + ε) + β`, the statistics one per channel.
pub fn train(x: &[f32], gamma: &[f32], beta: &[f32], dims: [usize; 3], epsilon: f64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let [n, c, s] = dims;
    let xd = &x[..n * c * s];
    let (gd, bd) = (&gamma[..c], &beta[..c]);
    let count = (n * s).max(1) as f64;
    let plane = |i: usize, ch: usize| &xd[(i * c + ch) * s..(i * c + ch + 1) * s];
    // Mean and variance in one pass: sums of (x − k) and (x − k)² with k one of the channel's
    // own values, so the shifted mean stays within a few standard deviations of zero and the
    // variance's subtraction loses little (the textbook Σx² − (Σx)² form would not).
    let stats: Vec<(f32, f32)> = for_parts(c, |ch| {
        let k = plane(0, ch).first().copied().unwrap_or(0.0);
        let (sum, sq) = (0..n).map(|i| centred_sums(plane(i, ch), k, plane(i, ch), k)).fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
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
    let (mean, var): (Vec<f32>, Vec<f32>) = stats.into_iter().unzip();
    (out, mean, var)
}

/// The backward pass of [`train`] given its output gradient `grad` `[n, c, s]`:
/// `(x_grad, gamma_grad, beta_grad)`.
pub fn train_backward(x: &[f32], gamma: &[f32], mean: &[f32], variance: &[f32], grad: &[f32], dims: [usize; 3], epsilon: f64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let [n, c, s] = dims;
    let (xd, gr) = (&x[..n * c * s], &grad[..n * c * s]);
    let (gm, mu, var) = (&gamma[..c], &mean[..c], &variance[..c]);
    let count = (n * s).max(1) as f64;
    let px = |i: usize, ch: usize| &xd[(i * c + ch) * s..(i * c + ch + 1) * s];
    let pg = |i: usize, ch: usize| &gr[(i * c + ch) * s..(i * c + ch + 1) * s];
    // Per channel: Σg (beta's gradient) and Σg·(x − mean).
    let sums: Vec<(f64, f64)> = for_parts(c, |ch| {
        let m = mu[ch];
        (0..n).map(|i| centred_sums(pg(i, ch), 0.0, px(i, ch), m)).fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
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
    (dx, gamma_grad, beta_grad)
}

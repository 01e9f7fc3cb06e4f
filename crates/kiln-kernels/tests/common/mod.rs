//! The f64 references the kernel tests compare against, and their inputs: straight from the
//! definitions, no blocking, no reordering. Shared by `tests/kernels.rs` (this crate's kernels on
//! slices) and Kiln's `tests/core/kernels.rs` (the same kernels through burn's autodiff).
#![allow(dead_code)]

/// `n` values in [-1, 1], different for each `seed`, in steps of 0.001.
pub fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            (((i as u32)
                .wrapping_mul(2654435761)
                .wrapping_add(seed.wrapping_mul(40503))
                >> 8)
                % 2001) as f32
                / 1000.0
                - 1.0
        })
        .collect()
}

/// A 2D convolution, NCHW, weight `[c_out, c_in / groups, k[0], k[1]]`.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub hw: [usize; 2],
    pub k: [usize; 2],
    pub stride: usize,
    pub pad: [usize; 4], // top, left, bottom, right
    pub dil: usize,
    pub groups: usize,
}

impl Case {
    /// The output's height and width.
    pub fn out(&self) -> [usize; 2] {
        let [t, l, b, r] = self.pad;
        let size = |len: usize, k: usize, p: usize| (len + p - self.dil * (k - 1) - 1) / self.stride + 1;
        [size(self.hw[0], self.k[0], t + b), size(self.hw[1], self.k[1], l + r)]
    }

    /// The input `x`, weight `w` and output gradient `r` every test of this case uses.
    pub fn operands(&self) -> [Vec<f32>; 3] {
        let cig = self.c_in / self.groups;
        let [oh, ow] = self.out();
        [
            values(self.batch * self.c_in * self.hw[0] * self.hw[1], 1),
            values(self.c_out * cig * self.k[0] * self.k[1], 2),
            values(self.batch * self.c_out * oh * ow, 3),
        ]
    }
}

/// Every tap of the convolution: `f(xi, wi, ri)` for each input element x[xi] that weight w[wi]
/// multiplies into output element y[ri] (padding skipped), straight from the definition.
pub fn for_each_tap(c: &Case, out: [usize; 2], mut f: impl FnMut(usize, usize, usize)) {
    let (cig, cog) = (c.c_in / c.groups, c.c_out / c.groups);
    let [h, w] = c.hw;
    for n in 0..c.batch {
        for co in 0..c.c_out {
            for ci in 0..cig {
                let cx = (co / cog) * cig + ci;
                for ky in 0..c.k[0] {
                    for kx in 0..c.k[1] {
                        let wi = ((co * cig + ci) * c.k[0] + ky) * c.k[1] + kx;
                        for oy in 0..out[0] {
                            for ox in 0..out[1] {
                                let iy = (oy * c.stride + ky * c.dil) as isize - c.pad[0] as isize;
                                let ix = (ox * c.stride + kx * c.dil) as isize - c.pad[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xi = ((n * c.c_in + cx) * h + iy as usize) * w + ix as usize;
                                f(xi, wi, ((n * c.c_out + co) * out[0] + oy) * out[1] + ox);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// y[ri] = Σ x[xi] · w[wi], dW[wi] = Σ R[ri] · x[xi] and dX[xi] = Σ R[ri] · w[wi] over every
/// tap, in f64.
pub fn reference(c: &Case, x: &[f32], w: &[f32], r: &[f32], out: [usize; 2]) -> [Vec<f64>; 3] {
    let (mut y, mut dw, mut dx) = (vec![0f64; r.len()], vec![0f64; w.len()], vec![0f64; x.len()]);
    for_each_tap(c, out, |xi, wi, ri| {
        y[ri] += x[xi] as f64 * w[wi] as f64;
        dw[wi] += r[ri] as f64 * x[xi] as f64;
        dx[xi] += r[ri] as f64 * w[wi] as f64;
    });
    [y, dw, dx]
}

/// Every value within 1e-4 of the reference, relative to its largest magnitude (at least 1).
pub fn close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: size");
    let scale = want.iter().fold(1f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() <= 1e-4 * scale, "{what}[{i}] = {g}, reference {w}");
    }
}

/// The dense convolutions the kernel tests run (name, case): dense, strided, dilated, grouped,
/// 1×1 (the relaxed-SIMD build's own kernels included), asymmetric ("same") padding, and planes
/// at the edges of the kernels' blocks and tiles.
pub fn dense_cases() -> Vec<(String, Case)> {
    let base = Case { batch: 3, c_in: 5, c_out: 7, hw: [11, 9], k: [3, 3], stride: 1, pad: [1; 4], dil: 1, groups: 1 };
    let mut cases = vec![
        ("3×3 stride 1 pad 1".to_string(), base),
        ("3×3 stride 1 pad 1, several 512-pixel output tiles per image".into(), Case { hw: [30, 41], ..base }),
        ("3×3 stride 2 pad 1".into(), Case { stride: 2, ..base }),
    ];
    // Stride-1 3×3 at the edges: planes no larger than the kernel's reach, odd sizes, no
    // padding and more padding than the usual one.
    for (hw, pad) in [([3, 3], 1), ([1, 1], 1), ([2, 5], 1), ([6, 6], 0), ([12, 23], 2)] {
        cases.push((format!("3×3 stride 1 pad {pad}, {}×{}", hw[0], hw[1]), Case { batch: 4, hw, pad: [pad; 4], ..base }));
    }
    let one = Case { k: [1, 1], pad: [0; 4], ..base };
    cases.extend([
        ("1×1 stride 1".into(), one),
        // In the browser's relaxed-SIMD build 1×1 convolutions run their own kernel: blocks of 4
        // channels × 8 pixels (a last block overlapping), panels of 240 pixels, a plain loop
        // under 8.
        ("1×1, 6 channels (a block of 2), 250 pixels (a short last panel)".into(), Case { c_in: 16, c_out: 6, hw: [10, 25], ..one }),
        ("1×1, 2440 pixels (ten full panels and a short one)".into(), Case { c_in: 3, c_out: 5, hw: [40, 61], ..one }),
        ("1×1, 6 pixels (narrower than a block)".into(), Case { hw: [2, 3], ..one }),
        // Its weight gradient: the operand with fewer channels transposed in panels of up to
        // 2048 pixels (4 × 4 tiles, a scalar tail), 4 × 8 outputs per block.
        ("1×1 weight gradient, 8 → 12 channels (x transposed), 2115 pixels (a second panel, a tail of 3)".into(), Case { c_in: 8, c_out: 12, hw: [47, 45], ..one }),
        ("1×1 weight gradient, 16 → 8 channels (the output gradient transposed), 250 pixels".into(), Case { c_in: 16, c_out: 8, hw: [10, 25], ..one }),
        ("1×1 stride 2 (ResNet downsample)".into(), Case { stride: 2, ..one }),
        ("7×7 stride 2 pad 3 (ResNet stem)".into(), Case { c_in: 3, hw: [20, 18], k: [7, 7], stride: 2, pad: [3; 4], ..base }),
        ("3×3 dilation 2".into(), Case { dil: 2, pad: [2; 4], ..base }),
        ("3×1 kernel, no padding".into(), Case { k: [3, 1], pad: [0; 4], ..base }),
        ("grouped (2 groups)".into(), Case { c_in: 4, c_out: 6, groups: 2, ..base }),
        ("TF 'same' stride 2 (asymmetric, EfficientNet stem)".into(), Case { c_in: 3, hw: [12, 12], stride: 2, pad: [0, 0, 1, 1], ..base }),
        ("5×5 stride 1, asymmetric padding (input gradient as a convolution)".into(), Case { k: [5, 5], pad: [2, 1, 1, 0], ..base }),
        ("5×5 stride 1 pad 2 (same size: rows shifted by two)".into(), Case { k: [5, 5], pad: [2; 4], ..base }),
        ("3×3 stride 1 pad 1 on a 1×1 map (every tap but the centre in the padding)".into(), Case { hw: [1, 1], ..base }),
        ("3×3 stride 1 pad 1 on a 2×1 map".into(), Case { hw: [2, 1], ..base }),
        ("3×3 stride 1, no padding".into(), Case { pad: [0; 4], ..base }),
        ("one image, more threads than images".into(), Case { batch: 1, ..base }),
    ]);
    cases
}

/// The depthwise convolutions the kernel tests run (name, case), and one with a channel
/// multiplier of 2, which is not depthwise to the kernels (a grouped convolution).
pub fn depthwise_cases() -> Vec<(String, Case)> {
    let base = Case { batch: 2, c_in: 6, c_out: 6, hw: [10, 13], k: [3, 3], stride: 1, pad: [1; 4], dil: 1, groups: 6 };
    vec![
        ("depthwise 3×3 stride 1".into(), base),
        ("depthwise 3×3 stride 2".into(), Case { stride: 2, ..base }),
        ("depthwise 5×5 TF 'same' stride 2 (asymmetric)".into(), Case { k: [5, 5], stride: 2, pad: [1, 1, 2, 2], ..base }),
        ("depthwise 3×3 TF 'same' stride 2 on an even size (padding only at the end)".into(), Case { hw: [12, 16], stride: 2, pad: [0, 0, 1, 1], ..base }),
        ("depthwise 3×3 more padding at the start than the end".into(), Case { pad: [2, 1, 0, 1], ..base }),
        ("depthwise 5×5 stride 1 pad 2, wide rows".into(), Case { k: [5, 5], pad: [2; 4], hw: [5, 37], ..base }),
        ("depthwise 5×5 stride 1 pad 2 on a 7×7 map (EfficientNet's last stages: every row in the padding's reach)".into(), Case { k: [5, 5], pad: [2; 4], hw: [7, 7], ..base }),
        ("depthwise 5×5 stride 1 pad 2 on a 2×3 map (taps reaching past both sides)".into(), Case { k: [5, 5], pad: [2; 4], hw: [2, 3], ..base }),
        ("depthwise 3×3 dilation 2 pad 2".into(), Case { pad: [2; 4], dil: 2, ..base }),
        ("depthwise 3×3 stride 2 dilation 2 (taps in one phase)".into(), Case { stride: 2, pad: [2; 4], dil: 2, ..base }),
        ("depthwise 2×2 stride 3 (input pixels no tap reads)".into(), Case { k: [2, 2], stride: 3, pad: [0; 4], hw: [11, 14], ..base }),
        ("depthwise 3×3 stride 1 pad 1 on 40×37 (rows convolved in place: blocks, an overlapping last block, edge columns)".into(), Case { hw: [40, 37], batch: 1, ..base }),
        ("depthwise 3×3 wide rows, more padding at the start than the end, dilation 2".into(), Case { hw: [9, 40], pad: [2, 3, 1, 1], dil: 2, ..base }),
        ("depthwise 3×3 stride 2 pad 1 on 40×37 (several 16-wide blocks a row)".into(), Case { stride: 2, hw: [40, 37], batch: 1, ..base }),
        ("depthwise channel multiplier 2 (not the fast path)".into(), Case { c_out: 12, ..base }),
    ]
}

/// Training-mode BatchNorm's reference for `x` `[n, c, s]`: `(y, dx, dγ, dβ)` for the output
/// gradient `r`, with the batch's biased variance.
pub fn batch_norm_reference(x: &[f32], gamma: &[f32], beta: &[f32], r: &[f32], [n, c, s]: [usize; 3], eps: f64) -> [Vec<f64>; 4] {
    let at = |i: usize, ch: usize, j: usize| (i * c + ch) * s + j;
    let (mut y, mut dx, mut dg, mut db) = (vec![0f64; x.len()], vec![0f64; x.len()], vec![0f64; c], vec![0f64; c]);
    let m = (n * s) as f64;
    for ch in 0..c {
        let idx: Vec<usize> = (0..n).flat_map(|i| (0..s).map(move |j| at(i, ch, j))).collect();
        let mean = idx.iter().map(|&k| x[k] as f64).sum::<f64>() / m;
        let var = idx.iter().map(|&k| (x[k] as f64 - mean).powi(2)).sum::<f64>() / m;
        let inv = 1.0 / (var + eps).sqrt();
        let g = gamma[ch] as f64;
        let xhat = |k: usize| (x[k] as f64 - mean) * inv;
        let sum_r = idx.iter().map(|&k| r[k] as f64).sum::<f64>();
        let sum_rx = idx.iter().map(|&k| r[k] as f64 * xhat(k)).sum::<f64>();
        for &k in &idx {
            y[k] = g * xhat(k) + beta[ch] as f64;
            dx[k] = g * inv * (r[k] as f64 - sum_r / m - xhat(k) * sum_rx / m);
        }
        dg[ch] = sum_rx;
        db[ch] = sum_r;
    }
    [y, dx, dg, db]
}

/// The BatchNorm inputs the tests use: (shape, epsilon, x); the last has a mean ~500 times its
/// spread, where a one-pass variance loses everything unless its sums are shifted.
pub fn batch_norm_cases() -> Vec<(Vec<usize>, f64, Vec<f32>)> {
    [(vec![4usize, 3, 5, 7], 1e-5, 3.0, 1.0), (vec![16, 10], 1e-3, 3.0, 1.0), (vec![2, 4, 1, 33], 1e-5, 3.0, 1.0), (vec![2, 3, 4, 50], 1e-5, 50.0, 0.1)]
        .into_iter()
        .map(|(shape, eps, offset, spread): (Vec<usize>, f64, f32, f32)| {
            let (n, c) = (shape[0], shape[1]);
            let s: usize = shape[2..].iter().product();
            // An offset mean and a spread that differ per channel, as activations do.
            let x = values(n * c * s, 4).iter().enumerate().map(|(i, v)| v * spread * (1.0 + (i / s % c) as f32) + offset).collect();
            (shape, eps, x)
        })
        .collect()
}

/// Max pooling's geometries (input h, w, kernel, stride, padding, dilation), and inputs for
/// them: coarse values so windows hold ties, and one NaN, which must win its windows.
pub const MAX_POOL_CASES: [(usize, usize, usize, usize, usize, usize); 4] = [(12, 11, 3, 2, 1, 1), (9, 10, 2, 2, 0, 1), (7, 9, 3, 1, 1, 1), (11, 8, 3, 2, 2, 2)];

pub fn max_pool_input(planes: usize, h: usize, w: usize) -> Vec<f32> {
    let mut x: Vec<f32> = values(planes * h * w, 8).iter().map(|v| (v * 4.0).round()).collect();
    x[h * w + w + 1] = f32::NAN;
    x
}

/// Max pooling's reference for one output: the first tap of the window at `(oy, ox)` of `plane`
/// that holds the maximum (or a NaN), as (value, index in `x`).
#[allow(clippy::too_many_arguments)]
pub fn max_pool_reference(x: &[f32], plane: usize, [h, w]: [usize; 2], (oy, ox): (usize, usize), k: usize, st: usize, p: usize, d: usize) -> (f32, usize) {
    let mut best: Option<(f32, usize)> = None;
    for (ky, kx) in (0..k).flat_map(|ky| (0..k).map(move |kx| (ky, kx))) {
        let (iy, ix) = ((oy * st + ky * d) as isize - p as isize, (ox * st + kx * d) as isize - p as isize);
        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
            continue;
        }
        let i = plane * h * w + iy as usize * w + ix as usize;
        let v = x[i];
        if best.is_none_or(|(b, _)| v > b || v.is_nan()) {
            best = Some((v, i));
        }
    }
    best.expect("every window has a tap")
}

//! The CPU kernels Kiln patches into burn-flex (vendor/burn-flex, see its KILN-PATCH.md),
//! checked against a plain f64 reference on small shapes: convolution outputs, weight and input
//! gradients (dense, strided, dilated, grouped, depthwise, asymmetric 'same' padding),
//! training-mode BatchNorm, max pooling and ReLU. The browser tests (`tests/web`) run the same checks
//! on the wasm build of the kernels (128-bit SIMD, no thread pool).

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};

use crate::common::cpu;

fn values(n: usize, seed: u32) -> Vec<f32> {
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

struct Case {
    batch: usize,
    c_in: usize,
    c_out: usize,
    hw: [usize; 2],
    k: [usize; 2],
    stride: usize,
    pad: [usize; 4], // top, left, bottom, right
    dil: usize,
    groups: usize,
}

/// Every tap of the convolution: `f(xi, wi, ri)` for each input element x[xi] that weight w[wi]
/// multiplies into output element y[ri] (padding skipped), straight from the definition.
fn for_each_tap(c: &Case, out: [usize; 2], mut f: impl FnMut(usize, usize, usize)) {
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
fn reference(c: &Case, x: &[f32], w: &[f32], r: &[f32], out: [usize; 2]) -> [Vec<f64>; 3] {
    let (mut y, mut dw, mut dx) = (vec![0f64; r.len()], vec![0f64; w.len()], vec![0f64; x.len()]);
    for_each_tap(c, out, |xi, wi, ri| {
        y[ri] += x[xi] as f64 * w[wi] as f64;
        dw[wi] += r[ri] as f64 * x[xi] as f64;
        dx[xi] += r[ri] as f64 * w[wi] as f64;
    });
    [y, dw, dx]
}

/// The output, weight and input gradients burn's autodiff computes on the CPU backend,
/// through the patched kernels, with their references.
fn conv_grads(c: &Case) -> [(Vec<f32>, Vec<f64>); 3] {
    let device = cpu().autodiff();
    let cig = c.c_in / c.groups;
    let x_vals = values(c.batch * c.c_in * c.hw[0] * c.hw[1], 1);
    let w_vals = values(c.c_out * cig * c.k[0] * c.k[1], 2);
    let x = Tensor::<4>::from_data(TensorData::new(x_vals.clone(), [c.batch, c.c_in, c.hw[0], c.hw[1]]), &device).require_grad();
    let w = Tensor::<4>::from_data(TensorData::new(w_vals.clone(), [c.c_out, cig, c.k[0], c.k[1]]), &device).require_grad();
    let [t, l, b, r] = c.pad;
    let options = ConvOptions::new_with_padding([c.stride; 2], [(t, b), (l, r)], [c.dil; 2], c.groups);
    let y = conv2d(x.clone(), w.clone(), None, options);
    let [_, _, oh, ow] = y.dims();
    let r_vals = values(c.batch * c.c_out * oh * ow, 3);
    let rt = Tensor::<4>::from_data(TensorData::new(r_vals.clone(), [c.batch, c.c_out, oh, ow]), &device);
    let y_vals = y.clone().into_data().try_to_vec::<f32>().unwrap();
    let grads = (y * rt).sum().backward();
    let read = |t: Tensor<4>| t.grad(&grads).expect("gradient").into_data().try_to_vec::<f32>().unwrap();
    let [y_ref, dw, dx] = reference(c, &x_vals, &w_vals, &r_vals, [oh, ow]);
    [(y_vals, y_ref), (read(w), dw), (read(x), dx)]
}

fn close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: size");
    let scale = want.iter().fold(1f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() <= 1e-4 * scale, "{what}[{i}] = {g}, reference {w}");
    }
}

fn check(name: &str, c: Case) {
    let [(y, y_ref), (dw, dw_ref), (dx, dx_ref)] = conv_grads(&c);
    close(&format!("{name}: y"), &y, &y_ref);
    close(&format!("{name}: dW"), &dw, &dw_ref);
    close(&format!("{name}: dX"), &dx, &dx_ref);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn conv2d_gradients_match_reference_dense() {
    let base = || Case {
        batch: 3,
        c_in: 5,
        c_out: 7,
        hw: [11, 9],
        k: [3, 3],
        stride: 1,
        pad: [1; 4],
        dil: 1,
        groups: 1,
    };
    check("3×3 stride 1 pad 1", base());
    check(
        "3×3 stride 1 pad 1, several 512-pixel output tiles per image",
        Case {
            hw: [30, 41],
            ..base()
        },
    );
    check(
        "3×3 stride 2 pad 1",
        Case {
            stride: 2,
            ..base()
        },
    );
    // Stride-1 3×3 at the edges: planes no larger than the kernel's reach, odd sizes, no
    // padding and more padding than the usual one.
    for (hw, pad) in [([3, 3], 1), ([1, 1], 1), ([2, 5], 1), ([6, 6], 0), ([12, 23], 2)] {
        check(&format!("3×3 stride 1 pad {pad}, {}×{}", hw[0], hw[1]), Case { batch: 4, hw, pad: [pad; 4], ..base() });
    }
    check(
        "1×1 stride 1",
        Case {
            k: [1, 1],
            pad: [0; 4],
            ..base()
        },
    );
    // In the browser's relaxed-SIMD build 1×1 convolutions run their own kernel: blocks of 4
    // channels × 8 pixels (a last block overlapping), panels of 240 pixels, a plain loop under 8.
    check(
        "1×1, 6 channels (a block of 2), 250 pixels (a short last panel)",
        Case {
            c_in: 16,
            c_out: 6,
            hw: [10, 25],
            k: [1, 1],
            pad: [0; 4],
            ..base()
        },
    );
    check(
        "1×1, 2440 pixels (ten full panels and a short one)",
        Case {
            c_in: 3,
            c_out: 5,
            hw: [40, 61],
            k: [1, 1],
            pad: [0; 4],
            ..base()
        },
    );
    check(
        "1×1, 6 pixels (narrower than a block)",
        Case {
            hw: [2, 3],
            k: [1, 1],
            pad: [0; 4],
            ..base()
        },
    );
    // Its weight gradient: the operand with fewer channels transposed in panels of up to 2048
    // pixels (4 × 4 tiles, a scalar tail), 4 × 8 outputs per block.
    check(
        "1×1 weight gradient, 8 → 12 channels (x transposed), 2115 pixels (a second panel, a tail of 3)",
        Case {
            c_in: 8,
            c_out: 12,
            hw: [47, 45],
            k: [1, 1],
            pad: [0; 4],
            ..base()
        },
    );
    check(
        "1×1 weight gradient, 16 → 8 channels (the output gradient transposed), 250 pixels",
        Case {
            c_in: 16,
            c_out: 8,
            hw: [10, 25],
            k: [1, 1],
            pad: [0; 4],
            ..base()
        },
    );
    check(
        "1×1 stride 2 (ResNet downsample)",
        Case {
            k: [1, 1],
            pad: [0; 4],
            stride: 2,
            ..base()
        },
    );
    check(
        "7×7 stride 2 pad 3 (ResNet stem)",
        Case {
            c_in: 3,
            hw: [20, 18],
            k: [7, 7],
            stride: 2,
            pad: [3; 4],
            ..base()
        },
    );
    check(
        "3×3 dilation 2",
        Case {
            dil: 2,
            pad: [2; 4],
            ..base()
        },
    );
    check(
        "3×1 kernel, no padding",
        Case {
            k: [3, 1],
            pad: [0; 4],
            ..base()
        },
    );
    check(
        "grouped (2 groups)",
        Case {
            c_in: 4,
            c_out: 6,
            groups: 2,
            ..base()
        },
    );
    check(
        "TF 'same' stride 2 (asymmetric, EfficientNet stem)",
        Case {
            c_in: 3,
            hw: [12, 12],
            stride: 2,
            pad: [0, 0, 1, 1],
            ..base()
        },
    );
    check(
        "5×5 stride 1, asymmetric padding (input gradient as a convolution)",
        Case {
            k: [5, 5],
            pad: [2, 1, 1, 0],
            ..base()
        },
    );
    check(
        "5×5 stride 1 pad 2 (same size: rows shifted by two)",
        Case {
            k: [5, 5],
            pad: [2; 4],
            ..base()
        },
    );
    check(
        "3×3 stride 1 pad 1 on a 1×1 map (every tap but the centre in the padding)",
        Case {
            hw: [1, 1],
            ..base()
        },
    );
    check(
        "3×3 stride 1 pad 1 on a 2×1 map",
        Case {
            hw: [2, 1],
            ..base()
        },
    );
    check(
        "3×3 stride 1, no padding",
        Case {
            pad: [0; 4],
            ..base()
        },
    );
    check(
        "one image, more threads than images",
        Case { batch: 1, ..base() },
    );
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn conv2d_gradients_match_reference_depthwise() {
    let base = || Case {
        batch: 2,
        c_in: 6,
        c_out: 6,
        hw: [10, 13],
        k: [3, 3],
        stride: 1,
        pad: [1; 4],
        dil: 1,
        groups: 6,
    };
    check("depthwise 3×3 stride 1", base());
    check(
        "depthwise 3×3 stride 2",
        Case {
            stride: 2,
            ..base()
        },
    );
    check(
        "depthwise 5×5 TF 'same' stride 2 (asymmetric)",
        Case {
            k: [5, 5],
            stride: 2,
            pad: [1, 1, 2, 2],
            ..base()
        },
    );
    check(
        "depthwise 3×3 TF 'same' stride 2 on an even size (padding only at the end)",
        Case {
            hw: [12, 16],
            stride: 2,
            pad: [0, 0, 1, 1],
            ..base()
        },
    );
    check(
        "depthwise 3×3 more padding at the start than the end",
        Case {
            pad: [2, 1, 0, 1],
            ..base()
        },
    );
    check(
        "depthwise 5×5 stride 1 pad 2, wide rows",
        Case {
            k: [5, 5],
            pad: [2; 4],
            hw: [5, 37],
            ..base()
        },
    );
    check(
        "depthwise 5×5 stride 1 pad 2 on a 7×7 map (EfficientNet's last stages: every row in the padding's reach)",
        Case {
            k: [5, 5],
            pad: [2; 4],
            hw: [7, 7],
            ..base()
        },
    );
    check(
        "depthwise 5×5 stride 1 pad 2 on a 2×3 map (taps reaching past both sides)",
        Case {
            k: [5, 5],
            pad: [2; 4],
            hw: [2, 3],
            ..base()
        },
    );
    check(
        "depthwise 3×3 dilation 2 pad 2",
        Case {
            pad: [2; 4],
            dil: 2,
            ..base()
        },
    );
    check(
        "depthwise 3×3 stride 2 dilation 2 (taps in one phase)",
        Case {
            stride: 2,
            pad: [2; 4],
            dil: 2,
            ..base()
        },
    );
    check(
        "depthwise 2×2 stride 3 (input pixels no tap reads)",
        Case {
            k: [2, 2],
            stride: 3,
            pad: [0; 4],
            hw: [11, 14],
            ..base()
        },
    );
    check(
        "depthwise 3×3 stride 1 pad 1 on 40×37 (rows convolved in place: blocks, an overlapping last block, edge columns)",
        Case {
            hw: [40, 37],
            batch: 1,
            ..base()
        },
    );
    check(
        "depthwise 3×3 wide rows, more padding at the start than the end, dilation 2",
        Case {
            hw: [9, 40],
            pad: [2, 3, 1, 1],
            dil: 2,
            ..base()
        },
    );
    check(
        "depthwise 3×3 stride 2 pad 1 on 40×37 (several 16-wide blocks a row)",
        Case {
            stride: 2,
            hw: [40, 37],
            batch: 1,
            ..base()
        },
    );
    check(
        "depthwise channel multiplier 2 (not the fast path)",
        Case {
            c_out: 12,
            ..base()
        },
    );
}

/// Training-mode BatchNorm (the patched forward and backward) against an f64 reference:
/// y = γ·(x − μ)/√(σ² + ε) + β with the batch's biased variance, and the gradients of Σ R·y.
#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn batch_norm_train_matches_reference() {
    // (shape, epsilon, offset, spread): the last has a mean ~500 times its spread, where a
    // one-pass variance loses everything unless its sums are shifted.
    for (shape, eps, offset, spread) in [(vec![4usize, 3, 5, 7], 1e-5, 3.0, 1.0), (vec![16, 10], 1e-3, 3.0, 1.0), (vec![2, 4, 1, 33], 1e-5, 3.0, 1.0), (vec![2, 3, 4, 50], 1e-5, 50.0, 0.1)] {
        let device = cpu().autodiff();
        let (n, c) = (shape[0], shape[1]);
        let s: usize = shape[2..].iter().product();
        // An offset mean and a spread that differ per channel, as activations do.
        let x_vals: Vec<f32> = values(n * c * s, 4).iter().enumerate().map(|(i, v)| v * spread * (1.0 + (i / s % c) as f32) + offset).collect();
        let r_vals = values(n * c * s, 5);
        let (gamma_vals, beta_vals) = (values(c, 6), values(c, 7));
        let data = |v: &[f32], shape: Vec<usize>| TensorData::new(v.to_vec(), shape);
        let x = Tensor::<4>::from_data(data(&x_vals, if shape.len() == 4 { shape.clone() } else { vec![n, c, 1, 1] }), &device).require_grad();
        let gamma = Tensor::<1>::from_data(data(&gamma_vals, vec![c]), &device).require_grad();
        let beta = Tensor::<1>::from_data(data(&beta_vals, vec![c]), &device).require_grad();
        let out = burn::tensor::module::batch_norm_train(x.clone(), gamma.clone(), beta.clone(), eps);
        let r = Tensor::<4>::from_data(data(&r_vals, out.output.dims().to_vec()), &device);
        let y = out.output.clone().into_data().try_to_vec::<f32>().unwrap();
        let grads = (out.output * r).sum().backward();
        let at = |i: usize, ch: usize, j: usize| (i * c + ch) * s + j;
        let (mut y_ref, mut dx_ref, mut dg_ref, mut db_ref) = (vec![0f64; x_vals.len()], vec![0f64; x_vals.len()], vec![0f64; c], vec![0f64; c]);
        let m = (n * s) as f64;
        for ch in 0..c {
            let idx: Vec<usize> = (0..n).flat_map(|i| (0..s).map(move |j| at(i, ch, j))).collect();
            let mean = idx.iter().map(|&k| x_vals[k] as f64).sum::<f64>() / m;
            let var = idx.iter().map(|&k| (x_vals[k] as f64 - mean).powi(2)).sum::<f64>() / m;
            let inv = 1.0 / (var + eps).sqrt();
            let g = gamma_vals[ch] as f64;
            let xhat = |k: usize| (x_vals[k] as f64 - mean) * inv;
            let sum_r = idx.iter().map(|&k| r_vals[k] as f64).sum::<f64>();
            let sum_rx = idx.iter().map(|&k| r_vals[k] as f64 * xhat(k)).sum::<f64>();
            for &k in &idx {
                y_ref[k] = g * xhat(k) + beta_vals[ch] as f64;
                dx_ref[k] = g * inv * (r_vals[k] as f64 - sum_r / m - xhat(k) * sum_rx / m);
            }
            dg_ref[ch] = sum_rx;
            db_ref[ch] = sum_r;
        }
        let what = format!("batch norm {shape:?}");
        close(&format!("{what}: y"), &y, &y_ref);
        close(&format!("{what}: dX"), &x.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap(), &dx_ref);
        close(&format!("{what}: dγ"), &gamma.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap(), &dg_ref);
        close(&format!("{what}: dβ"), &beta.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap(), &db_ref);
    }
}

/// Max pooling (the patched 2D kernel) against the definition: each output is the maximum of
/// its window's taps inside the input, the first one on ties; the gradient goes to that tap.
/// Values are coarse so windows hold ties; one plane holds a NaN, which must win its windows.
#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn max_pool2d_matches_reference() {
    use burn::tensor::module::max_pool2d;
    use burn::tensor::ops::MaxPoolOptions;
    // (input h, w, kernel, stride, padding, dilation)
    for (h, w, k, st, p, d) in [(12, 11, 3, 2, 1, 1), (9, 10, 2, 2, 0, 1), (7, 9, 3, 1, 1, 1), (11, 8, 3, 2, 2, 2)] {
        let device = cpu().autodiff();
        let (n, c) = (2, 3);
        let mut x_vals: Vec<f32> = values(n * c * h * w, 8).iter().map(|v| (v * 4.0).round()).collect();
        x_vals[h * w + w + 1] = f32::NAN;
        let x = Tensor::<4>::from_data(TensorData::new(x_vals.clone(), [n, c, h, w]), &device).require_grad();
        let options = MaxPoolOptions { kernel_size: [k, k], stride: [st, st], padding: [(p, p); 2], dilation: [d, d], ceil_mode: false };
        let y = max_pool2d(x.clone(), options);
        let [_, _, oh, ow] = y.dims();
        let r_vals = values(n * c * oh * ow, 9);
        let r = Tensor::<4>::from_data(TensorData::new(r_vals.clone(), [n, c, oh, ow]), &device);
        let y_vals = y.clone().into_data().try_to_vec::<f32>().unwrap();
        let grads = (y * r).sum().backward();
        let dx = x.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let mut dx_ref = vec![0f64; x_vals.len()];
        for plane in 0..n * c {
            for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                let mut best: Option<(f32, usize)> = None;
                for (ky, kx) in (0..k).flat_map(|ky| (0..k).map(move |kx| (ky, kx))) {
                    let (iy, ix) = ((oy * st + ky * d) as isize - p as isize, (ox * st + kx * d) as isize - p as isize);
                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                        continue;
                    }
                    let i = plane * h * w + iy as usize * w + ix as usize;
                    let v = x_vals[i];
                    if best.is_none_or(|(b, _)| v > b || v.is_nan()) {
                        best = Some((v, i));
                    }
                }
                let (v, i) = best.expect("every window has a tap");
                let o = (plane * oh + oy) * ow + ox;
                let what = format!("max pool {h}×{w} k{k} s{st} p{p} d{d}: y[{o}]");
                assert!(v.to_bits() == y_vals[o].to_bits() || (v.is_nan() && y_vals[o].is_nan()), "{what} = {}, reference {v}", y_vals[o]);
                dx_ref[i] += r_vals[o] as f64;
            }
        }
        close(&format!("max pool {h}×{w} k{k} s{st} p{p} d{d}: dX"), &dx, &dx_ref);
    }
}

/// `f(x)`, the gradient of `sum(f(x) · r)` and `x` read back afterwards, on the CPU backend with
/// autodiff, as [n / 100, 100] tensors. `x` stays alive throughout, so `f` cannot reuse it.
fn activation_and_gradient(f: impl Fn(Tensor<2>) -> Tensor<2>, x_vals: &[f32], r_vals: &[f32]) -> [Vec<f32>; 3] {
    let device = cpu().autodiff();
    let shape = [x_vals.len() / 100, 100];
    let x = Tensor::<2>::from_data(TensorData::new(x_vals.to_vec(), shape), &device).require_grad();
    let r = Tensor::<2>::from_data(TensorData::new(r_vals.to_vec(), shape), &device);
    let y = f(x.clone());
    let y_vals = y.clone().into_data().try_to_vec::<f32>().unwrap();
    let grads = (y * r).sum().backward();
    let dx = x.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
    [y_vals, dx, x.into_data().try_to_vec::<f32>().unwrap()]
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn relu_and_its_gradient_match_reference() {
    use burn::tensor::activation::relu;
    // Below and above the size at which the element-wise kernels go to the thread pool.
    for n in [1000, 300_000] {
        let mut x_vals = values(n, 10);
        x_vals[3] = f32::NAN;
        x_vals[5] = 0.0;
        let r_vals = values(n, 11);
        let [y_vals, dx, x_again] = activation_and_gradient(relu, &x_vals, &r_vals);
        for i in 0..n {
            let v = x_vals[i];
            assert_eq!(x_again[i].to_bits(), v.to_bits(), "relu overwrote its input at {i}");
            let (want_y, want_g) = if v.is_nan() || v > 0.0 { (v, r_vals[i]) } else { (0.0, 0.0) };
            assert!(y_vals[i].to_bits() == want_y.to_bits() || (want_y.is_nan() && y_vals[i].is_nan()), "relu(x[{i}] = {v}) = {}", y_vals[i]);
            // A NaN output keeps its gradient, as in PyTorch.
            assert_eq!(dx[i], want_g, "relu gradient at x[{i}] = {v} (n = {n})");
        }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn relu6_and_its_gradient_match_reference() {
    use burn::tensor::activation::relu6;
    // EfficientNet's activation: one clamp and a one-pass backward (vendor/burn-autodiff). As in
    // PyTorch's hardtanh, the gradient passes strictly inside (0, 6), and for a NaN.
    for n in [1000, 300_000] {
        let mut x_vals: Vec<f32> = values(n, 12).iter().map(|v| v * 8.0).collect();
        x_vals[3] = f32::NAN;
        x_vals[5] = 0.0;
        x_vals[7] = 6.0;
        let r_vals = values(n, 13);
        let [y_vals, dx, x_again] = activation_and_gradient(relu6, &x_vals, &r_vals);
        for i in 0..n {
            let v = x_vals[i];
            assert_eq!(x_again[i].to_bits(), v.to_bits(), "relu6 overwrote its input at {i}");
            let want_y = if v.is_nan() { v } else { v.clamp(0.0, 6.0) };
            assert!(y_vals[i].to_bits() == want_y.to_bits() || (want_y.is_nan() && y_vals[i].is_nan()), "relu6(x[{i}] = {v}) = {}", y_vals[i]);
            let want_g = if v.is_nan() || (v > 0.0 && v < 6.0) { r_vals[i] } else { 0.0 };
            assert_eq!(dx[i], want_g, "relu6 gradient at x[{i}] = {v} (n = {n})");
        }
    }
}

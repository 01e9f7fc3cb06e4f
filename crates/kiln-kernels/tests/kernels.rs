//! Kiln's CPU kernels on slices, checked against plain f64 references on small shapes:
//! convolution outputs, weight and input gradients (dense, strided, dilated, grouped,
//! depthwise, asymmetric "same" padding, 1×1), training-mode BatchNorm and 2D max pooling.
//!
//! Natively: `cargo test --release -p kiln-kernels`. Kiln's `tests/core/kernels.rs` includes this
//! file, so Kiln's own test runs cover it: natively (`cargo test --release --test core kernels`)
//! and in the browser (`tests/web`, built with `relaxed-simd`: the wasm build of the kernels,
//! 128-bit SIMD, no thread pool, relaxed SIMD's own kernels included).

use kiln_kernels::conv::{self, Geometry};
use kiln_kernels::{batch_norm, depthwise, pool};

#[path = "common/mod.rs"]
mod common;
use common::*;

/// `x` `[n, c, h, w]` zero-padded by `[top, left, bottom, right]`.
fn pad_input(x: &[f32], [n, c]: [usize; 2], [h, w]: [usize; 2], [t, l, b, r]: [usize; 4]) -> Vec<f32> {
    let (ph, pw) = (h + t + b, w + l + r);
    let mut out = vec![0f32; n * c * ph * pw];
    for plane in 0..n * c {
        for y in 0..h {
            out[(plane * ph + y + t) * pw + l..][..w].copy_from_slice(&x[(plane * h + y) * w..][..w]);
        }
    }
    out
}

/// The geometry of `c` for the kernels: begin padding, output size from both paddings.
fn geometry(c: &Case) -> Geometry {
    let [oh, ow] = c.out();
    Geometry { batch: c.batch, c_in: c.c_in, h: c.hw[0], w: c.hw[1], c_out: c.c_out, kh: c.k[0], kw: c.k[1], oh, ow, stride: [c.stride; 2], pad: [c.pad[0], c.pad[1]], dil: [c.dil; 2] }
}

/// `conv::conv2d` (symmetric padding only) with any padding: an asymmetric one as a padded copy
/// of the input, as burn-flex's hook does.
fn dense_forward(g: &Geometry, groups: usize, pad: [usize; 4], x: &[f32], w: &[f32]) -> Vec<f32> {
    let [t, l, b, r] = pad;
    if t == b && l == r {
        return conv::conv2d(g, groups, x, w);
    }
    let padded = pad_input(x, [g.batch, g.c_in], [g.h, g.w], pad);
    let g = Geometry { h: g.h + t + b, w: g.w + l + r, pad: [0, 0], ..*g };
    conv::conv2d(&g, groups, &padded, w)
}

/// Forward pass, weight gradient and (where Kiln has a kernel for it) input gradient of one
/// convolution against the reference.
fn check(name: &str, c: Case) {
    let [x, w, r] = c.operands();
    let [oh, ow] = c.out();
    let [y_ref, dw_ref, dx_ref] = reference(&c, &x, &w, &r, [oh, ow]);
    let g = geometry(&c);
    let depthwise = c.groups == c.c_in && c.c_out == c.c_in;
    if depthwise {
        let geo = g.depthwise();
        close(&format!("{name}: y"), &depthwise::conv2d(&x, &w, None, [c.batch, c.c_in], geo), &y_ref);
        close(&format!("{name}: dX"), &depthwise::input_grad(&r, &w, [c.batch, c.c_in], geo), &dx_ref);
    } else {
        close(&format!("{name}: y"), &dense_forward(&g, c.groups, c.pad, &x, &w), &y_ref);
        // A dense stride-1 input gradient: the forward convolution of the output gradient with
        // the kernel turned, padded k − 1 − p. (Strided ones are burn's transposed convolution,
        // checked through burn in Kiln's tests/core/kernels.rs.)
        let [t, l, b, rt] = c.pad;
        if c.groups == 1 && c.stride == 1 && c.dil == 1 && [t, b].iter().all(|&p| p < c.k[0]) && [l, rt].iter().all(|&p| p < c.k[1]) {
            let turned = conv::turn_kernel(&w, c.c_out, c.c_in, c.k[0] * c.k[1]);
            let pad = [c.k[0] - 1 - t, c.k[1] - 1 - l, c.k[0] - 1 - b, c.k[1] - 1 - rt];
            let gx = Geometry { batch: c.batch, c_in: c.c_out, h: oh, w: ow, c_out: c.c_in, kh: c.k[0], kw: c.k[1], oh: c.hw[0], ow: c.hw[1], stride: [1, 1], pad: [pad[0], pad[1]], dil: [1, 1] };
            close(&format!("{name}: dX"), &dense_forward(&gx, 1, pad, &r, &turned), &dx_ref);
            #[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
            if c.k == [1, 1] {
                // The relaxed-SIMD build's 1×1 kernel, image by image, forward and input gradient.
                let pointwise = |wm: &[f32], xs: &[f32], m: usize, k: usize| {
                    let n = oh * ow;
                    let mut out = vec![f32::NAN; c.batch * m * n];
                    for (img, dst) in out.chunks_mut(m * n).enumerate() {
                        kiln_kernels::pointwise::conv1x1(dst, wm, &xs[img * k * n..][..k * n], m, k, n);
                    }
                    out
                };
                close(&format!("{name}: y (relaxed 1×1)"), &pointwise(&w, &x, c.c_out, c.c_in), &y_ref);
                close(&format!("{name}: dX (relaxed 1×1)"), &pointwise(&turned, &r, c.c_in, c.c_out), &dx_ref);
            }
        }
    }
    // The relaxed-SIMD build's 1×1 weight gradient runs inside this one where it fits.
    close(&format!("{name}: dW"), &conv::weight_grad(&g, c.groups, &x, &r), &dw_ref);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn conv2d_matches_reference_dense() {
    for (name, c) in dense_cases() {
        check(&name, c);
    }
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn conv2d_matches_reference_depthwise() {
    for (name, c) in depthwise_cases() {
        check(&name, c);
    }
}

/// A bias is added to every output of its channel.
#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn depthwise_conv2d_adds_its_bias() {
    let (name, c) = depthwise_cases().swap_remove(2);
    let [x, w, r] = c.operands();
    let [oh, ow] = c.out();
    let [mut y_ref, _, _] = reference(&c, &x, &w, &r, [oh, ow]);
    let bias = values(c.c_out, 14);
    y_ref.iter_mut().enumerate().for_each(|(i, y)| *y += bias[i / (oh * ow) % c.c_out] as f64);
    close(&format!("{name} with bias: y"), &depthwise::conv2d(&x, &w, Some(&bias), [c.batch, c.c_in], geometry(&c).depthwise()), &y_ref);
}

/// Training-mode BatchNorm, forward and backward, against the f64 reference.
#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn batch_norm_train_matches_reference() {
    for (shape, eps, x) in batch_norm_cases() {
        let (n, c) = (shape[0], shape[1]);
        let s: usize = shape[2..].iter().product();
        let r = values(n * c * s, 5);
        let (gamma, beta) = (values(c, 6), values(c, 7));
        let [y_ref, dx_ref, dg_ref, db_ref] = batch_norm_reference(&x, &gamma, &beta, &r, [n, c, s], eps);
        let (y, mean, var) = batch_norm::train(&x, &gamma, &beta, [n, c, s], eps);
        let (dx, dg, db) = batch_norm::train_backward(&x, &gamma, &mean, &var, &r, [n, c, s], eps);
        let what = format!("batch norm {shape:?}");
        close(&format!("{what}: y"), &y, &y_ref);
        close(&format!("{what}: dX"), &dx, &dx_ref);
        close(&format!("{what}: dγ"), &dg, &dg_ref);
        close(&format!("{what}: dβ"), &db, &db_ref);
    }
}

/// 2D max pooling against the definition: each output the first maximum of its window's taps
/// inside the input (a NaN wins), and its index that tap's.
#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn max_pool2d_matches_reference() {
    for (h, w, k, st, p, d) in MAX_POOL_CASES {
        let planes = 2 * 3;
        let x = max_pool_input(planes, h, w);
        let out = |len: usize| (len + 2 * p - d * (k - 1) - 1) / st + 1;
        let (oh, ow) = (out(h), out(w));
        let geo = pool::Pool2d { input: [h, w], output: [oh, ow], kernel: [k, k], stride: [st, st], pad: [p, p], dil: [d, d] };
        let (y, idx) = pool::max_pool2d_with_indices(&x, planes, geo, f32::NEG_INFINITY);
        for plane in 0..planes {
            for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                let (v, i) = max_pool_reference(&x, plane, [h, w], (oy, ox), k, st, p, d);
                let o = (plane * oh + oy) * ow + ox;
                let what = format!("max pool {h}×{w} k{k} s{st} p{p} d{d}: [{o}]");
                assert!(v.to_bits() == y[o].to_bits() || (v.is_nan() && y[o].is_nan()), "{what} = {}, reference {v}", y[o]);
                assert_eq!(idx[o] as usize, i - plane * h * w, "{what}: index");
            }
        }
    }
}

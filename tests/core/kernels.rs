//! Kiln's hooks into burn's CPU backend, end to end through burn's autodiff: the patched
//! burn-flex (vendor/burn-flex, see its KILN-PATCH.md) hands convolutions, their gradients,
//! training-mode BatchNorm and max pooling to Kiln's kernels (crates/kiln-kernels, whose own
//! tests check them on slices), and the patched burn-autodiff (vendor/burn-autodiff) runs
//! ReLU6 as one clamp. Each check runs the same cases against the same f64 references as the
//! kernel tests (crates/kiln-kernels/tests/common), here through `Tensor` operations, so the
//! hooks' dispatch (depthwise or dense, symmetric or "same" padding, stride-1 input gradients as
//! convolutions, burn's own paths for the rest) is covered too. `slices` below runs the kernel
//! tests themselves. The browser tests (`tests/web`) include this file, so all of it runs on the
//! wasm build too (128-bit SIMD, no thread pool; with `relaxed-simd`, its own kernels).

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

use crate::common::cpu;

#[path = "../../crates/kiln-kernels/tests/common/mod.rs"]
mod reference;

/// The kernels' own checks on slices (crates/kiln-kernels/tests/kernels.rs), also run here so
/// that Kiln's native test run and the browser run (`tests/web` includes this file) cover them.
#[path = "../../crates/kiln-kernels/tests/kernels.rs"]
mod slices;
use reference::{Case, batch_norm_cases, batch_norm_reference, close, dense_cases, depthwise_cases, max_pool_input, max_pool_reference, reference, values, MAX_POOL_CASES};

/// A convolution's output, weight gradient and input gradient as burn's autodiff computes them
/// on `device`, with their f64 references.
fn conv_tensors(c: &Case, device: &Device) -> ([Tensor<4>; 3], [Vec<f64>; 3]) {
    let device = device.clone().autodiff();
    let cig = c.c_in / c.groups;
    let [x_vals, w_vals, r_vals] = c.operands();
    let x = Tensor::<4>::from_data(TensorData::new(x_vals.clone(), [c.batch, c.c_in, c.hw[0], c.hw[1]]), &device).require_grad();
    let w = Tensor::<4>::from_data(TensorData::new(w_vals.clone(), [c.c_out, cig, c.k[0], c.k[1]]), &device).require_grad();
    let [t, l, b, r] = c.pad;
    let options = ConvOptions::new_with_padding([c.stride; 2], [(t, b), (l, r)], [c.dil; 2], c.groups);
    let y = conv2d(x.clone(), w.clone(), None, options);
    let [_, _, oh, ow] = y.dims();
    assert_eq!([oh, ow], c.out(), "output size");
    let rt = Tensor::<4>::from_data(TensorData::new(r_vals.clone(), [c.batch, c.c_out, oh, ow]), &device);
    let grads = (y.clone() * rt).sum().backward();
    let grad = |t: Tensor<4>| t.grad(&grads).expect("gradient");
    ([y.inner(), grad(w), grad(x)], reference(c, &x_vals, &w_vals, &r_vals, [oh, ow]))
}

const PARTS: [&str; 3] = ["y", "dW", "dX"];

fn check(name: &str, c: Case) {
    let (got, want) = conv_tensors(&c, &cpu());
    for ((t, w), part) in got.into_iter().zip(&want).zip(PARTS) {
        close(&format!("{name}: {part}"), &t.into_data().try_to_vec::<f32>().unwrap(), w);
    }
}

/// Every kernel case (dense and depthwise) on a GPU device, read back asynchronously as WebGPU
/// requires: the kernels wgpu chooses by shape without autotune (vendor/burn-cubecl's
/// `heuristic.rs`) against the same references. Run natively on lavapipe (`tests/core/wgpu.rs`)
/// and on WebGPU in the browser tests.
pub async fn check_all_on(device: &Device) {
    for (name, c) in dense_cases().into_iter().chain(depthwise_cases()) {
        let (got, want) = conv_tensors(&c, device);
        for ((t, w), part) in got.into_iter().zip(&want).zip(PARTS) {
            let v = t.into_data_async().await.unwrap().convert::<f32>().try_to_vec::<f32>().unwrap();
            close(&format!("{name}: {part}"), &v, w);
        }
    }
    // The matmul under the heads (and the 1×1 convolutions): sizes no tile divides.
    let (b, m, k, n) = (2, 19, 37, 11);
    let a: Vec<f32> = (0..b * m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0).collect();
    let w: Vec<f32> = (0..b * k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0).collect();
    let want: Vec<f64> = (0..b * m * n)
        .map(|o| {
            let (bi, r, c) = (o / (m * n), o / n % m, o % n);
            (0..k).map(|j| a[(bi * m + r) * k + j] as f64 * w[(bi * k + j) * n + c] as f64).sum()
        })
        .collect();
    let a = Tensor::<3>::from_data(TensorData::new(a, [b, m, k]), device);
    let w = Tensor::<3>::from_data(TensorData::new(w, [b, k, n]), device);
    let got = a.matmul(w).into_data_async().await.unwrap().convert::<f32>().try_to_vec::<f32>().unwrap();
    close("matmul", &got, &want);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn conv2d_gradients_match_reference_dense() {
    for (name, c) in dense_cases() {
        check(&name, c);
    }
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn conv2d_gradients_match_reference_depthwise() {
    for (name, c) in depthwise_cases() {
        check(&name, c);
    }
}

/// Training-mode BatchNorm (the patched forward and backward) against an f64 reference:
/// y = γ·(x − μ)/√(σ² + ε) + β with the batch's biased variance, and the gradients of Σ R·y.
#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn batch_norm_train_matches_reference() {
    for (shape, eps, x_vals) in batch_norm_cases() {
        let device = cpu().autodiff();
        let (n, c) = (shape[0], shape[1]);
        let s: usize = shape[2..].iter().product();
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
        let [y_ref, dx_ref, dg_ref, db_ref] = batch_norm_reference(&x_vals, &gamma_vals, &beta_vals, &r_vals, [n, c, s], eps);
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
    for (h, w, k, st, p, d) in MAX_POOL_CASES {
        let device = cpu().autodiff();
        let (n, c) = (2, 3);
        let x_vals = max_pool_input(n * c, h, w);
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
                let (v, i) = max_pool_reference(&x_vals, plane, [h, w], (oy, ox), k, st, p, d);
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

//! Kiln patch: the hooks that hand f32 convolutions, their gradients and training-mode
//! BatchNorm to Kiln's kernels (`kiln-kernels`, crates/kiln-kernels in Kiln's repository), which
//! work on plain slices. Each hook checks that its operands are f32 with a shape the kernel
//! takes (`None` otherwise: the caller keeps upstream's path), makes them contiguous, and wraps
//! the result in a tensor. See KILN-PATCH.md for what would retire each one.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::conv::{calculate_conv_output_size, calculate_conv_output_size_asymmetric};
use burn_backend::ops::{ConvOptions, ConvTransposeOptions};
use burn_std::{Bytes, Shape};
use kiln_kernels::conv::Geometry;
use kiln_kernels::depthwise::Depthwise;

use crate::{FlexTensor, Layout};

fn f32_tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(shape), DType::F32)
}

/// A contiguous tensor's f32 elements (exactly its element count).
fn f32s(t: &FlexTensor) -> &[f32] {
    &t.storage::<f32>()[..t.layout().num_elements()]
}

/// `conv3d` on a 2D problem (`[n, c, 1, h, w]`, kernel depth 1) in f32 with symmetric padding
/// (`kiln_kernels::conv::conv2d`: im2col tiles built from NCHW plus gemm), or `None` when it is
/// not one (the caller falls back to the generic path).
pub fn conv2d_in_3d_f32(x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>, options: &ConvOptions<3>) -> Option<FlexTensor> {
    let (xs, ws) = (x.layout().shape(), weight.layout().shape());
    let flat_depth = xs[2] == 1 && ws[2] == 1 && options.stride[0] == 1 && options.dilation[0] == 1 && options.padding[0] == (0, 0);
    let symmetric = options.padding.iter().all(|(b, e)| b == e);
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 || bias.is_some_and(|b| b.dtype() != DType::F32) || !flat_depth || !symmetric {
        return None;
    }
    let [_, ph, pw] = options.padding_begin();
    let g = Geometry {
        batch: xs[0],
        c_in: xs[1],
        h: xs[3],
        w: xs[4],
        c_out: ws[0],
        kh: ws[3],
        kw: ws[4],
        oh: calculate_conv_output_size(ws[3], options.stride[1], ph, options.dilation[1], xs[3]),
        ow: calculate_conv_output_size(ws[4], options.stride[2], pw, options.dilation[2], xs[4]),
        stride: [options.stride[1], options.stride[2]],
        pad: [ph, pw],
        dil: [options.dilation[1], options.dilation[2]],
    };
    let x = x.clone().to_contiguous();
    let weight = weight.clone().to_contiguous();
    let mut output = kiln_kernels::conv::conv2d(&g, options.groups, f32s(&x), f32s(&weight));
    if let Some(bias) = bias {
        let bias = bias.clone().to_contiguous();
        super::conv_common::add_bias(&mut output, bias.storage::<f32>(), g.batch, g.c_out, g.oh * g.ow);
    }
    Some(f32_tensor(output, Shape::from(vec![g.batch, g.c_out, 1, g.oh, g.ow])))
}

/// A depthwise f32 `conv2d` (`kiln_kernels::depthwise::conv2d`), with any padding, asymmetric
/// ("same") padding included; `None` unless all operands are f32. The caller has checked that
/// the convolution is depthwise (`conv::is_depthwise_2d`).
pub fn depthwise_conv2d_f32(x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>, options: &ConvOptions<2>) -> Option<FlexTensor> {
    let f32 = |t: &FlexTensor| (t.dtype() == DType::F32).then(|| t.clone().to_contiguous());
    let (x, weight) = (f32(x)?, f32(weight)?);
    let bias = match bias {
        Some(b) => Some(f32(b)?),
        None => None,
    };
    let (xs, ws) = (x.layout().shape(), weight.layout().shape());
    let out = |a: usize| calculate_conv_output_size_asymmetric(ws[2 + a], options.stride[a], options.padding[a], options.dilation[a], xs[2 + a]);
    let geo = Depthwise { h: xs[2], w: xs[3], oh: out(0), ow: out(1), kh: ws[2], kw: ws[3], stride: options.stride, pad: options.padding_begin(), dil: options.dilation };
    let [n, c] = [xs[0], xs[1]];
    let out = kiln_kernels::depthwise::conv2d(f32s(&x), f32s(&weight), bias.as_ref().map(f32s), [n, c], geo);
    Some(f32_tensor(out, Shape::from(vec![n, c, geo.oh, geo.ow])))
}

/// dW of `conv2d(x, weight, options)` given the output gradient, for f32 tensors (`None`
/// otherwise: the caller converts), with any padding (`kiln_kernels::conv::weight_grad`: im2col
/// + gemm per chunk of images, or the depthwise kernel).
pub fn conv2d_weight_backward_f32(x: &FlexTensor, output_grad: &FlexTensor, weight_shape: &Shape, options: &ConvOptions<2>) -> Option<FlexTensor> {
    if x.dtype() != DType::F32 || output_grad.dtype() != DType::F32 {
        return None;
    }
    let xs = x.layout().shape();
    let gs = output_grad.layout().shape();
    let g = Geometry {
        batch: xs[0],
        c_in: xs[1],
        h: xs[2],
        w: xs[3],
        c_out: gs[1],
        kh: weight_shape[2],
        kw: weight_shape[3],
        oh: gs[2],
        ow: gs[3],
        stride: options.stride,
        pad: options.padding_begin(),
        dil: options.dilation,
    };
    let x = x.clone().to_contiguous();
    let grad = output_grad.clone().to_contiguous();
    let dw = kiln_kernels::conv::weight_grad(&g, options.groups, f32s(&x), f32s(&grad));
    Some(f32_tensor(dw, weight_shape.clone()))
}

/// The depthwise `conv_transpose2d` that burn's default input gradient of a depthwise
/// convolution calls (symmetric padding), as the depthwise input gradient.
pub fn depthwise_conv_transpose2d_f32(x: &FlexTensor, weight: &FlexTensor, options: &ConvTransposeOptions<2>) -> Option<FlexTensor> {
    let (xs, ws) = (x.layout().shape(), weight.layout().shape());
    let channels = xs[1];
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 || options.groups != channels || ws[0] != channels || ws[1] != 1 {
        return None;
    }
    let (ih, iw, kh, kw) = (xs[2], xs[3], ws[2], ws[3]);
    let [s, d, p, po] = [options.stride, options.dilation, options.padding, options.padding_out];
    let oh = ((ih - 1) * s[0] + d[0] * (kh - 1) + po[0] + 1).checked_sub(2 * p[0])?;
    let ow = ((iw - 1) * s[1] + d[1] * (kw - 1) + po[1] + 1).checked_sub(2 * p[1])?;
    Some(depthwise_input_grad(x, weight, [oh, ow], s, p, d))
}

/// The input gradient of a depthwise f32 `conv2d` (`None` when it is not one), for any
/// padding: asymmetric ("same") padding scatters straight into the unpadded input, with no
/// padded copy of `x` and no cropped, strided view of a padded gradient.
pub fn depthwise_conv2d_x_backward_f32(x_shape: &Shape, weight: &FlexTensor, output_grad: &FlexTensor, options: &ConvOptions<2>) -> Option<FlexTensor> {
    let (gs, ws) = (output_grad.layout().shape(), weight.layout().shape());
    let channels = x_shape[1];
    if output_grad.dtype() != DType::F32 || weight.dtype() != DType::F32 || options.groups != channels || ws[0] != channels || ws[1] != 1 || gs[1] != channels {
        return None;
    }
    Some(depthwise_input_grad(output_grad, weight, [x_shape[2], x_shape[3]], options.stride, options.padding_begin(), options.dilation))
}

/// The input gradient of a depthwise convolution (`kiln_kernels::depthwise::input_grad`);
/// `size` is the convolution input's height and width.
fn depthwise_input_grad(grad: &FlexTensor, weight: &FlexTensor, size: [usize; 2], s: [usize; 2], p: [usize; 2], d: [usize; 2]) -> FlexTensor {
    let (gs, ws) = (grad.layout().shape(), weight.layout().shape());
    let (n, channels) = (gs[0], gs[1]);
    let geo = Depthwise { h: size[0], w: size[1], oh: gs[2], ow: gs[3], kh: ws[2], kw: ws[3], stride: s, pad: p, dil: d };
    let grad = grad.clone().to_contiguous();
    let weight = weight.clone().to_contiguous();
    let dx = kiln_kernels::depthwise::input_grad(f32s(&grad), f32s(&weight), [n, channels], geo);
    f32_tensor(dx, Shape::from(vec![n, channels, size[0], size[1]]))
}

/// The input gradient of a dense, stride-1 f32 `conv2d` posed as a forward convolution (`None`
/// when it is not one): `dx = conv2d(grad, w')` with `w'` the kernel turned by 180° with its
/// channel axes swapped (`kiln_kernels::conv::turn_kernel`) and padding `k - 1 - p` on each
/// side. Returns the kernel and options for the caller's `conv2d`.
pub fn conv2d_x_backward_as_conv(weight: &FlexTensor, options: &ConvOptions<2>) -> Option<(FlexTensor, ConvOptions<2>)> {
    let ws = weight.layout().shape();
    let (c_out, c_in, k) = (ws[0], ws[1], [ws[2], ws[3]]);
    let fits = (0..2).all(|a| options.padding[a].0 < k[a] && options.padding[a].1 < k[a]);
    if weight.dtype() != DType::F32 || options.groups != 1 || options.stride != [1, 1] || options.dilation != [1, 1] || !fits {
        return None;
    }
    let weight = weight.clone().to_contiguous();
    let turned = kiln_kernels::conv::turn_kernel(f32s(&weight), c_out, c_in, k[0] * k[1]);
    let turned = f32_tensor(turned, Shape::from(vec![c_in, c_out, k[0], k[1]]));
    let padding = core::array::from_fn(|a| (k[a] - 1 - options.padding[a].0, k[a] - 1 - options.padding[a].1));
    Some((turned, ConvOptions::new_with_padding([1, 1], padding, [1, 1], 1)))
}

/// [batch, channels, spatial] of a `[batch, channels, ...]` tensor.
fn bn_dims(x: &FlexTensor) -> [usize; 3] {
    let shape = x.layout().shape();
    [shape[0], shape[1], shape.num_elements() / (shape[0] * shape[1]).max(1)]
}

/// (output, mean, biased variance) of training-mode BatchNorm (`kiln_kernels::batch_norm`);
/// `None` unless all are f32.
pub fn batch_norm_train_f32(x: &FlexTensor, gamma: &FlexTensor, beta: &FlexTensor, epsilon: f64) -> Option<(FlexTensor, FlexTensor, FlexTensor)> {
    if [x.dtype(), gamma.dtype(), beta.dtype()].iter().any(|d| *d != DType::F32) {
        return None;
    }
    let dims = bn_dims(x);
    let x = x.clone().to_contiguous();
    let (gamma, beta) = (gamma.clone().to_contiguous(), beta.clone().to_contiguous());
    let (out, mean, var) = kiln_kernels::batch_norm::train(f32s(&x), f32s(&gamma), f32s(&beta), dims, epsilon);
    let c = Shape::from(vec![dims[1]]);
    Some((f32_tensor(out, x.layout().shape().clone()), f32_tensor(mean, c.clone()), f32_tensor(var, c)))
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
    let dims = bn_dims(x);
    let x = x.clone().to_contiguous();
    let grad = output_grad.clone().to_contiguous();
    let (gamma, mean, variance) = (gamma.clone().to_contiguous(), mean.clone().to_contiguous(), variance.clone().to_contiguous());
    let (dx, dg, db) = kiln_kernels::batch_norm::train_backward(f32s(&x), f32s(&gamma), f32s(&mean), f32s(&variance), f32s(&grad), dims, epsilon);
    let c = Shape::from(vec![dims[1]]);
    Some((f32_tensor(dx, x.layout().shape().clone()), f32_tensor(dg, c.clone()), f32_tensor(db, c)))
}

//! Kiln patch: the weight gradient of a 2D convolution, computed directly (f32, NCHW).
//!
//! burn's default `conv2d_weight_backward` runs a second convolution with batch and channels
//! swapped: for a 3×3 kernel that is a convolution whose "kernel" is the whole output map and
//! whose output is 3×3, i.e. a skinny gemm per input channel over the full gradient, and for
//! grouped convolutions one such convolution (plus a slice-assign of the whole gradient) per
//! group. Training spends most of a step there. Here:
//! - groups == 1: dW[co, (ci,ky,kx)] = Σ_n Σ_o G[n,co,o] · cols_n[(ci,ky,kx), o], one gemm per
//!   chunk of images over an im2col buffer, images split across threads and summed at the end
//!   (per group when grouped);
//! - depthwise (one input and one output channel per group): `depthwise.rs`, one dot product per
//!   tap over a padded phase plane.
//!
//! Other dtypes go through f32. Asymmetric ("same") padding is handled in place for the weight
//! gradient; depthwise input gradients are `depthwise.rs`'s.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use burn_std::{Bytes, Shape};

use crate::{FlexTensor, Layout};

use super::conv_nchw::{Geometry, im2col};

/// The im2col buffer of one chunk of images stays under this many floats (16 MiB).
const COLS_FLOATS: usize = 4 << 20;

/// dW of `conv2d(x, weight, options)` given the output gradient, for f32 tensors (`None`
/// otherwise: the caller converts). Asymmetric padding needs no padded copy of `x`: taps are
/// bounded by the input, and the end padding is implied by the output gradient's size.
pub fn conv2d_weight_backward_f32(
    x: &FlexTensor,
    output_grad: &FlexTensor,
    weight_shape: &Shape,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
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
    let depthwise = options.groups == g.c_in && g.c_out == g.c_in && weight_shape[1] == 1;
    let x = x.clone().to_contiguous();
    let grad = output_grad.clone().to_contiguous();
    let (xd, gd): (&[f32], &[f32]) = (x.storage(), grad.storage());
    let dw = if depthwise { super::depthwise::weight_grad(xd, gd, [g.batch, g.c_in], g.depthwise()) } else { dense_weight_grad(&g, options.groups, xd, gd) };
    Some(FlexTensor::new(Bytes::from_elems(dw), Layout::contiguous(weight_shape.clone()), DType::F32))
}

fn threads() -> usize {
    #[cfg(feature = "rayon")]
    return rayon::current_num_threads();
    #[cfg(not(feature = "rayon"))]
    1
}

/// Run `f(part)` for `parts` parts, on the thread pool when there is one.
fn for_parts<R: Send>(parts: usize, f: impl Fn(usize) -> R + Send + Sync) -> Vec<R> {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..parts).into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "rayon"))]
    (0..parts).map(f).collect()
}

fn dense_weight_grad(g: &Geometry, groups: usize, x: &[f32], grad: &[f32]) -> Vec<f32> {
    #[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
    if let Some(dw) = pointwise_weight_grad(g, groups, x, grad) {
        return dw;
    }
    let (cig, cog) = (g.c_in / groups, g.c_out / groups);
    let rows = cig * g.kh * g.kw; // one im2col row per (ci, ky, kx) of a group
    let spatial = g.oh * g.ow;
    let per_chunk = (COLS_FLOATS / (rows * spatial).max(1)).max(1);
    let parts = threads().min(g.batch).max(1);
    let images_per_part = g.batch.div_ceil(parts);
    // One thread per part; with fewer images than threads, gemm splits its own work.
    let inner = if parts < threads() { gemm_parallelism() } else { gemm::Parallelism::None };
    // Each part sums into dWᵀ, `[group][rows][cog]`: gemm then needs no transposed problem, and
    // the operand it packs with a transposing gather is the output gradient (cog rows) rather
    // than the k·k-times larger im2col matrix; one transpose at the end restores `[c_out][rows]`.
    let partials = for_parts(parts, |p| {
        let (first, end) = (p * images_per_part, ((p + 1) * images_per_part).min(g.batch));
        let mut dwt = vec![0f32; g.c_out * rows];
        let (mut cols, mut lhs) = (Vec::new(), Vec::new());
        let mut n0 = first;
        while n0 < end {
            let n1 = (n0 + per_chunk).min(end);
            let k = (n1 - n0) * spatial;
            for gi in 0..groups {
                // Not zeroed: im2col writes every element, padding included.
                super::resize_uninit(&mut cols, rows * k);
                for n in n0..n1 {
                    let image = &x[(n * g.c_in + gi * cig) * g.h * g.w..][..cig * g.h * g.w];
                    im2col(g, cig, image, &mut cols[(n - n0) * spatial..], k, 0, spatial);
                }
                // The chunk's output gradient for this group as one [cog, k] matrix (a view of
                // the gradient itself when the chunk is one image).
                let g_rows: &[f32] = if n1 - n0 == 1 {
                    &grad[(n0 * g.c_out + gi * cog) * spatial..][..cog * spatial]
                } else {
                    super::resize_uninit(&mut lhs, cog * k);
                    for n in n0..n1 {
                        let src = &grad[(n * g.c_out + gi * cog) * spatial..][..cog * spatial];
                        for (co, row) in src.chunks_exact(spatial).enumerate() {
                            lhs[co * k + (n - n0) * spatial..][..spatial].copy_from_slice(row);
                        }
                    }
                    &lhs
                };
                // dwᵀ[group] (+)= (g_rows[cog, k] · cols[rows, k]ᵀ)ᵀ, stored column-major.
                unsafe {
                    gemm::gemm(
                        cog,
                        rows,
                        k,
                        dwt.as_mut_ptr().add(gi * rows * cog),
                        cog as isize,
                        1,
                        n0 > first,
                        g_rows.as_ptr(),
                        1,
                        k as isize,
                        cols.as_ptr(),
                        k as isize,
                        1,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        inner,
                    );
                }
            }
            n0 = n1;
        }
        dwt
    });
    transpose_dwt(&sum_parts(partials, g.c_out * rows), g.c_out, rows, cog)
}

/// The relaxed-SIMD browser build's 1×1 weight gradient (`pointwise.rs`), for a stride-1
/// unpadded 1×1 convolution when the images alone keep the pool busy (else gemm splits each
/// one). It transposes the operand with fewer channels and vectorises over them, so the sum
/// comes out as `dw` or as `dwᵀ`.
#[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
fn pointwise_weight_grad(g: &Geometry, groups: usize, x: &[f32], grad: &[f32]) -> Option<Vec<f32>> {
    let one_by_one = g.kh == 1 && g.kw == 1 && g.stride == [1, 1] && g.pad == [0, 0] && (g.oh, g.ow) == (g.h, g.w);
    let (cin, cout, spatial) = (g.c_in, g.c_out, g.h * g.w);
    let transpose_x = cin <= cout;
    let (m, k) = if transpose_x { (cout, cin) } else { (cin, cout) };
    let parts = threads().max(1);
    if groups != 1 || !one_by_one || g.batch < parts || !super::pointwise::weight_grad_1x1_fits(m, k) {
        return None;
    }
    let per_part = g.batch.div_ceil(parts);
    let partials = for_parts(parts, |p| {
        let (mut sum, mut scratch) = (vec![0f32; m * k], Vec::new());
        for n in (p * per_part)..((p + 1) * per_part).min(g.batch) {
            let xi = &x[n * cin * spatial..][..cin * spatial];
            let gi = &grad[n * cout * spatial..][..cout * spatial];
            let (a, b) = if transpose_x { (gi, xi) } else { (xi, gi) };
            super::pointwise::weight_grad_1x1_f32(&mut sum, a, b, m, k, spatial, &mut scratch);
        }
        sum
    });
    let sum = sum_parts(partials, m * k);
    Some(if transpose_x { sum } else { transpose_dwt(&sum, cout, cin, cout) })
}

/// The threads' partial sums added into the first (`len` zeros when there are none).
fn sum_parts(partials: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut iter = partials.into_iter();
    let mut sum = iter.next().unwrap_or_else(|| vec![0f32; len]);
    for part in iter {
        super::for_each_chunk_zip(&mut sum, &part, |a, b| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
    }
    sum
}

/// `dw[group][co][r] = dwt[group][r][co]` for `c_out` rows of `rows` taps, `cog` per group.
fn transpose_dwt(dwt: &[f32], c_out: usize, rows: usize, cog: usize) -> Vec<f32> {
    let mut dw = super::uninit_vec::<f32>(c_out * rows);
    // dw[group][co][r] = dwt[group][r][co], in tiles of 16 output rows by 64 columns so both
    // sides stay in cache (a row at a time read dwt with a page-sized stride: +10 % on a
    // 1-thread ResNet-18 step).
    const BLOCK: usize = 16;
    super::for_each_row_mut(&mut dw, BLOCK * rows, |blk, dst| {
        for r0 in (0..rows).step_by(64) {
            let r1 = (r0 + 64).min(rows);
            for (j, d) in dst.chunks_exact_mut(rows).enumerate() {
                let row = blk * BLOCK + j;
                let (gi, co) = (row / cog, row % cog);
                let src = &dwt[gi * rows * cog..][..rows * cog];
                (r0..r1).for_each(|r| d[r] = src[r * cog + co]);
            }
        }
    });
    dw
}

fn gemm_parallelism() -> gemm::Parallelism {
    #[cfg(feature = "rayon")]
    return gemm::Parallelism::Rayon(0);
    #[cfg(not(feature = "rayon"))]
    gemm::Parallelism::None
}

/// The depthwise `conv_transpose2d` that burn's default input gradient of a depthwise
/// convolution calls (symmetric padding), as a direct scatter per plane.
pub fn depthwise_conv_transpose2d_f32(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &burn_backend::ops::ConvTransposeOptions<2>,
) -> Option<FlexTensor> {
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
pub fn depthwise_conv2d_x_backward_f32(
    x_shape: &Shape,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    let (gs, ws) = (output_grad.layout().shape(), weight.layout().shape());
    let channels = x_shape[1];
    if output_grad.dtype() != DType::F32 || weight.dtype() != DType::F32 || options.groups != channels || ws[0] != channels || ws[1] != 1 || gs[1] != channels {
        return None;
    }
    Some(depthwise_input_grad(output_grad, weight, [x_shape[2], x_shape[3]], options.stride, options.padding_begin(), options.dilation))
}

/// The input gradient of a dense, stride-1 f32 `conv2d` posed as a forward convolution (`None`
/// when it is not one): `dx = conv2d(grad, w')` with `w'[ci, co]` the kernel `w[co, ci]` turned
/// by 180° and padding `k - 1 - p` on each side. burn's default is a transposed convolution,
/// whose gemm writes k·k columns per input pixel that a scatter-add (col2im) then folds; here
/// the gemm's result is the gradient itself and the gather is the forward pass's im2col.
/// Returns the kernel and options for the caller's `conv2d`.
pub fn conv2d_x_backward_as_conv(weight: &FlexTensor, options: &ConvOptions<2>) -> Option<(FlexTensor, ConvOptions<2>)> {
    let ws = weight.layout().shape();
    let (c_out, c_in, k) = (ws[0], ws[1], [ws[2], ws[3]]);
    let fits = (0..2).all(|a| options.padding[a].0 < k[a] && options.padding[a].1 < k[a]);
    if weight.dtype() != DType::F32 || options.groups != 1 || options.stride != [1, 1] || options.dilation != [1, 1] || !fits {
        return None;
    }
    let weight = weight.clone().to_contiguous();
    let wd: &[f32] = weight.storage();
    let taps = k[0] * k[1];
    let mut turned = super::uninit_vec::<f32>(wd.len());
    // Blocks of input channels, so each output channel's weights are read as one run.
    const BLOCK: usize = 16;
    super::for_each_row_mut(&mut turned, BLOCK * c_out * taps, |blk, rows| {
        let ci0 = blk * BLOCK;
        let n = rows.len() / (c_out * taps);
        for co in 0..c_out {
            let src = &wd[(co * c_in + ci0) * taps..][..n * taps];
            for (j, src) in src.chunks_exact(taps).enumerate() {
                let dst = &mut rows[(j * c_out + co) * taps..][..taps];
                // Flipping both kernel axes reverses the row-major tap order.
                dst.iter_mut().zip(src.iter().rev()).for_each(|(d, s)| *d = *s);
            }
        }
    });
    let shape = Shape::from(vec![c_in, c_out, k[0], k[1]]);
    let turned = FlexTensor::new(Bytes::from_elems(turned), Layout::contiguous(shape), DType::F32);
    let padding = core::array::from_fn(|a| (k[a] - 1 - options.padding[a].0, k[a] - 1 - options.padding[a].1));
    Some((turned, ConvOptions::new_with_padding([1, 1], padding, [1, 1], 1)))
}

/// The input gradient of a depthwise convolution (`super::depthwise`); `size` is the
/// convolution input's height and width.
fn depthwise_input_grad(grad: &FlexTensor, weight: &FlexTensor, size: [usize; 2], s: [usize; 2], p: [usize; 2], d: [usize; 2]) -> FlexTensor {
    let (gs, ws) = (grad.layout().shape(), weight.layout().shape());
    let (n, channels) = (gs[0], gs[1]);
    let geo = super::depthwise::Depthwise { h: size[0], w: size[1], oh: gs[2], ow: gs[3], kh: ws[2], kw: ws[3], stride: s, pad: p, dil: d };
    let grad = grad.clone().to_contiguous();
    let weight = weight.clone().to_contiguous();
    let dx = super::depthwise::input_grad(grad.storage(), weight.storage(), [n, channels], geo);
    FlexTensor::new(Bytes::from_elems(dx), Layout::contiguous(Shape::from(vec![n, channels, size[0], size[1]])), DType::F32)
}

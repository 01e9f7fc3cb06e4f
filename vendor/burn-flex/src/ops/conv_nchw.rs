//! Kiln patch: 2D convolutions as im2col + gemm on NCHW data (f32), forward pass.
//!
//! Upstream's generic path (`conv::conv3d_impl`) converts the input to NHWC, builds each tile of
//! im2col rows pixel by pixel (`[pixel][c·kh·kw]`), and hands gemm a row-major left operand that
//! its packing has to transpose, panel by panel. Here the tile is built the other way round,
//! `[c·kh·kw][pixel]`, straight from NCHW (each row a shifted copy of input row segments), and the
//! weight is used in its own layout: no NHWC copy, no reordered weight, and gemm packs its left
//! operand with contiguous copies. The same tile builder feeds the weight gradient
//! (`conv_backward.rs`) and, through a convolution with the kernel turned, the input gradient.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use burn_backend::ops::conv::calculate_conv_output_size;
use burn_std::{Bytes, Shape};

use crate::{FlexTensor, Layout};

/// Output pixels per im2col tile: a multiple of gemm's 64-row microkernel.
const TILE: usize = 512;

pub(super) struct Geometry {
    pub(super) batch: usize,
    pub(super) c_in: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) c_out: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) oh: usize,
    pub(super) ow: usize,
    pub(super) stride: [usize; 2],
    pub(super) pad: [usize; 2],
    pub(super) dil: [usize; 2],
}

impl Geometry {
    /// One plane of this convolution when it is depthwise.
    pub(super) fn depthwise(&self) -> super::depthwise::Depthwise {
        super::depthwise::Depthwise { h: self.h, w: self.w, oh: self.oh, ow: self.ow, kh: self.kh, kw: self.kw, stride: self.stride, pad: self.pad, dil: self.dil }
    }

    /// Input rows/cols that kernel offset `k` reads for output index `o`, or `None` in padding.
    #[inline(always)]
    pub(super) fn src(o: usize, k: usize, stride: usize, dil: usize, pad: usize, len: usize) -> Option<usize> {
        let i = (o * stride + k * dil).checked_sub(pad)?;
        (i < len).then_some(i)
    }

    /// Output indices `o` in `[lo, hi)` whose input index for kernel offset `k` lies inside.
    pub(super) fn valid(&self, k: usize, axis: usize) -> (usize, usize) {
        let (len, out) = if axis == 0 { (self.h, self.oh) } else { (self.w, self.ow) };
        taps_inside(k * self.dil[axis], self.pad[axis], self.stride[axis], len, out)
    }
}

/// Output indices `o` in `[lo, hi)`, `hi <= out`, whose tap `o·stride + off − pad` (`off`: the
/// tap's offset in the window, dilation included) lands inside an input of `len`. Shared by the
/// convolutions here and 2D max pooling (`pool.rs`).
pub(super) fn taps_inside(off: usize, pad: usize, stride: usize, len: usize, out: usize) -> (usize, usize) {
    let lo = if off >= pad { 0 } else { (pad - off).div_ceil(stride) };
    // o*stride + off - pad < len  ⇔  o*stride < len + pad - off
    let hi = if len + pad <= off { 0 } else { (len + pad - off).div_ceil(stride).min(out) };
    (lo.min(hi), hi)
}

/// Columns `[t0, t1)` (flat output pixels of one image) of the im2col matrix of `channels`
/// input planes `x`, written to `cols` row by row (row `(ci, ky, kx)` at `cols[row · ld..]`),
/// zeros where a tap falls in the padding, so `cols` need not be zeroed first.
pub(super) fn im2col(g: &Geometry, channels: usize, x: &[f32], cols: &mut [f32], ld: usize, t0: usize, t1: usize) {
    let (s, d, p) = (g.stride, g.dil, g.pad);
    if s == [1, 1] && d == [1, 1] && [g.oh, g.ow] == [g.h, g.w] {
        return im2col_same(g, channels, x, cols, ld, t0, t1);
    }
    for ci in 0..channels {
        let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let (ox_lo, ox_hi) = g.valid(kx, 1);
                let row = &mut cols[((ci * g.kh + ky) * g.kw + kx) * ld..][..t1 - t0];
                let mut t = t0;
                while t < t1 {
                    // One output row's share of the tile: pixels ox0..ox1 of row oy.
                    let (oy, ox0) = (t / g.ow, t % g.ow);
                    let ox1 = g.ow.min(ox0 + (t1 - t));
                    let dst = &mut row[t - t0..][..ox1 - ox0];
                    match Geometry::src(oy, ky, s[0], d[0], p[0], g.h) {
                        None => dst.fill(0.0),
                        Some(iy) => {
                            let (lo, hi) = (ox_lo.clamp(ox0, ox1), ox_hi.clamp(ox0, ox1));
                            dst[..lo - ox0].fill(0.0);
                            dst[hi - ox0..].fill(0.0);
                            if lo < hi {
                                let src = &plane[iy * g.w..(iy + 1) * g.w];
                                let ix0 = lo * s[1] + kx * d[1] - p[1];
                                let dst = &mut dst[lo - ox0..hi - ox0];
                                if s[1] == 1 {
                                    dst.copy_from_slice(&src[ix0..ix0 + (hi - lo)]);
                                } else {
                                    dst.iter_mut().enumerate().for_each(|(j, v)| *v = src[ix0 + j * s[1]]);
                                }
                            }
                        }
                    }
                    t += ox1 - ox0;
                }
            }
        }
    }
}

/// `im2col` for stride 1 with "same" output size (ResNet's 3×3 layers, forward and input
/// gradient): each row is the plane shifted by one offset, so one copy per row and tile, then
/// zeros where the shift wrapped across a row edge. Row segments of 7–56 floats each were as
/// many `memcpy` calls as the copying itself.
fn im2col_same(g: &Geometry, channels: usize, x: &[f32], cols: &mut [f32], ld: usize, t0: usize, t1: usize) {
    let (hw, w) = ((g.h * g.w) as isize, g.w);
    let [p0, p1] = g.pad;
    for ci in 0..channels {
        let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &mut cols[((ci * g.kh + ky) * g.kw + kx) * ld..][..t1 - t0];
                // Pixel t reads plane[t + off] when that lands in the plane and in the same row.
                let off = (ky as isize - p0 as isize) * w as isize + (kx as isize - p1 as isize);
                let lo = (-off).clamp(t0 as isize, t1 as isize) as usize;
                let hi = (hw - off).clamp(lo as isize, t1 as isize) as usize;
                row[..lo - t0].fill(0.0);
                row[hi - t0..].fill(0.0);
                if lo < hi {
                    row[lo - t0..hi - t0].copy_from_slice(&plane[(lo as isize + off) as usize..(hi as isize + off) as usize]);
                }
                let (wrap_lo, wrap_hi) = if kx < p1 { (0, p1 - kx) } else { (w - (kx - p1).min(w), w) };
                if wrap_lo == wrap_hi {
                    continue;
                }
                for oy in t0 / w..=(t1 - 1) / w {
                    let (a, b) = ((oy * w + wrap_lo).max(t0), (oy * w + wrap_hi).min(t1));
                    if a < b {
                        row[a - t0..b - t0].fill(0.0);
                    }
                }
            }
        }
    }
}

/// `conv3d` on a 2D problem (`[n, c, 1, h, w]`, kernel depth 1) in f32 with symmetric padding,
/// or `None` when it is not one (the caller falls back to the generic path).
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
    let groups = options.groups;
    let (cig, cog) = (ws[1], g.c_out / groups);
    let rows = cig * g.kh * g.kw;
    let spatial = g.oh * g.ow;
    let x = x.clone().to_contiguous();
    let weight = weight.clone().to_contiguous();
    let (xd, wd): (&[f32], &[f32]) = (x.storage(), weight.storage());
    // Every element is written by exactly one tile's gemm.
    let mut output = super::uninit_vec::<f32>(g.batch * g.c_out * spatial);
    let out_addr = output.as_mut_ptr() as usize;
    let tiles = spatial.div_ceil(TILE);
    let tile_work = |cols: &mut Vec<f32>, task: usize| {
        let (b, t0) = (task / tiles, (task % tiles) * TILE);
        let t1 = (t0 + TILE).min(spatial);
        let n = t1 - t0;
        super::resize_uninit(cols, rows * n);
        for gi in 0..groups {
            let image = &xd[(b * g.c_in + gi * cig) * g.h * g.w..][..cig * g.h * g.w];
            im2col(&g, cig, image, cols, n, t0, t1);
            // out[b, group rows, t0..t1] = W_g[cog, rows] · cols[rows, n]
            // SAFETY: tasks write disjoint (image, group, pixel range) blocks of the output.
            unsafe {
                gemm::gemm(
                    cog,
                    n,
                    rows,
                    (out_addr as *mut f32).add((b * g.c_out + gi * cog) * spatial + t0),
                    1,
                    spatial as isize,
                    false,
                    wd.as_ptr().add(gi * cog * rows),
                    1,
                    rows as isize,
                    cols.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..g.batch * tiles).into_par_iter().for_each_init(Vec::new, tile_work);
    }
    #[cfg(not(feature = "rayon"))]
    {
        let mut cols = Vec::new();
        (0..g.batch * tiles).for_each(|task| tile_work(&mut cols, task));
    }
    if let Some(bias) = bias {
        let bias = bias.clone().to_contiguous();
        super::conv_common::add_bias(&mut output, bias.storage::<f32>(), g.batch, g.c_out, spatial);
    }
    let shape = Shape::from(vec![g.batch, g.c_out, 1, g.oh, g.ow]);
    Some(FlexTensor::new(Bytes::from_elems(output), Layout::contiguous(shape), DType::F32))
}

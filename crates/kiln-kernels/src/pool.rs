//! 2D max pooling with indices (NCHW), one plane at a time: output row by output row, with the
//! window's taps in the outer loops and the row's outputs innermost and branch-free, so it
//! vectorises (a window at a time has an unpredictable branch per tap).

use alloc::vec::Vec;

use crate::par::{for_each_chunk_pair, uninit_vec};

/// A 2D pooling window's geometry on one plane, per axis `[height, width]`: input and output
/// sizes, kernel, stride, (begin) padding and dilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub input: [usize; 2],
    pub output: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dil: [usize; 2],
}

/// Max pooling of `planes` planes of `x` (`[planes, h, w]`): the outputs `[planes, oh, ow]` and,
/// for each, the index in its plane (`iy·w + ix`) of the tap it took. Taps are visited in window
/// order; the first maximum wins, and a NaN always wins. Planes run on the thread pool.
pub fn max_pool2d_with_indices<T>(x: &[T], planes: usize, geo: Pool2d, neg_inf: T) -> (Vec<T>, Vec<i64>)
where
    T: Copy + PartialOrd + num_traits::Float + Send + Sync,
{
    let spatial_out = geo.output[0] * geo.output[1];
    let plane_in = geo.input[0] * geo.input[1];
    // Not zeroed: the plane kernel initialises every output.
    let mut output: Vec<T> = uninit_vec(planes * spatial_out);
    let mut indices: Vec<i64> = uninit_vec(output.len());
    if spatial_out == 0 {
        return (output, indices);
    }
    for_each_chunk_pair(&mut output, &mut indices, spatial_out, |bc, out, idx| max_pool_plane(&x[bc * plane_in..(bc + 1) * plane_in], out, idx, geo, neg_inf));
    (output, indices)
}

/// Kernel taps `[start, end)` of output `out` that land inside an input of `input`.
#[inline]
fn valid_range(out: usize, kernel: usize, stride: usize, pad: usize, dilation: usize, input: usize) -> (usize, usize) {
    let out = out as isize;
    let kernel = kernel as isize;
    let stride = stride as isize;
    let pad = pad as isize;
    let dilation = dilation as isize;
    let input = input as isize;

    let p = pad - out * stride;
    let start = if p > 0 { (p - 1) / dilation + 1 } else { 0 };
    let start = start.max(0).min(kernel);

    let c = input + pad - out * stride;
    let end = if c > 0 { (c - 1) / dilation + 1 } else { 0 };
    let end = end.max(0).min(kernel).max(start);

    (start as usize, end as usize)
}

/// Max pooling of one plane `x` into `out` and `idx` (`oh × ow` each).
pub fn max_pool_plane<T: Copy + PartialOrd + num_traits::Float>(x: &[T], out: &mut [T], idx: &mut [i64], geo: Pool2d, neg_inf: T) {
    let ([in_h, in_w], [out_h, out_w]) = (geo.input, geo.output);
    let ([k_h, k_w], [s_h, s_w], [p_h, p_w], [d_h, d_w]) = (geo.kernel, geo.stride, geo.pad, geo.dil);
    for oh in 0..out_h {
        let best = &mut out[oh * out_w..(oh + 1) * out_w];
        let arg = &mut idx[oh * out_w..(oh + 1) * out_w];
        best.fill(neg_inf);
        arg.fill(-1);
        let (kh0, kh1) = valid_range(oh, k_h, s_h, p_h, d_h, in_h);
        for kh in kh0..kh1 {
            let ih = oh * s_h + kh * d_h - p_h;
            let row = &x[ih * in_w..(ih + 1) * in_w];
            for kw in 0..k_w {
                let off = kw * d_w;
                let (lo, hi) = crate::conv::taps_inside(off, p_w, s_w, in_w, out_w);
                for ow in lo..hi {
                    let iw = ow * s_w + off - p_w;
                    let v = row[iw];
                    let take = (arg[ow] < 0) | (v > best[ow]) | v.is_nan();
                    best[ow] = if take { v } else { best[ow] };
                    arg[ow] = if take { (ih * in_w + iw) as i64 } else { arg[ow] };
                }
            }
        }
    }
}

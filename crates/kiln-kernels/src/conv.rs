//! 2D convolutions as im2col + gemm on NCHW data (f32): the forward pass and the weight
//! gradient, dense or grouped, and the kernel turn that makes a stride-1 input gradient a
//! forward convolution.
//!
//! A generic im2col path converts the input to NHWC, builds each tile of im2col rows pixel by
//! pixel (`[pixel][c·kh·kw]`), and hands gemm a row-major left operand that its packing has to
//! transpose, panel by panel. Here the tile is built the other way round, `[c·kh·kw][pixel]`,
//! straight from NCHW (each row a shifted copy of input row segments), and the weight is used in
//! its own layout: no NHWC copy, no reordered weight, and gemm packs its left operand with
//! contiguous copies. The same tile builder feeds the weight gradient and, through a convolution
//! with the kernel turned, the input gradient.
//!
//! The weight gradient, `dW[co, (ci,ky,kx)] = Σ_n Σ_o G[n,co,o] · cols_n[(ci,ky,kx), o]`, is one
//! gemm per chunk of images over an im2col buffer, images split across threads and summed at
//! the end (per group when grouped); depthwise convolutions go to [`crate::depthwise`].

use alloc::vec;
use alloc::vec::Vec;

use crate::par::{for_each_row_mut, for_parts, for_tasks_init, resize_uninit, sum_parts, threads, uninit_vec};

/// Output pixels per im2col tile: a multiple of gemm's 64-row microkernel.
const TILE: usize = 512;

/// The im2col buffer of one chunk of images stays under this many floats (16 MiB).
const COLS_FLOATS: usize = 4 << 20;

/// A 2D convolution's geometry: `[batch, c_in, h, w]` in, `[batch, c_out, oh, ow]` out, a
/// `kh × kw` kernel. `pad` is the begin padding; the end padding is whatever makes `h × w` give
/// `oh × ow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dil: [usize; 2],
}

impl Geometry {
    /// One plane of this convolution when it is depthwise.
    pub fn depthwise(&self) -> crate::depthwise::Depthwise {
        crate::depthwise::Depthwise { h: self.h, w: self.w, oh: self.oh, ow: self.ow, kh: self.kh, kw: self.kw, stride: self.stride, pad: self.pad, dil: self.dil }
    }

    /// Input rows/cols that kernel offset `k` reads for output index `o`, or `None` in padding.
    #[inline(always)]
    pub fn src(o: usize, k: usize, stride: usize, dil: usize, pad: usize, len: usize) -> Option<usize> {
        let i = (o * stride + k * dil).checked_sub(pad)?;
        (i < len).then_some(i)
    }

    /// Output indices `o` in `[lo, hi)` whose input index for kernel offset `k` lies inside.
    pub fn valid(&self, k: usize, axis: usize) -> (usize, usize) {
        let (len, out) = if axis == 0 { (self.h, self.oh) } else { (self.w, self.ow) };
        taps_inside(k * self.dil[axis], self.pad[axis], self.stride[axis], len, out)
    }
}

/// Output indices `o` in `[lo, hi)`, `hi <= out`, whose tap `o·stride + off − pad` (`off`: the
/// tap's offset in the window, dilation included) lands inside an input of `len`. Shared by the
/// convolutions here and 2D max pooling ([`crate::pool`]).
#[inline]
pub fn taps_inside(off: usize, pad: usize, stride: usize, len: usize, out: usize) -> (usize, usize) {
    let lo = if off >= pad { 0 } else { (pad - off).div_ceil(stride) };
    // o*stride + off - pad < len  ⇔  o*stride < len + pad - off
    let hi = if len + pad <= off { 0 } else { (len + pad - off).div_ceil(stride).min(out) };
    (lo.min(hi), hi)
}

/// Columns `[t0, t1)` (flat output pixels of one image) of the im2col matrix of `channels`
/// input planes `x`, written to `cols` row by row (row `(ci, ky, kx)` at `cols[row · ld..]`),
/// zeros where a tap falls in the padding, so `cols` need not be zeroed first.
pub fn im2col(g: &Geometry, channels: usize, x: &[f32], cols: &mut [f32], ld: usize, t0: usize, t1: usize) {
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

/// The forward convolution `[batch, c_out, oh, ow]` of `x` `[batch, c_in, h, w]` with `weight`
/// `[c_out, c_in / groups, kh, kw]`, without bias (the caller adds it), for symmetric padding
/// (`g.oh`, `g.ow` from `g.pad` on both sides). Tiles of [`TILE`] pixels per image run on the
/// thread pool, each an im2col tile and one gemm per group written straight into the output.
pub fn conv2d(g: &Geometry, groups: usize, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (cig, cog) = (g.c_in / groups, g.c_out / groups);
    let rows = cig * g.kh * g.kw;
    let spatial = g.oh * g.ow;
    assert!(x.len() >= g.batch * g.c_in * g.h * g.w && weight.len() >= g.c_out * rows, "conv2d: operands shorter than their shapes");
    // Every element is written by exactly one tile's gemm.
    let mut output = uninit_vec::<f32>(g.batch * g.c_out * spatial);
    let out_addr = output.as_mut_ptr() as usize;
    let tiles = spatial.div_ceil(TILE);
    let tile_work = |cols: &mut Vec<f32>, task: usize| {
        let (b, t0) = (task / tiles, (task % tiles) * TILE);
        let t1 = (t0 + TILE).min(spatial);
        let n = t1 - t0;
        resize_uninit(cols, rows * n);
        for gi in 0..groups {
            let image = &x[(b * g.c_in + gi * cig) * g.h * g.w..][..cig * g.h * g.w];
            im2col(g, cig, image, cols, n, t0, t1);
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
                    weight.as_ptr().add(gi * cog * rows),
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
    for_tasks_init(g.batch * tiles, Vec::new, tile_work);
    output
}

/// The weight gradient `[c_out, c_in / groups, kh, kw]` of `conv2d` with geometry `g`, from `x`
/// `[batch, c_in, h, w]` and the output gradient `grad` `[batch, c_out, oh, ow]`, for any
/// padding (taps are bounded by the input; the end padding is implied by the output's size).
/// Depthwise convolutions (`groups == c_in == c_out`) go to [`crate::depthwise::weight_grad`].
pub fn weight_grad(g: &Geometry, groups: usize, x: &[f32], grad: &[f32]) -> Vec<f32> {
    assert!(x.len() >= g.batch * g.c_in * g.h * g.w && grad.len() >= g.batch * g.c_out * g.oh * g.ow, "conv2d weight gradient: operands shorter than their shapes");
    if groups == g.c_in && g.c_out == g.c_in {
        return crate::depthwise::weight_grad(x, grad, [g.batch, g.c_in], g.depthwise());
    }
    dense_weight_grad(g, groups, x, grad)
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
                resize_uninit(&mut cols, rows * k);
                for n in n0..n1 {
                    let image = &x[(n * g.c_in + gi * cig) * g.h * g.w..][..cig * g.h * g.w];
                    im2col(g, cig, image, &mut cols[(n - n0) * spatial..], k, 0, spatial);
                }
                // The chunk's output gradient for this group as one [cog, k] matrix (a view of
                // the gradient itself when the chunk is one image).
                let g_rows: &[f32] = if n1 - n0 == 1 {
                    &grad[(n0 * g.c_out + gi * cog) * spatial..][..cog * spatial]
                } else {
                    resize_uninit(&mut lhs, cog * k);
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

/// The relaxed-SIMD browser build's 1×1 weight gradient ([`crate::pointwise`]), for a stride-1
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
    if groups != 1 || !one_by_one || g.batch < parts || !crate::pointwise::weight_grad_1x1_fits(m, k) {
        return None;
    }
    let per_part = g.batch.div_ceil(parts);
    let partials = for_parts(parts, |p| {
        let (mut sum, mut scratch) = (vec![0f32; m * k], Vec::new());
        for n in (p * per_part)..((p + 1) * per_part).min(g.batch) {
            let xi = &x[n * cin * spatial..][..cin * spatial];
            let gi = &grad[n * cout * spatial..][..cout * spatial];
            let (a, b) = if transpose_x { (gi, xi) } else { (xi, gi) };
            crate::pointwise::weight_grad_1x1(&mut sum, a, b, m, k, spatial, &mut scratch);
        }
        sum
    });
    let sum = sum_parts(partials, m * k);
    Some(if transpose_x { sum } else { transpose_dwt(&sum, cout, cin, cout) })
}

/// `dw[group][co][r] = dwt[group][r][co]` for `c_out` rows of `rows` taps, `cog` per group.
fn transpose_dwt(dwt: &[f32], c_out: usize, rows: usize, cog: usize) -> Vec<f32> {
    let mut dw = uninit_vec::<f32>(c_out * rows);
    // dw[group][co][r] = dwt[group][r][co], in tiles of 16 output rows by 64 columns so both
    // sides stay in cache (a row at a time read dwt with a page-sized stride: +10 % on a
    // 1-thread ResNet-18 step).
    const BLOCK: usize = 16;
    for_each_row_mut(&mut dw, BLOCK * rows, |blk, dst| {
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

/// The kernel of a dense convolution turned for its stride-1 input gradient: `turned[ci][co]`
/// is `weight[co][ci]` (`[c_out, c_in, taps]`, `taps = kh·kw`) rotated by 180°. With padding
/// `k − 1 − p` on each side, `dx = conv2d(grad, turned)`: a forward convolution whose gemm writes
/// the gradient itself (a transposed convolution writes k·k columns per input pixel that a
/// scatter-add then folds).
pub fn turn_kernel(weight: &[f32], c_out: usize, c_in: usize, taps: usize) -> Vec<f32> {
    let wd = &weight[..c_out * c_in * taps];
    let mut turned = uninit_vec::<f32>(wd.len());
    // Blocks of input channels, so each output channel's weights are read as one run.
    const BLOCK: usize = 16;
    for_each_row_mut(&mut turned, BLOCK * c_out * taps, |blk, rows| {
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
    turned
}

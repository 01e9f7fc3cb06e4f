//! Depthwise 2D convolutions in f32 (one filter per channel) — the forward pass,
//! the input gradient and the weight gradient — as correlations that keep a block of outputs in
//! registers across the taps: stride 1 on wide rows straight from the unpadded plane, otherwise
//! flat correlations over a zero-padded copy of each plane.
//!
//! A stride-`s` convolution reads the padded input at `s·o + t` (`t`: the tap's offset in the
//! window, dilation included). Splitting the padded plane into `s×s` phase planes
//! `Q[ry][rx][a][b] = P[s·a + ry][s·b + rx]` turns every tap into a plain shift of one phase
//! plane, and storing the phase planes row after row with one pitch turns a 2D shift into a 1D
//! one: `out[u] = Σ_t w_t · Q[u + offset_t]` over the flat index `u = oy·pitch + ox` (the
//! `pitch − ow` extra columns per row are computed and dropped). The inner loop has no bounds,
//! strides or branches and keeps a block of outputs in registers across all taps, so it runs on
//! 128-bit wasm SIMD as natively. The copies in and out are one pass each over a plane that the
//! taps read k² times. The previous kernels walked taps outermost and read and wrote the output
//! once per tap, and took stride 2 (every downsampling layer of EfficientNet) one element at a
//! time.
//!
//! The input gradient is the same correlation run backwards: output phase `q` of the padded
//! input gathers the taps with `t ≡ q (mod s)` from the output gradient, shifted by `−t/s`.
//! The weight gradient is one dot product per tap between the output gradient (laid out with
//! the same pitch, zeros in the extra columns) and the shifted phase plane.

use alloc::vec;
use alloc::vec::Vec;

use crate::par::{for_each_chunk_init, resize_uninit, uninit_vec};

/// Outputs computed together, kept in registers across the taps.
const BLOCK: usize = 16;

/// A depthwise convolution's geometry on one plane. Padding is the begin padding; the end
/// padding is whatever makes the input `h × w` give the output `oh × ow`.
#[derive(Clone, Copy, Debug)]
pub struct Depthwise {
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dil: [usize; 2],
}

/// One tap of a correlation: where it starts in the flat source, and its weight.
#[derive(Clone, Copy)]
struct Tap {
    offset: usize,
    w: f32,
}

/// `dst[u] = Σ_t w_t · src[u + offset_t]`, taps summed in order from zero.
fn correlate(dst: &mut [f32], src: &[f32], taps: &[Tap]) {
    let n = dst.len();
    if taps.is_empty() {
        dst.fill(0.0);
        return;
    }
    assert!(taps.iter().all(|t| t.offset + n <= src.len()), "depthwise: a tap reads past its plane");
    #[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
    if n >= relaxed::WIDE {
        let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
        let mut u = 0;
        loop {
            // The last block overlaps the one before (outputs are written, not accumulated).
            let at = u.min(n - relaxed::WIDE);
            // SAFETY: at + WIDE ≤ n = dst.len(), and the assert bounds every tap's reads.
            unsafe { relaxed::block(d.add(at), s.add(at), taps) };
            u += relaxed::WIDE;
            if u >= n {
                return;
            }
        }
    }
    let block = |dst: &mut [f32], u: usize| {
        let mut acc = [0f32; BLOCK];
        for t in taps {
            let s: &[f32; BLOCK] = src[u + t.offset..u + t.offset + BLOCK].try_into().unwrap();
            for i in 0..BLOCK {
                acc[i] += t.w * s[i];
            }
        }
        dst[u..u + BLOCK].copy_from_slice(&acc);
    };
    let mut u = 0;
    while u + BLOCK <= n {
        block(dst, u);
        u += BLOCK;
    }
    if u < n && n >= BLOCK {
        // The last block again, overlapping: outputs are written, not accumulated.
        block(dst, n - BLOCK);
        return;
    }
    for (v, d) in dst.iter_mut().enumerate().skip(u) {
        let mut acc = 0f32;
        for t in taps {
            acc += t.w * src[v + t.offset];
        }
        *d = acc;
    }
}

/// Rows at least this wide are convolved in place (stride 1) or written straight into the
/// output (strided); narrower planes go through the flat form, whose extra columns and copies
/// cost little on planes that fit in L1.
const DIRECT_WIDTH: usize = 2 * BLOCK;

/// A stride-1 correlation of an unpadded plane, row by row with no copies:
/// `out[oy][ox] = Σ w[ky][kx] · src[oy + ky·dy − py][ox + kx·dx − px]` (zero outside `src`).
/// Columns whose taps all fall inside the row run on `correlate`; the few at each edge, and
/// rows with taps above or below the plane, skip the missing taps.
#[allow(clippy::too_many_arguments)]
fn correlate_rows_s1(out: &mut [f32], ow: usize, src: &[f32], [h, w]: [usize; 2], weight: &[f32], [kh, kw]: [usize; 2], [py, px]: [usize; 2], [dy, dx]: [usize; 2], taps: &mut Vec<Tap>) {
    // Interior columns: ox − px ≥ 0 and ox + (kw − 1)·dx − px < w.
    let lo = px.min(ow);
    let hi = (w + px).saturating_sub((kw - 1) * dx).clamp(lo, ow);
    for (oy, row) in out.chunks_exact_mut(ow).enumerate() {
        let rows = || (0..kh).filter_map(move |ky| (oy + ky * dy).checked_sub(py).filter(|&iy| iy < h).map(|iy| (ky, iy)));
        if hi > lo {
            // lo = px here, so each tap's offset of column `lo` is iy·w + kx·dx.
            taps.clear();
            for (ky, iy) in rows() {
                taps.extend((0..kw).map(|kx| Tap { offset: iy * w + kx * dx, w: weight[ky * kw + kx] }));
            }
            correlate(&mut row[lo..hi], src, taps);
        }
        // Edge columns: only the taps that land inside the row.
        for ox in (0..lo).chain(hi..ow) {
            let mut acc = 0f32;
            for (ky, iy) in rows() {
                for kx in 0..kw {
                    if let Some(ix) = (ox + kx * dx).checked_sub(px).filter(|&ix| ix < w) {
                        acc += weight[ky * kw + kx] * src[iy * w + ix];
                    }
                }
            }
            row[ox] = acc;
        }
    }
}

#[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
use relaxed::dot;

/// A dot product with a block of independent accumulators (vectorises without fast-math).
#[cfg(not(all(target_arch = "wasm32", feature = "relaxed-simd")))]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; BLOCK];
    let (ac, bc) = (a.chunks_exact(BLOCK), b[..a.len()].chunks_exact(BLOCK));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..BLOCK {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl Depthwise {
    /// Phase planes of the padded input: rows and pitch of each.
    fn phase_dims(&self) -> (usize, usize) {
        let [sy, sx] = self.stride;
        (self.oh + (self.kh - 1) * self.dil[0] / sy, self.ow + (self.kw - 1) * self.dil[1] / sx)
    }

    /// The taps of the forward correlation over the phase planes, each with `weight(ky, kx)`.
    fn forward_taps(&self, taps: &mut Vec<Tap>, weight: impl Fn(usize) -> f32) {
        let (rows, pitch) = self.phase_dims();
        let [sy, sx] = self.stride;
        taps.clear();
        for ky in 0..self.kh {
            let ty = ky * self.dil[0];
            for kx in 0..self.kw {
                let tx = kx * self.dil[1];
                let phase = (ty % sy) * sx + tx % sx;
                taps.push(Tap { offset: phase * rows * pitch + (ty / sy) * pitch + tx / sx, w: weight(ky * self.kw + kx) });
            }
        }
    }

    /// Writes the zero-padded input plane into `dst` as `s×s` phase planes.
    fn fill_phases(&self, dst: &mut Vec<f32>, plane: &[f32]) {
        let (rows, pitch) = self.phase_dims();
        let [sy, sx] = self.stride;
        let [py, px] = self.pad;
        let (h, w) = (self.h, self.w);
        resize_uninit(dst, sy * sx * rows * pitch);
        for ry in 0..sy {
            for rx in 0..sx {
                let q = &mut dst[(ry * sx + rx) * rows * pitch..][..rows * pitch];
                // Columns b whose padded x = sx·b + rx lies inside the input: x − px in [0, w).
                let b_lo = px.saturating_sub(rx).div_ceil(sx).min(pitch);
                let b_hi = (w + px).saturating_sub(rx).div_ceil(sx).clamp(b_lo, pitch);
                for (a, row) in q.chunks_exact_mut(pitch).enumerate() {
                    let y = sy * a + ry;
                    if y < py || y - py >= h {
                        row.fill(0.0);
                        continue;
                    }
                    let src = &plane[(y - py) * w..][..w];
                    row[..b_lo].fill(0.0);
                    row[b_hi..].fill(0.0);
                    if b_lo == b_hi {
                        continue;
                    }
                    let x0 = sx * b_lo + rx - px;
                    if sx == 1 {
                        row[b_lo..b_hi].copy_from_slice(&src[x0..x0 + b_hi - b_lo]);
                    } else {
                        row[b_lo..b_hi].iter_mut().zip(src[x0..].iter().step_by(sx)).for_each(|(d, s)| *d = *s);
                    }
                }
            }
        }
    }

    /// `out = conv(plane, weight)` for one plane; `scratch` holds the phase planes and the
    /// uncompacted output between calls.
    fn forward(&self, out: &mut [f32], plane: &[f32], weight: &[f32], scratch: &mut Scratch) {
        if self.stride == [1, 1] && self.ow >= DIRECT_WIDTH {
            let k = [self.kh, self.kw];
            correlate_rows_s1(out, self.ow, plane, [self.h, self.w], weight, k, self.pad, self.dil, &mut scratch.taps);
            return;
        }
        let (_, pitch) = self.phase_dims();
        self.fill_phases(&mut scratch.planes, plane);
        self.forward_taps(&mut scratch.taps, |i| weight[i]);
        if self.ow >= BLOCK {
            // Each output row straight from the phase planes, no flat copy to compact.
            for (oy, row) in out.chunks_exact_mut(self.ow).enumerate() {
                correlate(row, &scratch.planes[oy * pitch..], &scratch.taps);
            }
            return;
        }
        let n = (self.oh - 1) * pitch + self.ow;
        resize_uninit(&mut scratch.flat, n);
        correlate(&mut scratch.flat, &scratch.planes, &scratch.taps);
        for (oy, row) in out.chunks_exact_mut(self.ow).enumerate() {
            row.copy_from_slice(&scratch.flat[oy * pitch..][..self.ow]);
        }
    }

    /// The input gradient of one plane from its output gradient `grad`.
    fn input_grad(&self, dx: &mut [f32], grad: &[f32], weight: &[f32], scratch: &mut Scratch) {
        let [sy, sx] = self.stride;
        let [py, px] = self.pad;
        let reach = [(self.kh - 1) * self.dil[0], (self.kw - 1) * self.dil[1]];
        if self.stride == [1, 1] && self.w >= DIRECT_WIDTH && py <= reach[0] && px <= reach[1] {
            // Stride 1: a forward correlation of the gradient with the kernel turned 180°
            // (row-major order reversed) and padding (k − 1)·d − p.
            scratch.flat.clear();
            scratch.flat.extend(weight.iter().rev());
            let pad = [reach[0] - py, reach[1] - px];
            let k = [self.kh, self.kw];
            correlate_rows_s1(dx, self.w, grad, [self.oh, self.ow], &scratch.flat, k, pad, self.dil, &mut scratch.taps);
            return;
        }
        let (h, w) = (self.h, self.w);
        // Shifts of up to (k − 1)·d / s back: the gradient padded by that much at the start.
        let (shy, shx) = ((self.kh - 1) * self.dil[0] / sy, (self.kw - 1) * self.dil[1] / sx);
        // Phase q's rows a (padded y = s·a + q) that are input rows: y − p in [0, h).
        let range = |q: usize, s: usize, p: usize, len: usize| (p.saturating_sub(q).div_ceil(s), (len + p).saturating_sub(q).div_ceil(s));
        let a_end = (0..sy).map(|q| range(q, sy, py, h).1).max().unwrap_or(0);
        let b_end = (0..sx).map(|q| range(q, sx, px, w).1).max().unwrap_or(0);
        let (rows, pitch) = (self.oh.max(a_end) + shy, self.ow.max(b_end) + shx);
        let g = &mut scratch.planes;
        resize_uninit(g, rows * pitch);
        for (r, row) in g.chunks_exact_mut(pitch).enumerate() {
            if r < shy || r - shy >= self.oh {
                row.fill(0.0);
            } else {
                row[..shx].fill(0.0);
                row[shx..shx + self.ow].copy_from_slice(&grad[(r - shy) * self.ow..][..self.ow]);
                row[shx + self.ow..].fill(0.0);
            }
        }
        for qy in 0..sy {
            let (a_lo, a_hi) = range(qy, sy, py, h);
            for qx in 0..sx {
                let (b_lo, b_hi) = range(qx, sx, px, w);
                if a_lo >= a_hi || b_lo >= b_hi {
                    continue;
                }
                scratch.taps.clear();
                for ky in (0..self.kh).filter(|ky| ky * self.dil[0] % sy == qy) {
                    for kx in (0..self.kw).filter(|kx| kx * self.dil[1] % sx == qx) {
                        let (oy, ox) = (a_lo + shy - ky * self.dil[0] / sy, b_lo + shx - kx * self.dil[1] / sx);
                        scratch.taps.push(Tap { offset: oy * pitch + ox, w: weight[ky * self.kw + kx] });
                    }
                }
                let (na, nb) = (a_hi - a_lo, b_hi - b_lo);
                let n = (na - 1) * pitch + nb;
                resize_uninit(&mut scratch.flat, n);
                correlate(&mut scratch.flat, &scratch.planes, &scratch.taps);
                for a in 0..na {
                    let src = &scratch.flat[a * pitch..][..nb];
                    let y = sy * (a_lo + a) + qy - py;
                    let x0 = sx * b_lo + qx - px;
                    let row = &mut dx[y * w..(y + 1) * w];
                    if sx == 1 {
                        row[x0..x0 + nb].copy_from_slice(src);
                    } else {
                        row[x0..].iter_mut().step_by(sx).zip(src).for_each(|(d, s)| *d = *s);
                    }
                }
            }
        }
    }

    /// Adds one plane's weight gradient, `Σ grad · shifted input` per tap, to `dw`.
    fn add_weight_grad(&self, dw: &mut [f32], plane: &[f32], grad: &[f32], scratch: &mut Scratch) {
        let (_, pitch) = self.phase_dims();
        self.fill_phases(&mut scratch.planes, plane);
        self.forward_taps(&mut scratch.taps, |_| 0.0);
        let n = (self.oh - 1) * pitch + self.ow;
        // The output gradient with the phase planes' pitch, zero in the extra columns.
        resize_uninit(&mut scratch.flat, n);
        for (oy, row) in scratch.flat.chunks_mut(pitch).enumerate() {
            let (valid, extra) = row.split_at_mut(self.ow);
            valid.copy_from_slice(&grad[oy * self.ow..][..self.ow]);
            extra.fill(0.0);
        }
        for (d, t) in dw.iter_mut().zip(&scratch.taps) {
            *d += dot(&scratch.flat, &scratch.planes[t.offset..]);
        }
    }
}

/// The relaxed-SIMD build's correlation and dot product. A block of 16 outputs
/// is four accumulators, and each tap adds to all four: the adds' latency (four cycles), not
/// the loads, paced the plain kernel. Eight accumulators with fused multiply-adds keep both
/// FMA ports busy.
#[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
mod relaxed {
    use core::arch::wasm32::*;

    use super::Tap;

    /// Outputs per block: eight f32x4 accumulators.
    pub(super) const WIDE: usize = 32;

    /// `dst[u..u + WIDE] = Σ_t w_t · src[u + offset_t ..]`.
    ///
    /// # Safety
    /// Every `u + offset_t + WIDE ≤ src.len()` and `u + WIDE ≤ dst.len()` (the caller asserts
    /// both), and the relaxed build is only loaded where relaxed SIMD validates.
    #[inline]
    #[target_feature(enable = "simd128,relaxed-simd")]
    pub(super) unsafe fn block(dst: *mut f32, src: *const f32, taps: &[Tap]) {
        unsafe {
            let mut acc = [f32x4_splat(0.0); WIDE / 4];
            for t in taps {
                let s = src.add(t.offset);
                let w = f32x4_splat(t.w);
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = f32x4_relaxed_madd(w, v128_load(s.add(4 * j) as *const v128), *a);
                }
            }
            for (j, a) in acc.iter().enumerate() {
                v128_store(dst.add(4 * j) as *mut v128, *a);
            }
        }
    }

    /// `Σ a[i] · b[i]` over `a`'s length (`b` at least as long).
    pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
        let b = &b[..a.len()];
        let whole = a.len() / WIDE * WIDE;
        // SAFETY: loads stay below `whole ≤ len`; relaxed SIMD validates as above.
        let acc = unsafe { dot_blocks(a.as_ptr(), b.as_ptr(), whole) };
        acc + a[whole..].iter().zip(&b[whole..]).map(|(x, y)| x * y).sum::<f32>()
    }

    #[inline]
    #[target_feature(enable = "simd128,relaxed-simd")]
    unsafe fn dot_blocks(a: *const f32, b: *const f32, len: usize) -> f32 {
        unsafe {
            let mut acc = [f32x4_splat(0.0); WIDE / 4];
            let mut i = 0;
            while i < len {
                for (j, s) in acc.iter_mut().enumerate() {
                    let (x, y) = (v128_load(a.add(i + 4 * j) as *const v128), v128_load(b.add(i + 4 * j) as *const v128));
                    *s = f32x4_relaxed_madd(x, y, *s);
                }
                i += WIDE;
            }
            let mut v = acc[0];
            for s in &acc[1..] {
                v = f32x4_add(v, *s);
            }
            f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v) + f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v)
        }
    }
}

/// Per-thread buffers, reused across the planes a thread takes.
#[derive(Default)]
struct Scratch {
    planes: Vec<f32>,
    flat: Vec<f32>,
    taps: Vec<Tap>,
}

/// Runs `f(index, chunk, scratch)` over `chunk`-sized pieces of `dst`, on the thread pool.
fn for_each_plane(dst: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32], &mut Scratch) + Send + Sync) {
    for_each_chunk_init(dst, chunk, Scratch::default, f);
}

/// The forward depthwise convolution of `x` `[n, c, h, w]` with `weight` `[c, 1, kh, kw]` (and
/// a bias per channel): `[n, c, oh, ow]`.
pub fn conv2d(x: &[f32], weight: &[f32], bias: Option<&[f32]>, [n, c]: [usize; 2], geo: Depthwise) -> Vec<f32> {
    let taps = geo.kh * geo.kw;
    let mut out = uninit_vec::<f32>(n * c * geo.oh * geo.ow);
    for_each_plane(&mut out, geo.oh * geo.ow, |i, dst, s| {
        let ch = i % c;
        geo.forward(dst, &x[i * geo.h * geo.w..][..geo.h * geo.w], &weight[ch * taps..][..taps], s);
        if let Some(b) = bias {
            dst.iter_mut().for_each(|v| *v += b[ch]);
        }
    });
    out
}

/// The input gradient `[n, c, h, w]` from the output gradient `[n, c, oh, ow]` (every element
/// written: each input pixel belongs to exactly one phase).
pub fn input_grad(grad: &[f32], weight: &[f32], [n, c]: [usize; 2], geo: Depthwise) -> Vec<f32> {
    let taps = geo.kh * geo.kw;
    let mut dx = uninit_vec::<f32>(n * c * geo.h * geo.w);
    for_each_plane(&mut dx, geo.h * geo.w, |i, dst, s| {
        geo.input_grad(dst, &grad[i * geo.oh * geo.ow..][..geo.oh * geo.ow], &weight[(i % c) * taps..][..taps], s);
    });
    dx
}

/// The weight gradient `[c, 1, kh, kw]`, summed over the batch; parallel over channels.
pub fn weight_grad(x: &[f32], grad: &[f32], [n, c]: [usize; 2], geo: Depthwise) -> Vec<f32> {
    let taps = geo.kh * geo.kw;
    let mut dw = vec![0f32; c * taps];
    for_each_plane(&mut dw, taps, |ch, dst, s| {
        for img in 0..n {
            let i = img * c + ch;
            geo.add_weight_grad(dst, &x[i * geo.h * geo.w..][..geo.h * geo.w], &grad[i * geo.oh * geo.ow..][..geo.oh * geo.ow], s);
        }
    });
    dw
}

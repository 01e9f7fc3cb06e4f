//! Kiln patch: 1×1 convolutions (f32) in the browser's relaxed-SIMD build, without gemm.
//!
//! A 1×1 convolution of one image is `out[m][n] = W[m][k] · x[k][n]` with `x` and `out` already
//! row-major in NCHW. gemm packs both operands into panels before its microkernel runs; here the
//! microkernel reads them in place: four output channels × twelve pixels in registers, each `k`
//! a broadcast weight per channel and three vector loads of `x`'s row. Images are cut into
//! column chunks, so one image alone still uses the whole pool. Measured in V8 (one
//! thread, this machine's Xeon) on EfficientNet-Lite0's 1×1 convolutions, forward and input
//! gradient, with operands that are not in cache (as in a training step): 48–49 ms an image
//! against gemm's 62–67 ms. The gain needs relaxed SIMD's fused multiply-add (without it the two
//! tie), so only the relaxed build uses this kernel; every other build keeps gemm.

use core::arch::wasm32::*;

/// Pixels per block: three f32x4 vectors.
const NR: usize = 12;
/// Pixels per panel: `x[.., panel]` stays in cache while every block of channels reads it.
const PANEL: usize = 240;

/// Pixels per task: images are cut into column chunks, so a batch smaller than the pool (one
/// photo to predict) still uses every thread; in training it measured the same as one task per
/// image.
const CHUNK: usize = 5 * PANEL;

/// The column ranges (each at least `NR` wide, or all of `n`) that `conv1x1_cols` is given.
fn chunks(n: usize) -> impl Iterator<Item = core::ops::Range<usize>> {
    let count = (n / CHUNK).max(1);
    (0..count).map(move |i| i * CHUNK..if i + 1 == count { n } else { (i + 1) * CHUNK })
}

/// Every image and group of a 1×1 convolution: `out[b][g·m + i][p] = Σⱼ w[g·m + i][j] ·
/// x[b][g·k + j][p]`, one task per image, group and column chunk.
pub(crate) fn conv1x1_batch(out: &mut [f32], w: &[f32], x: &[f32], [batch, groups, m, k, n]: [usize; 5]) {
    let planes = batch * groups;
    assert!(out.len() >= planes * m * n && x.len() >= planes * k * n && w.len() >= groups * m * k, "conv 1x1: operands shorter than their shapes");
    let addr = out.as_mut_ptr() as usize;
    let task = |(plane, cols): (usize, core::ops::Range<usize>)| {
        let g = plane % groups;
        // SAFETY: tasks write disjoint (image, group, column range) blocks of `out`, which the
        // assert above bounds; `chunks` gives ranges `conv1x1_cols` accepts.
        unsafe { conv1x1_cols((addr as *mut f32).add(plane * m * n), &w[g * m * k..][..m * k], &x[plane * k * n..][..k * n], m, k, n, cols) };
    };
    let tasks = (0..planes).flat_map(|plane| chunks(n).map(move |cols| (plane, cols)));
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        tasks.collect::<alloc::vec::Vec<_>>().into_par_iter().for_each(task);
    }
    #[cfg(not(feature = "rayon"))]
    tasks.for_each(task);
}

/// Columns `cols` of `dst[m][n] = w[m][k] · x[k][n]` (row-major, rows `n` apart).
///
/// # Safety
/// `dst` is valid for `m·n` writes, and no other thread writes these columns meanwhile; `cols`
/// lies in `0..n` and is at least `NR` wide unless it is all of `0..n`.
unsafe fn conv1x1_cols(dst: *mut f32, w: &[f32], x: &[f32], m: usize, k: usize, n: usize, cols: core::ops::Range<usize>) {
    assert!(w.len() >= m * k && x.len() >= k * n && cols.end <= n, "conv 1x1: operands shorter than their shapes");
    assert!(cols.len() >= NR || cols == (0..n), "conv 1x1: a column range narrower than a block");
    if n < NR {
        // Too narrow for one block: plain dot products.
        for c in 0..m {
            for p in 0..n {
                // SAFETY: c·n + p < m·n.
                unsafe { *dst.add(c * n + p) = (0..k).map(|i| w[c * k + i] * x[i * n + p]).sum() };
            }
        }
        return;
    }
    let (w, x) = (w.as_ptr(), x.as_ptr());
    let mut p0 = cols.start;
    while p0 < cols.end {
        // Whole blocks; a last partial block is redone overlapping (outputs are written, not
        // accumulated), reaching back at most `NR` pixels, which stay inside `cols`.
        let p1 = (p0 + PANEL).min(cols.end);
        let mut c = 0;
        while c < m {
            let rows = (m - c).min(4);
            let mut p = p0;
            loop {
                let at = p.min(p1 - NR).max(cols.start);
                // SAFETY: rows ≤ m − c, cols.start ≤ at ≤ cols.end − NR, the asserts bound the
                // reads; the relaxed build validates relaxed SIMD before it is loaded.
                unsafe {
                    match rows {
                        4 => block::<4>(dst, w, x, n, k, c, at),
                        3 => block::<3>(dst, w, x, n, k, c, at),
                        2 => block::<2>(dst, w, x, n, k, c, at),
                        _ => block::<1>(dst, w, x, n, k, c, at),
                    }
                }
                p += NR;
                if p >= p1 {
                    break;
                }
            }
            c += rows;
        }
        p0 = p1;
    }
}

/// Output channels `c..c + R`, pixels `p..p + NR`.
#[inline]
#[target_feature(enable = "simd128,relaxed-simd")]
unsafe fn block<const R: usize>(dst: *mut f32, w: *const f32, x: *const f32, n: usize, k: usize, c: usize, p: usize) {
    unsafe {
        let mut acc = [[f32x4_splat(0.0); 3]; R];
        for i in 0..k {
            let row = x.add(i * n + p);
            let xs = [v128_load(row as *const v128), v128_load(row.add(4) as *const v128), v128_load(row.add(8) as *const v128)];
            for (r, a) in acc.iter_mut().enumerate() {
                let wv = v128_load32_splat(w.add((c + r) * k + i) as *const u32);
                for j in 0..3 {
                    a[j] = f32x4_relaxed_madd(wv, xs[j], a[j]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            let out = dst.add((c + r) * n + p);
            for (j, v) in a.iter().enumerate() {
                v128_store(out.add(4 * j) as *mut v128, *v);
            }
        }
    }
}

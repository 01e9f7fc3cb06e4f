//! 1×1 convolutions (f32) in the browser's relaxed-SIMD build (wasm32 with the feature
//! `relaxed-simd`), without gemm.
//!
//! A 1×1 convolution of one image is `out[m][n] = W[m][k] · x[k][n]` with `x` and `out` already
//! row-major in NCHW. gemm packs both operands into panels before its microkernel runs; here the
//! microkernel reads them in place: four output channels × eight pixels in registers, each `k`
//! a broadcast weight per channel and two vector loads of `x`'s row. Measured in V8 (one
//! thread, this machine's Xeon) on EfficientNet-Lite0's 1×1 convolutions, forward and input
//! gradient, with operands that are not in cache (as in a training step): 36–37 ms an image
//! against gemm's 62–67 ms. V8 gives wasm SIMD sixteen xmm registers and keeps one for itself:
//! a 4 × 12 block (twelve accumulators, three `x` vectors and a weight) spilled and took 49–50
//! ms; 4 × 8 and 3 × 12 fit (36–37 ms), 4 × 8 also fits every channel count that is a multiple
//! of four. The gain needs relaxed SIMD's fused multiply-add (without it gemm and this tie), so
//! only the relaxed build uses this kernel; every other build keeps gemm.

use core::arch::wasm32::*;

/// Pixels per block: two f32x4 vectors.
const NR: usize = 8;
const VECS: usize = NR / 4;
/// Pixels per panel: `x[.., panel]` stays in cache while every block of channels reads it.
const PANEL: usize = 240;

/// `dst[m][n] = w[m][k] · x[k][n]`, all row-major and contiguous.
pub fn conv1x1(dst: &mut [f32], w: &[f32], x: &[f32], m: usize, k: usize, n: usize) {
    assert!(dst.len() >= m * n && w.len() >= m * k && x.len() >= k * n, "conv 1x1: operands shorter than their shapes");
    if n == 0 {
        // No pixels (gemm returns early too; `chunks_exact_mut(0)` below would panic).
        return;
    }
    if n < NR {
        // Too narrow for one block: plain dot products.
        for (c, row) in dst.chunks_exact_mut(n).take(m).enumerate() {
            for (p, d) in row.iter_mut().enumerate() {
                *d = (0..k).map(|i| w[c * k + i] * x[i * n + p]).sum();
            }
        }
        return;
    }
    let (dst, w, x) = (dst.as_mut_ptr(), w.as_ptr(), x.as_ptr());
    let mut p0 = 0;
    while p0 < n {
        // Whole blocks; a last partial block is redone overlapping (outputs are written, not
        // accumulated), which needs the panel to reach back `NR` pixels.
        let p1 = (p0 + PANEL).min(n);
        let mut c = 0;
        while c < m {
            let rows = (m - c).min(4);
            let mut p = p0;
            loop {
                let at = p.min(p1 - NR);
                // SAFETY: rows ≤ m − c, at + NR ≤ n (p1 ≥ NR as n ≥ NR), and the assert above
                // bounds the slices; the relaxed build validates relaxed SIMD before it is loaded.
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
        let mut acc = [[f32x4_splat(0.0); VECS]; R];
        for i in 0..k {
            let row = x.add(i * n + p);
            let mut xs = [f32x4_splat(0.0); VECS];
            for (j, v) in xs.iter_mut().enumerate() {
                *v = v128_load(row.add(4 * j) as *const v128);
            }
            for (r, a) in acc.iter_mut().enumerate() {
                let wv = v128_load32_splat(w.add((c + r) * k + i) as *const u32);
                for j in 0..VECS {
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

/// Floats of the transposed panel in `weight_grad_1x1_f32` (256 KiB: it stays in L2 while
/// every block of output channels sweeps it).
const PANEL_FLOATS: usize = 1 << 16;

/// `dst[m][k] += Σ_p a[m][p] · b[k][p]` over `n` pixels, all row-major and contiguous: the
/// weight gradient of a 1×1 convolution of one image (`a` one operand of output gradient and
/// input, `b` the other). As a dot product over pixels, each output needs two loads per FMA and
/// a horizontal sum, and ran no faster than gemm (25–26 GFLOP/s); with `b` transposed panel by
/// panel (`t[p][k]`, 4 × 4 shuffles) it is the forward kernel's shape, a broadcast of `a` times a
/// vector of `t`, 4 × 8 outputs in registers. V8, one thread, EfficientNet-Lite0's 1×1 weight
/// gradients with operands out of cache: 15.7–16.5 ms an image against gemm's 22.5–22.9 ms.
/// Needs `m % 4 == 0` and `k % 8 == 0` (`weight_grad_1x1_fits`); `t` is scratch.
pub fn weight_grad_1x1(dst: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize, t: &mut alloc::vec::Vec<f32>) {
    assert!(weight_grad_1x1_fits(m, k), "1x1 weight gradient: {m} x {k} is not a multiple of 4 x 8");
    assert!(dst.len() >= m * k && a.len() >= m * n && b.len() >= k * n, "1x1 weight gradient: operands shorter than their shapes");
    let panel = (PANEL_FLOATS / k).clamp(64, 2048) / 4 * 4;
    crate::par::resize_uninit(t, panel.min(n) * k);
    let (dst, a, b, tp) = (dst.as_mut_ptr(), a.as_ptr(), b.as_ptr(), t.as_mut_ptr());
    let mut p0 = 0;
    while p0 < n {
        let len = panel.min(n - p0);
        // SAFETY: the asserts bound every operand, `t` holds `len · k` floats, c + 4 ≤ m and
        // j + 8 ≤ k; the relaxed build validates relaxed SIMD before it is loaded.
        unsafe {
            transpose_panel(tp, b, n, k, p0, len);
            for c in (0..m).step_by(4) {
                for j in (0..k).step_by(8) {
                    grad_block(dst, a, tp, n, k, c, j, p0, len);
                }
            }
        }
        p0 += len;
    }
}

/// Whether [`weight_grad_1x1`] takes an `m × k` gradient (multiples of 4 × 8).
pub fn weight_grad_1x1_fits(m: usize, k: usize) -> bool {
    m.is_multiple_of(4) && k.is_multiple_of(8) && m > 0 && k > 0
}

/// `t[i][c] = b[c][p0 + i]` for `c < k`, `i < len`, in 4 × 4 tiles (`k % 4 == 0`).
#[inline]
#[target_feature(enable = "simd128")]
unsafe fn transpose_panel(t: *mut f32, b: *const f32, n: usize, k: usize, p0: usize, len: usize) {
    unsafe {
        for c in (0..k).step_by(4) {
            let src = b.add(c * n + p0);
            let mut i = 0;
            while i + 4 <= len {
                let r = [0, 1, 2, 3].map(|j| v128_load(src.add(j * n + i) as *const v128));
                let lo01 = i32x4_shuffle::<0, 4, 1, 5>(r[0], r[1]);
                let hi01 = i32x4_shuffle::<2, 6, 3, 7>(r[0], r[1]);
                let lo23 = i32x4_shuffle::<0, 4, 1, 5>(r[2], r[3]);
                let hi23 = i32x4_shuffle::<2, 6, 3, 7>(r[2], r[3]);
                let out = t.add(i * k + c);
                v128_store(out as *mut v128, i64x2_shuffle::<0, 2>(lo01, lo23));
                v128_store(out.add(k) as *mut v128, i64x2_shuffle::<1, 3>(lo01, lo23));
                v128_store(out.add(2 * k) as *mut v128, i64x2_shuffle::<0, 2>(hi01, hi23));
                v128_store(out.add(3 * k) as *mut v128, i64x2_shuffle::<1, 3>(hi01, hi23));
                i += 4;
            }
            for i in i..len {
                for j in 0..4 {
                    *t.add(i * k + c + j) = *src.add(j * n + i);
                }
            }
        }
    }
}

/// `dst[c..c + 4][j..j + 8] += Σ_i a[c..c + 4][p0 + i] · t[i][j..j + 8]`.
#[inline]
#[target_feature(enable = "simd128,relaxed-simd")]
#[allow(clippy::too_many_arguments)]
unsafe fn grad_block(dst: *mut f32, a: *const f32, t: *const f32, n: usize, k: usize, c: usize, j: usize, p0: usize, len: usize) {
    unsafe {
        let mut acc = [[f32x4_splat(0.0); VECS]; 4];
        for (r, acc) in acc.iter_mut().enumerate() {
            for (v, acc) in acc.iter_mut().enumerate() {
                *acc = v128_load(dst.add((c + r) * k + j + 4 * v) as *const v128);
            }
        }
        for i in 0..len {
            let row = t.add(i * k + j);
            let mut ts = [f32x4_splat(0.0); VECS];
            for (v, x) in ts.iter_mut().enumerate() {
                *x = v128_load(row.add(4 * v) as *const v128);
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = v128_load32_splat(a.add((c + r) * n + p0 + i) as *const u32);
                for v in 0..VECS {
                    acc[v] = f32x4_relaxed_madd(av, ts[v], acc[v]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, acc) in acc.iter().enumerate() {
                v128_store(dst.add((c + r) * k + j + 4 * v) as *mut v128, *acc);
            }
        }
    }
}

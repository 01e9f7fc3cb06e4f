//! Kiln patch: 1×1 convolutions (f32) in the browser's relaxed-SIMD build, without gemm.
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
pub(crate) fn conv1x1_f32(dst: &mut [f32], w: &[f32], x: &[f32], m: usize, k: usize, n: usize) {
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

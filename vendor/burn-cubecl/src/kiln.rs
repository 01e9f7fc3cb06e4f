//! Kiln's run-time switch for autotune (see KILN-PATCH.md). With the `autotune` feature built in,
//! upstream tunes every matmul, convolution and reduction the first time a shape is seen. That
//! costs minutes before a job of seconds, so here it only runs once a program asks for it;
//! otherwise every strategy takes its no-autotune default, and convolutions the kernels
//! chosen by shape in `kernel/conv/heuristic.rs`.

use core::sync::atomic::{AtomicBool, Ordering};

static AUTOTUNE: AtomicBool = AtomicBool::new(false);

/// Whether kernels are chosen by timing candidates (needs the `autotune` feature).
pub fn autotune_enabled() -> bool {
    cfg!(feature = "autotune") && AUTOTUNE.load(Ordering::Relaxed)
}

/// Turns autotune on or off for kernels launched from now on.
pub fn set_autotune(enabled: bool) {
    AUTOTUNE.store(enabled, Ordering::Relaxed);
}

static UPSTREAM_CONV: AtomicBool = AtomicBool::new(false);

/// Without autotune, convolutions take upstream's no-autotune kernels (direct, and the weight
/// gradient's fallback) instead of the ones chosen by shape: what SwiftShader runs fastest, and
/// the baseline Kiln's benches compare against, in the same process.
pub fn set_upstream_conv(on: bool) {
    UPSTREAM_CONV.store(on, Ordering::Relaxed);
}

pub(crate) fn upstream_conv() -> bool {
    UPSTREAM_CONV.load(Ordering::Relaxed)
}

static NAIVE_MATMUL: AtomicBool = AtomicBool::new(false);

/// Without autotune, matmuls take cubek's naive kernel (one output element per unit, no shared
/// memory, no barriers) instead of its `Auto` choice (tiles staged through shared memory). For
/// adapters that run compute shaders on the CPU and pay for every workgroup barrier, SwiftShader
/// above all (Kiln measured its steps about twice as fast with it); lavapipe prefers the tiles.
pub fn set_naive_matmul(on: bool) {
    NAIVE_MATMUL.store(on, Ordering::Relaxed);
}

pub(crate) fn matmul_strategy() -> cubek::matmul::strategy::Strategy {
    match NAIVE_MATMUL.load(Ordering::Relaxed) {
        true => cubek::matmul::multi_level::Strategy::Naive.into(),
        false => cubek::matmul::strategy::Strategy::Auto,
    }
}

/// Panics for an operation whose cubek kernels this copy leaves out (KILN-PATCH.md): Kiln's
/// models and data pipeline never run it on the GPU.
pub(crate) fn not_compiled(what: &str) -> ! {
    panic!("{what} is not compiled into Kiln's wgpu backend (vendor/burn-cubecl/KILN-PATCH.md)")
}

//! Kiln's CPU kernels, on plain slices: `&[f32]` in, `Vec<f32>` or `&mut [f32]` out, with the
//! shapes in small geometry structs. burn-flex (vendor/burn-flex, see its KILN-PATCH.md) calls
//! them from a few hooks; nothing here knows about tensors, dtypes or backends.
//!
//! - [`conv`]: dense and grouped 2D convolutions (NCHW, f32) as im2col tiles plus gemm, forward
//!   and weight gradient, and the kernel turn that poses a stride-1 input gradient as a forward
//!   convolution;
//! - [`depthwise`]: depthwise 2D convolutions, forward and both gradients, as register-blocked
//!   correlations;
//! - [`pointwise`] (wasm32 with `relaxed-simd`): 1×1 convolutions and their weight gradient
//!   without gemm's packing;
//! - [`batch_norm`]: training-mode BatchNorm, forward and backward, as per-channel passes;
//! - [`pool`]: 2D max pooling with indices, one plane at a time, branch-free;
//! - [`par`]: the thread-pool helpers all of them (and burn-flex's element-wise patches) share.
//!   With the `rayon` feature off (wasm32's one-thread builds) each runs serially, in the same
//!   order per output.
#![no_std]

extern crate alloc;

pub mod batch_norm;
pub mod conv;
pub mod depthwise;
pub mod par;
#[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
pub mod pointwise;
pub mod pool;

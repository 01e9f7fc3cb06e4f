//! Backend operations implementations.

use alloc::borrow::Cow;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_std::{bf16, f16};

use crate::FlexTensor;

/// The `DType` that matches `isize` on the current platform.
#[cfg(target_pointer_width = "64")]
pub(crate) const INDEX_DTYPE: DType = DType::I64;
/// The `DType` that matches `isize` on the current platform.
#[cfg(target_pointer_width = "32")]
pub(crate) const INDEX_DTYPE: DType = DType::I32;

/// Minimum total element count for rayon fan-out on per-row or per-chunk loops.
/// Below this, task-dispatch overhead dominates the per-unit work.
#[cfg(feature = "rayon")]
pub(crate) const PARALLEL_THRESHOLD: usize = 256 * 1024;

/// A buffer of `len` elements that are not initialised: the caller writes every one before
/// reading any (Kiln patch: one helper for the kernels that skip a serial zero-fill).
pub(crate) fn uninit_vec<T: Copy>(len: usize) -> Vec<T> {
    let mut v = Vec::new();
    resize_uninit(&mut v, len);
    v
}

/// Resize `v` to `len` elements without initialising them, reusing its allocation; the
/// caller writes every element before reading any.
pub(crate) fn resize_uninit<T: Copy>(v: &mut Vec<T>, len: usize) {
    v.clear();
    v.reserve(len);
    #[allow(clippy::uninit_vec)]
    unsafe {
        v.set_len(len)
    };
}

/// Kiln patch: run `f` over matching chunks of `dst` and `src` (an empty `src` gives empty
/// chunks), on the thread pool when `dst` has at least [`PARALLEL_THRESHOLD`] elements, else
/// in one call. For element-wise passes that are memory-bound and were serial upstream.
pub(crate) fn for_each_chunk_zip<D: Send, S: Sync>(
    dst: &mut [D],
    src: &[S],
    f: impl Fn(&mut [D], &[S]) + Send + Sync,
) {
    #[cfg(feature = "rayon")]
    if dst.len() >= PARALLEL_THRESHOLD {
        use rayon::prelude::*;
        const CHUNK: usize = 16 * 1024;
        dst.par_chunks_mut(CHUNK).enumerate().for_each(|(i, d)| {
            let s = if src.is_empty() { src } else { &src[i * CHUNK..i * CHUNK + d.len()] };
            f(d, s)
        });
        return;
    }
    f(dst, src)
}

/// Kiln patch: run `f(index, row)` for each `row_len`-element row of `dst`, on the thread pool
/// when `dst` has at least [`PARALLEL_THRESHOLD`] elements (small serial passes between the
/// parallel kernels held the other threads idle).
pub(crate) fn for_each_row_mut<T: Send>(dst: &mut [T], row_len: usize, f: impl Fn(usize, &mut [T]) + Send + Sync) {
    let row_len = row_len.max(1);
    #[cfg(feature = "rayon")]
    if dst.len() >= PARALLEL_THRESHOLD {
        use rayon::prelude::*;
        dst.par_chunks_mut(row_len).enumerate().for_each(|(i, row)| f(i, row));
        return;
    }
    dst.chunks_mut(row_len).enumerate().for_each(|(i, row)| f(i, row));
}

/// Wrapper for raw mutable pointers that can be sent across rayon threads.
///
/// # Safety
///
/// The caller must ensure:
/// - The pointer remains valid for the lifetime of all uses
/// - No two threads write to the same offset
/// - No references to the underlying data exist during writes
#[cfg(feature = "rayon")]
pub(crate) struct SendMutPtr<T>(*mut T);

#[cfg(feature = "rayon")]
unsafe impl<T> Send for SendMutPtr<T> {}
#[cfg(feature = "rayon")]
unsafe impl<T> Sync for SendMutPtr<T> {}

#[cfg(feature = "rayon")]
impl<T> SendMutPtr<T> {
    pub(crate) fn new(ptr: *mut T) -> Self {
        Self(ptr)
    }

    /// Write `val` at the given element offset.
    ///
    /// # Safety
    /// Offset must be in bounds and no other thread may write to the same offset.
    pub(crate) unsafe fn write(&self, offset: usize, val: T) {
        unsafe { self.0.add(offset).write(val) }
    }

    /// Returns the raw pointer offset by `offset` elements.
    ///
    /// # Safety
    /// Offset must be in bounds.
    pub(crate) unsafe fn ptr_add(&self, offset: usize) -> *mut T {
        unsafe { self.0.add(offset) }
    }
}

/// Read a float tensor's storage as f32 values, regardless of source dtype.
/// Returns a borrowed slice for F32 (zero-copy) and an owned Vec for other
/// float dtypes (F64, F16, BF16).
///
/// Returns elements in underlying buffer order. Callers needing logical
/// iteration order must call `to_contiguous()` first.
///
/// # Panics
/// Panics if the tensor's dtype is not one of F32, F64, F16, or BF16.
pub(crate) fn float_storage_as_f32(tensor: &FlexTensor) -> Cow<'_, [f32]> {
    match tensor.dtype() {
        DType::F32 => Cow::Borrowed(tensor.storage::<f32>()),
        DType::F64 => Cow::Owned(tensor.storage::<f64>().iter().map(|&x| x as f32).collect()),
        DType::F16 => Cow::Owned(
            tensor
                .storage::<f16>()
                .iter()
                .map(|x| f32::from(*x))
                .collect(),
        ),
        DType::BF16 => Cow::Owned(
            tensor
                .storage::<bf16>()
                .iter()
                .map(|x| f32::from(*x))
                .collect(),
        ),
        other => panic!("float_storage_as_f32: unsupported dtype {:?}", other),
    }
}

pub mod activation;
pub mod attention;
mod batch_norm; // Kiln patch
pub mod binary;
mod bool;
pub mod cat;
pub mod comparison;
#[macro_use]
mod conv_common;
pub mod conv;
mod conv_backward; // Kiln patch
mod conv_nchw; // Kiln patch
mod depthwise; // Kiln patch
pub mod conv_transpose;
pub mod cumulative;
pub mod deform_conv;
pub mod expand;
#[cfg(feature = "fft")]
pub mod fft;
pub mod flip;
mod float;
pub mod gather_scatter;
pub mod grid_sample;
mod int;
pub mod interpolate;
pub mod mask;
pub mod matmul;
mod module;
#[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
mod pointwise; // Kiln patch
pub mod pool;
mod qtensor;
pub mod reduce;
pub mod repeat_dim;
pub mod slice;
pub mod sort;
mod transaction;
pub mod unary;
pub mod unfold;

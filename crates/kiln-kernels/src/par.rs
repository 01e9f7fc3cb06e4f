//! The thread-pool helpers every kernel here uses, and burn-flex's element-wise patches with
//! them: rayon when the `rayon` feature is on, else the same loops on the calling thread.

use alloc::vec::Vec;

/// Minimum total element count for a chunked fan-out of an element-wise pass; below it,
/// task dispatch costs more than it saves.
pub const PARALLEL_THRESHOLD: usize = 256 * 1024;

/// Threads in the pool (1 without one).
pub fn threads() -> usize {
    #[cfg(feature = "rayon")]
    return rayon::current_num_threads();
    #[cfg(not(feature = "rayon"))]
    1
}

/// A buffer of `len` elements that are not initialised: the caller writes every one before
/// reading any.
pub fn uninit_vec<T: Copy>(len: usize) -> Vec<T> {
    let mut v = Vec::new();
    resize_uninit(&mut v, len);
    v
}

/// Resize `v` to `len` elements without initialising them, reusing its allocation; the
/// caller writes every element before reading any.
pub fn resize_uninit<T: Copy>(v: &mut Vec<T>, len: usize) {
    v.clear();
    v.reserve(len);
    #[allow(clippy::uninit_vec)]
    unsafe {
        v.set_len(len)
    };
}

// Each helper hands rayon a `&dyn Fn`: rayon's splitting and joining is then compiled once per
// element type instead of once per closure (burn-flex's element-wise ops call these with a
// closure per op and dtype, and the copies were a large share of its compile time). The
// indirect call is per chunk, row or task, never per element.

/// `f(part)` for `parts` parts, on the thread pool when there is one; the results in order.
pub fn for_parts<R: Send>(parts: usize, f: impl Fn(usize) -> R + Send + Sync) -> Vec<R> {
    #[cfg(feature = "rayon")]
    {
        fn run<R: Send>(parts: usize, f: &(dyn Fn(usize) -> R + Send + Sync)) -> Vec<R> {
            use rayon::prelude::*;
            (0..parts).into_par_iter().map(f).collect()
        }
        run(parts, &f)
    }
    #[cfg(not(feature = "rayon"))]
    (0..parts).map(f).collect()
}

/// `f(task, scratch)` for tasks `0..tasks`, on the thread pool when there is one, each thread
/// (or the one loop) with its own scratch made by `init`.
pub fn for_tasks_init<S>(tasks: usize, init: impl Fn() -> S + Send + Sync, f: impl Fn(&mut S, usize) + Send + Sync) {
    #[cfg(feature = "rayon")]
    {
        fn run<S>(tasks: usize, init: &(dyn Fn() -> S + Send + Sync), f: &(dyn Fn(&mut S, usize) + Send + Sync)) {
            use rayon::prelude::*;
            (0..tasks).into_par_iter().for_each_init(init, f);
        }
        run(tasks, &init, &f);
    }
    #[cfg(not(feature = "rayon"))]
    {
        let mut s = init();
        (0..tasks).for_each(|task| f(&mut s, task));
    }
}

/// `f(index, chunk, scratch)` over `chunk`-sized pieces of `dst`, on the thread pool when there
/// is one, each thread with its own scratch made by `init`.
pub fn for_each_chunk_init<T: Send, S>(dst: &mut [T], chunk: usize, init: impl Fn() -> S + Send + Sync, f: impl Fn(usize, &mut [T], &mut S) + Send + Sync) {
    #[cfg(feature = "rayon")]
    {
        fn run<T: Send, S>(dst: &mut [T], chunk: usize, init: &(dyn Fn() -> S + Send + Sync), f: &(dyn Fn(usize, &mut [T], &mut S) + Send + Sync)) {
            use rayon::prelude::*;
            dst.par_chunks_mut(chunk).enumerate().for_each_init(init, |s, (i, p)| f(i, p, s));
        }
        run(dst, chunk, &init, &f);
    }
    #[cfg(not(feature = "rayon"))]
    {
        let mut s = init();
        dst.chunks_mut(chunk).enumerate().for_each(|(i, p)| f(i, p, &mut s));
    }
}

/// `f(index, chunk)` over `chunk`-sized pieces of `dst` (1 when `chunk` is 0), on the thread
/// pool when there is one, whatever the size.
pub fn for_each_chunk<T: Send>(dst: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Send + Sync) {
    let chunk = chunk.max(1);
    #[cfg(feature = "rayon")]
    chunks_on_pool(dst, chunk, &f);
    #[cfg(not(feature = "rayon"))]
    dst.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
}

#[cfg(feature = "rayon")]
fn chunks_on_pool<T: Send>(dst: &mut [T], chunk: usize, f: &(dyn Fn(usize, &mut [T]) + Send + Sync)) {
    use rayon::prelude::*;
    dst.par_chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
}

/// `f(index, a_chunk, b_chunk)` over matching `chunk`-sized pieces of `a` and `b`, on the thread
/// pool when there is one.
pub fn for_each_chunk_pair<A: Send, B: Send>(a: &mut [A], b: &mut [B], chunk: usize, f: impl Fn(usize, &mut [A], &mut [B]) + Send + Sync) {
    #[cfg(feature = "rayon")]
    {
        fn run<A: Send, B: Send>(a: &mut [A], b: &mut [B], chunk: usize, f: &(dyn Fn(usize, &mut [A], &mut [B]) + Send + Sync)) {
            use rayon::prelude::*;
            a.par_chunks_mut(chunk).zip(b.par_chunks_mut(chunk)).enumerate().for_each(|(i, (a, b))| f(i, a, b));
        }
        run(a, b, chunk, &f);
    }
    #[cfg(not(feature = "rayon"))]
    a.chunks_mut(chunk).zip(b.chunks_mut(chunk)).enumerate().for_each(|(i, (a, b))| f(i, a, b));
}

/// Run `f` over matching chunks of `dst` and `src` (an empty `src` gives empty chunks), on the
/// thread pool when `dst` has at least [`PARALLEL_THRESHOLD`] elements, else in one call. For
/// element-wise passes that are memory-bound.
pub fn for_each_chunk_zip<D: Send, S: Sync>(dst: &mut [D], src: &[S], f: impl Fn(&mut [D], &[S]) + Send + Sync) {
    #[cfg(feature = "rayon")]
    if dst.len() >= PARALLEL_THRESHOLD {
        fn run<D: Send, S: Sync>(dst: &mut [D], src: &[S], f: &(dyn Fn(&mut [D], &[S]) + Send + Sync)) {
            const CHUNK: usize = 16 * 1024;
            chunks_on_pool(dst, CHUNK, &|i, d| {
                let s = if src.is_empty() { src } else { &src[i * CHUNK..i * CHUNK + d.len()] };
                f(d, s)
            });
        }
        run(dst, src, &f);
        return;
    }
    f(dst, src)
}

/// Run `f(index, row)` for each `row_len`-element row of `dst`, on the thread pool when `dst`
/// has at least [`PARALLEL_THRESHOLD`] elements.
pub fn for_each_row_mut<T: Send>(dst: &mut [T], row_len: usize, f: impl Fn(usize, &mut [T]) + Send + Sync) {
    let row_len = row_len.max(1);
    #[cfg(feature = "rayon")]
    if dst.len() >= PARALLEL_THRESHOLD {
        chunks_on_pool(dst, row_len, &f);
        return;
    }
    dst.chunks_mut(row_len).enumerate().for_each(|(i, row)| f(i, row));
}

/// The threads' partial sums added into the first (`len` zeros when there are none).
pub fn sum_parts(partials: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut iter = partials.into_iter();
    let mut sum = iter.next().unwrap_or_else(|| alloc::vec![0f32; len]);
    for part in iter {
        for_each_chunk_zip(&mut sum, &part, |a, b| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
    }
    sum
}

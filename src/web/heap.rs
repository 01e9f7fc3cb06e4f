//! Memory figures for the page and the soak test: the linear memory's size, and the Rust
//! heap's live bytes through a counting wrapper around the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use wasm_bindgen::prelude::*;

/// Bytes of linear memory this instance holds (wasm memory only grows, so this is its peak).
#[wasm_bindgen(js_name = memoryBytes)]
pub fn memory_bytes() -> f64 {
    (core::arch::wasm32::memory_size(0) * 65536) as f64
}

/// Bytes the Rust heap has handed out and not taken back. The linear memory's size is a
/// high-water mark that also moves with fragmentation (pool threads allocate in whatever order
/// they run), so a leak shows here first: this comes back to the same figure after every step.
#[wasm_bindgen(js_name = liveHeapBytes)]
pub fn live_heap_bytes() -> f64 {
    LIVE.load(Relaxed) as f64
}

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator with a live-bytes counter (one relaxed atomic per call: tensors
/// are few, large allocations). Not inlined: LTO would otherwise copy the counter and the
/// call into every allocation site (+70 KiB gzip in the WebGPU build).
struct Counting;

unsafe impl GlobalAlloc for Counting {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Relaxed);
        }
        p
    }
    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Relaxed);
        }
        p
    }
    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            LIVE.fetch_add(new_size, Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

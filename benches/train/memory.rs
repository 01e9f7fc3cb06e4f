//! Memory: the peak heap of a training step per architecture (what sizes micro-batches), and
//! a dataset of 10,000 photos held lazily.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use burn::tensor::Device;
use kiln::augment;
use kiln::data::{Crop, DataConfig, Datasets, Item};
use kiln::learner::{Learner, LearnerConfig};
use kiln::model::{Arch, ClassifierConfig};

use crate::fake_batch;

/// Counts live heap bytes and their peak, for the `memory` figures.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak heap of one training step of `arch` at `size` px and batch `bs` (frozen or not),
/// above what was live before the step: the model, its Adam state after a first step, the
/// batch, activations and gradients.
fn step_peak(arch: &Arch, size: usize, bs: usize, frozen: bool) -> usize {
    let presize = size + size / 8;
    let classes: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let config = LearnerConfig::new(ClassifierConfig::new(arch.clone(), 10), size).with_batch_size(bs).with_micro_batch(Some(bs));
    let base = LIVE.load(Ordering::Relaxed);
    let mut learner = Learner::new(config, classes, presize as u32, &Device::flex()).unwrap();
    if frozen {
        learner.freeze();
    }
    let (pixels, targets) = fake_batch(bs, presize);
    let mut peak = 0;
    for _ in 0..2 {
        PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
        let images = augment::to_tensor(&pixels, presize, &learner.device);
        pollster::block_on(learner.train_step(images, &targets, &kiln::learner::Hypers { lrs: vec![1e-4, 1e-4, 1e-3], mom: 0.9 })).unwrap();
        peak = PEAK.load(Ordering::Relaxed) - base;
    }
    peak
}

/// Training memory per architecture: the peak of a step at batch 4 and 8, and the per-image
/// and per-pixel slope that `Arch::train_bytes_per_image` uses to size micro-batches.
pub fn memory() {
    let size = 224;
    let mib = |b: usize| b as f64 / 1048576.0;
    // KILN_BENCH_ARCHS picks others (resnet101, resnet152).
    let archs = match std::env::var("KILN_BENCH_ARCHS") {
        Ok(_) => crate::bench_archs(),
        Err(_) => vec![Arch::ResNet18, Arch::ResNet34, Arch::ResNet50, Arch::EfficientNetLite0],
    };
    for arch in archs {
        for frozen in [false, true] {
            let (p4, p8) = (step_peak(&arch, size, 4, frozen), step_peak(&arch, size, 8, frozen));
            let per_image = (p8.saturating_sub(p4)) / 4;
            let est = arch.train_bytes_per_image(size);
            println!(
                "memory: {} {size} px{}: step peak {:.0} MiB at batch 4, {:.0} MiB at batch 8 → {:.1} MiB an image ({} bytes/px; Kiln's estimate {:.1} MiB, {:.2}×); batch 64 ≈ {:.0} MiB",
                arch.name(),
                if frozen { " frozen" } else { "" },
                mib(p4),
                mib(p8),
                mib(per_image),
                per_image / (size * size),
                mib(est as usize),
                est as f64 / per_image.max(1) as f64,
                mib(p4 + 60 * per_image),
            );
        }
    }
}

pub fn data_memory() {
    // 10,000 JPEGs of 500×375 (a typical pets photo size), kept compressed.
    let base = rss_mib();
    let n = 10_000;
    let mut bytes_total = 0usize;
    let items: Vec<Item> = (0..n)
        .map(|i| {
            let img = image::RgbImage::from_fn(500, 375, |x, y| image::Rgb([(x + i) as u8, (y * 2) as u8, ((x ^ y) + i as u32) as u8]));
            let mut jpg = Vec::new();
            image::DynamicImage::ImageRgb8(img).write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg).unwrap();
            bytes_total += jpg.len();
            Item::new(format!("c{}/{i}.jpg", i % 10), jpg)
        })
        .collect();
    let t = Instant::now();
    let dls = Datasets::from_items(items, DataConfig::default()).unwrap();
    let load_s = t.elapsed().as_secs_f64();
    let after_load = rss_mib();
    let batch: Vec<&kiln::data::Sample> = dls.train.iter().take(64).collect();
    let t = Instant::now();
    let px = dls.presize_batch(&batch, &mut || Crop::Centre);
    let presize_s = t.elapsed().as_secs_f64();
    let batch_mib = px.iter().filter_map(|r| r.as_ref().ok()).map(|p| p.len()).sum::<usize>() as f64 / 1048576.0;
    let peak = rss_mib();
    println!(
        "data: {n} JPEGs, {:.0} MiB compressed; RSS +{:.0} MiB after loading ({:.2}× the files; header checks {:.1} s), +{:.0} MiB with one presized batch of 64 at 460 px ({batch_mib:.0} MiB of pixels, {:.2} s)",
        bytes_total as f64 / 1048576.0,
        after_load - base,
        (after_load - base) / (bytes_total as f64 / 1048576.0),
        load_s,
        peak - base,
        presize_s,
    );
}

fn rss_mib() -> f64 {
    proc_status_mib("VmRSS:")
}

/// A memory line of /proc/self/status (VmRSS: now, VmHWM: peak) in MiB.
pub fn proc_status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

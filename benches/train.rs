//! `cargo bench --bench train [-- cpu gpu tiny data]`: median training throughput of ResNet-18
//! at 224 px, batch 16 (augmentation, forward, backward, Adam step), after warm-up, per device;
//! `tiny` is the browser bench's model on the native CPU; `data` the data pipeline's memory for
//! 10,000 images; `effnet` the bundled default backbone's step at 224 px; `pretrained` fine_tune accuracy from EfficientNet-Lite0 vs random weights on
//! crops of real photos; `memory` the peak heap of a training step per architecture. No
//! arguments: cpu and data. `steps` prints the JSON lines `scripts/bench-cpu.sh` tabulates
//! against PyTorch; `gpu-steps` the same steps on wgpu's default adapter at batch 16 and 64. `fp16` compares mixed precision with f32 on the default wgpu device.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use burn::tensor::Device;
use kiln::augment;
use kiln::data::{Crop, DataConfig, Datasets, Item};
use kiln::learner::{Learner, LearnerConfig};
use kiln::model::{Arch, ClassifierConfig};

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
        let loss = learner.train_step(images, &targets, &[1e-4, 1e-4, 1e-3], 0.9);
        let _ = loss.into_scalar::<f32>();
        peak = PEAK.load(Ordering::Relaxed) - base;
    }
    peak
}

/// Training memory per architecture: the peak of a step at batch 4 and 8, and the per-image
/// and per-pixel slope that `Arch::train_bytes_per_image` uses to size micro-batches.
fn memory() {
    let size = 224;
    let mib = |b: usize| b as f64 / 1048576.0;
    for arch in [Arch::ResNet18, Arch::ResNet34, Arch::EfficientNetLite0] {
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

/// What `benches/browser.mjs` times in the page, natively: fine_tune(1) on the digits sample at
/// presize 256, 224 px, batch 16, from random weights; the median batch interval of each phase
/// (the first of a phase, which follows validation, left out). One JSON line per architecture.
fn browser_reference() {
    let items: Vec<Item> = kiln::samples::digits_items(32).into_iter().take(112).collect();
    let dls = Datasets::from_items(items, DataConfig::default().with_presize(256).with_splitter(kiln::Splitter::Auto { valid_pct: 0.143, seed: 42 })).unwrap();
    let threads = rayon::current_num_threads();
    for arch in [Arch::ResNet18, Arch::EfficientNetLite0] {
        let config = LearnerConfig::new(ClassifierConfig::new(arch.clone(), dls.classes.len()), 224).with_batch_size(16);
        let mut learner = Learner::new(config, dls.classes.clone(), 256, &Device::flex()).unwrap();
        let mut times: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
        let mut last: Option<(&str, Instant)> = None;
        let mut on_event = |e: &kiln::Event| {
            if let kiln::Event::Batch(b) = e {
                let now = Instant::now();
                if let Some((phase, t)) = last
                    && phase == b.phase
                {
                    times.entry(b.phase).or_default().push((now - t).as_secs_f64());
                }
                last = Some((b.phase, now));
            }
        };
        let opts = kiln::learner::FineTune::default().with_freeze_epochs(1);
        pollster::block_on(learner.fine_tune(&dls, 1, &opts, &kiln::CancelToken::new(), &mut on_event)).unwrap();
        let m = |p: &str| times.get(p).map(|v| median(v[1.min(v.len() - 1)..].to_vec())).unwrap_or(f64::NAN);
        println!(r#"{{"ref":"native","arch":"{}","threads":{threads},"frozen_s":{:.4},"unfrozen_s":{:.4}}}"#, arch.name(), m("frozen"), m("unfrozen"));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rss_mib() -> f64 {
    proc_status_mib("VmRSS:")
}

/// A memory line of /proc/self/status (VmRSS: now, VmHWM: peak) in MiB.
fn proc_status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// ResNet-18 at 224 px (the issue's figure), or the tiny model the browser bench uses.
fn train_throughput(name: &str, device: Device, arch: Arch, frozen: bool, warmup: usize, steps: usize) -> f64 {
    let tiny = matches!(arch, Arch::Custom(_));
    let (bs, size, presize) = if tiny { (16, 32, 36) } else { (16, 224, 256) };
    let arch_name = arch.name();
    let model = if tiny { ClassifierConfig::new(arch, 10).with_hidden(64) } else { ClassifierConfig::new(arch, 10) };
    let classes: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let config = LearnerConfig::new(model, size).with_batch_size(bs);
    let mut learner = Learner::new(config, classes, presize as u32, &device).unwrap();
    if frozen {
        learner.freeze();
    }
    let (pixels, targets) = fake_batch(bs, presize);
    let mut times = Vec::new();
    for step in 0..warmup + steps {
        let t = Instant::now();
        let images = augment::to_tensor(&pixels, presize, &learner.device);
        let loss = learner.train_step(images, &targets, &[1e-4, 1e-4, 1e-3], 0.9);
        let _ = loss.into_scalar::<f32>(); // waits for the device
        let dt = t.elapsed().as_secs_f64();
        eprintln!("  {name} step {step}: {dt:.2} s{}", if step < warmup { " (warm-up)" } else { "" });
        if step >= warmup {
            times.push(dt);
        }
    }
    let m = median(times);
    let what = format!("{}, {size} px{}", if tiny { "tiny ResNet".to_string() } else { arch_name }, if frozen { ", frozen body" } else { "" });
    println!("{name}: median {:.1} ms/step, {:.1} images/s ({what}, batch {bs}, {steps} steps after {warmup} warm-up)", m * 1e3, bs as f64 / m);
    bs as f64 / m
}

/// ResNet-18 at 224 px on the default wgpu device, f32 then fp16 (mixed precision), each in its
/// own process so each peak RSS is its own: on lavapipe (a CPU Vulkan) GPU buffers are host
/// memory, so RSS is the device's peak memory too.
fn fp16_vs_f32() {
    let exe = std::env::current_exe().unwrap();
    let mut results = Vec::new();
    for precision in ["f32", "f16"] {
        let out = std::process::Command::new(&exe).args(["fp16-step", precision]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        print!("{text}");
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        let field = |key: &str| text.split(key).nth(1).and_then(|r| r.split_whitespace().next()).and_then(|v| v.parse::<f64>().ok());
        results.push((field("median "), field("peak RSS ")));
    }
    if let [(Some(t32), Some(m32)), (Some(t16), Some(m16))] = results[..] {
        println!("fp16 vs f32 (ResNet-18, 224 px): step time {:.2}×, peak memory {:.2}×", t16 / t32, m16 / m32);
    }
}

fn fp16_step(fp16: bool) {
    let device = match Device::wgpu_options().init() {
        Ok(d) => d,
        Err(e) => return println!("fp16: no wgpu adapter ({e})"),
    };
    if fp16 && let Err(why) = kiln::mixed_precision::fp16_support(&device) {
        return println!("fp16: {why}");
    }
    let (bs, size, presize) = (4, 224, 256);
    let classes: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let config = LearnerConfig::new(ClassifierConfig::new(Arch::ResNet18, 10), size).with_batch_size(bs).with_fp16(fp16);
    let mut learner = Learner::new(config, classes, presize as u32, &device).unwrap();
    // A fixed moderate loss scale: the bench times steps, not the scaler's first skips.
    learner.scaler.scale = 1024.0;
    let (pixels, targets) = fake_batch(bs, presize);
    let (warmup, steps) = (1, 3);
    let mut times = Vec::new();
    for step in 0..warmup + steps {
        let t = Instant::now();
        let images = augment::to_tensor(&pixels, presize, &learner.device);
        let loss = learner.train_step(images, &targets, &[1e-4, 1e-4, 1e-3], 0.9);
        let _ = loss.into_scalar::<f32>();
        let dt = t.elapsed().as_secs_f64();
        eprintln!("  {} step {step}: {dt:.2} s{}", if fp16 { "fp16" } else { "f32" }, if step < warmup { " (warm-up)" } else { "" });
        if step >= warmup {
            times.push(dt);
        }
    }
    let peak = proc_status_mib("VmHWM:");
    println!(
        "wgpu {}: median {:.0} ms/step, peak RSS {peak:.0} MiB (ResNet-18, 224 px, batch {bs}, {steps} steps after {warmup} warm-up)",
        if fp16 { "fp16 (mixed)" } else { "f32" },
        median(times) * 1e3
    );
}

/// Median of `n` timed calls after `warmup` untimed ones, in ms.
fn timed(warmup: usize, n: usize, f: &mut dyn FnMut()) -> f64 {
    let v: Vec<f64> = (0..warmup + n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .skip(warmup)
        .collect();
    median(v)
}

fn bench_steps() -> usize {
    std::env::var("KILN_BENCH_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(5)
}

/// Deterministic presized "photos" and their labels for a batch.
fn fake_batch(bs: usize, presize: usize) -> (Vec<Vec<u8>>, Vec<usize>) {
    let pixels = (0..bs).map(|i| (0..presize * presize * 3).map(|j| ((i * 31 + j * 7) % 251) as u8).collect()).collect();
    (pixels, (0..bs).map(|i| i % 10).collect())
}

/// One JSON line per (architecture, frozen) step on `device`: forward + backward + Adam at 224 px
/// on an augmented batch, `warmup` steps untimed (a GPU's autotune and shader compiles).
fn step_lines(device: &Device, tag: &str, bs: usize, fp16: bool, warmup: usize) {
    let (size, presize) = (224, 256);
    let threads = rayon::current_num_threads();
    let classes: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let (pixels, targets) = fake_batch(bs, presize);
    for arch in [Arch::ResNet18, Arch::EfficientNetLite0] {
        for frozen in [false, true] {
            let config = LearnerConfig::new(ClassifierConfig::new(arch.clone(), 10), size).with_batch_size(bs).with_fp16(fp16);
            let mut learner = Learner::new(config, classes.clone(), presize as u32, device).unwrap();
            if frozen {
                learner.freeze();
            }
            let x = learner.augment(augment::to_tensor(&pixels, presize, &learner.device));
            let t0 = Instant::now();
            let ms = timed(warmup, bench_steps(), &mut || {
                let _ = learner.step(x.clone(), &targets, &[1e-4, 1e-4, 1e-3], 0.9).into_scalar::<f32>();
                eprintln!("  {tag} {} frozen={frozen} bs={bs} fp16={fp16}: {:.1} s", arch.name(), t0.elapsed().as_secs_f64());
            });
            println!(
                r#"{{"impl":"kiln","device":"{tag}","what":"step","arch":"{}","frozen":{frozen},"threads":{threads},"bs":{bs},"fp16":{fp16},"ms":{ms:.1}}}"#,
                arch.name()
            );
        }
    }
}

/// `gpu-steps`: the step table on wgpu's default adapter, at batch 16 (the CPU table's) and 64
/// (the page's default), then 64 in mixed precision where the adapter has f16.
fn gpu_step_table() {
    let device = match Device::wgpu_options().init() {
        Ok(d) => d,
        Err(e) => return println!("gpu-steps: no wgpu adapter ({e})"),
    };
    // KILN_BENCH_BS: the batch sizes, comma-separated.
    let sizes: Vec<usize> = std::env::var("KILN_BENCH_BS").ok().map(|v| v.split(',').filter_map(|b| b.trim().parse().ok()).collect()).unwrap_or(vec![16, 64]);
    for &bs in &sizes {
        step_lines(&device, "wgpu", bs, false, 3);
    }
    match kiln::mixed_precision::fp16_support(&device) {
        Ok(()) => step_lines(&device, "wgpu", 64, true, 3),
        Err(why) => println!("gpu-steps: no fp16 ({why})"),
    }
}

/// One line of the side-by-side table (`scripts/bench-cpu.sh`): the median model step
/// (forward, backward, Adam) on an already augmented batch of 16 at 224 px, frozen or not,
/// with the augmentation and the data loading of the same batch timed on their own.
fn step_table() {
    let (bs, size, presize) = (16, 224, 256);
    let threads = rayon::current_num_threads();
    let classes: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let (pixels, _) = fake_batch(bs, presize);
    let timed = |n: usize, f: &mut dyn FnMut()| timed(2, n, f);
    let line = |what: &str, arch: &str, frozen: bool, ms: f64| {
        println!(
            r#"{{"impl":"kiln","what":"{what}","arch":"{arch}","frozen":{frozen},"threads":{threads},"ms":{ms:.1}}}"#
        )
    };
    step_lines(&Device::flex(), "flex", bs, false, 2);
    let config = LearnerConfig::new(
        ClassifierConfig::new(Arch::Custom(kiln::model::ResNetConfig::tiny()), 10),
        size,
    )
    .with_batch_size(bs);
    let mut learner =
        Learner::new(config, classes.clone(), presize as u32, &Device::flex()).unwrap();
    let ms = timed(10, &mut || {
        let x = learner.augment(augment::to_tensor(&pixels, presize, &learner.device));
        let _ = x.sum().into_scalar::<f32>();
    });
    line("augment", "-", false, ms);
    // Loading: decode 16 JPEG photos of 500×375 and presize them to 256 px, as an epoch does.
    let items: Vec<Item> = (0..bs * 4)
        .map(|i| {
            let img = image::RgbImage::from_fn(500, 375, |x, y| {
                image::Rgb([
                    (x + i as u32) as u8,
                    (y * 2) as u8,
                    ((x ^ y) + i as u32) as u8,
                ])
            });
            let mut jpg = Vec::new();
            image::DynamicImage::ImageRgb8(img)
                .write_to(
                    &mut std::io::Cursor::new(&mut jpg),
                    image::ImageFormat::Jpeg,
                )
                .unwrap();
            Item::new(format!("c{}/{i}.jpg", i % 4), jpg)
        })
        .collect();
    let dls =
        Datasets::from_items(items, DataConfig::default().with_presize(presize as u32)).unwrap();
    let batch: Vec<&kiln::data::Sample> = dls.train.iter().take(bs).collect();
    let ms = timed(10, &mut || {
        let px = dls.presize_batch(&batch, &mut || Crop::Centre);
        assert!(px.iter().all(|p| p.is_ok()));
    });
    line("load", "-", false, ms);
}

fn data_memory() {
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

/// Validation accuracy of fine_tune on crops of the scikit-image/scikit-learn photos (see
/// `kiln::samples::photo_crops`), from the bundled EfficientNet-Lite0 and from random weights.
fn pretrained_vs_random() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let mut photos: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("photos"))
        .expect("assets/photos: run `bash scripts/fetch-assets.sh`")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "png" || x == "jpg"))
        .map(|e| (e.path().file_stem().unwrap().to_string_lossy().to_string(), std::fs::read(e.path()).unwrap()))
        .collect();
    photos.sort();
    let weights = std::fs::read(dir.join("efficientnet-lite0-57934424.pth")).unwrap();
    let (epochs, size) = (3, 64);
    let mut acc = [Vec::new(), Vec::new()];
    for seed in [1u64, 2, 3] {
        let items = kiln::samples::photo_crops(&photos, 2, size as u32, seed).unwrap();
        let dls = Datasets::from_items(items, DataConfig::default().with_presize(size as u32)).unwrap();
        for (i, pretrained) in [true, false].into_iter().enumerate() {
            let config = LearnerConfig::new(ClassifierConfig::new(Arch::EfficientNetLite0, dls.classes.len()), size)
                .with_batch_size(16)
                .with_seed(seed);
            let mut learner = Learner::new(config, dls.classes.clone(), size as u32, &Device::flex()).unwrap();
            if pretrained {
                let (arch, body) = kiln::pretrained::load_any(&weights, None, &learner.device).unwrap();
                learner.load_pretrained(body, &arch).unwrap();
            }
            let t = Instant::now();
            let report = pollster::block_on(learner.fine_tune(&dls, epochs, &kiln::learner::FineTune::default(), &kiln::CancelToken::new(), &mut |_| {}))
                .unwrap();
            let a = report.epochs.last().unwrap().accuracy as f64;
            println!("seed {seed}: {} accuracy {:.3} ({:.0} s)", if pretrained { "pretrained" } else { "random    " }, a, t.elapsed().as_secs_f64());
            acc[i].push(a);
        }
    }
    let (p, r) = (median(acc[0].clone()), median(acc[1].clone()));
    println!(
        "photo crops ({} classes, {size} px, fine_tune {epochs} epochs, batch 16, 3 seeds): median validation accuracy pretrained {p:.3}, random init {r:.3} ({:.1}×)",
        photos.len(),
        p / r
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let want = |d: &str| args.is_empty() && d == "cpu" || args.iter().any(|a| a == d);
    // First, so RSS is not inflated by memory the training runs freed but kept mapped.
    if args.is_empty() || want("data") {
        data_memory();
    }
    if want("cpu") {
        let unfrozen = train_throughput("cpu (flex)", Device::flex(), Arch::ResNet18, false, 2, 5);
        let frozen = train_throughput("cpu (flex)", Device::flex(), Arch::ResNet18, true, 2, 5);
        println!("cpu (flex): a frozen step (no weight gradients in the body) runs at {:.2}× the unfrozen speed", frozen / unfrozen);
    }
    if want("effnet") {
        let unfrozen = train_throughput("cpu (flex)", Device::flex(), Arch::EfficientNetLite0, false, 2, 5);
        let frozen = train_throughput("cpu (flex)", Device::flex(), Arch::EfficientNetLite0, true, 2, 5);
        println!("cpu (flex): EfficientNet-Lite0 frozen step at {:.2}× the unfrozen speed", frozen / unfrozen);
    }
    if want("steps") {
        step_table();
    }
    if want("gpu-steps") {
        gpu_step_table();
    }
    if want("browser-ref") {
        browser_reference();
    }
    if want("memory") {
        memory();
    }
    if want("pretrained") {
        pretrained_vs_random();
    }
    if want("tiny") {
        train_throughput("cpu (flex)", Device::flex(), Arch::Custom(kiln::model::ResNetConfig::tiny()), false, 3, 12);
    }
    if want("fp16") {
        fp16_vs_f32();
    }
    if let Some(p) = args.iter().position(|a| a == "fp16-step") {
        fp16_step(args.get(p + 1).is_some_and(|v| v == "f16"));
    }
    if want("gpu") {
        match Device::wgpu_options().init() {
            Ok(d) => {
                train_throughput("gpu (wgpu)", d, Arch::ResNet18, false, 2, 3);
            }
            Err(e) => println!("gpu: no wgpu adapter ({e})"),
        }
    }
}

//! Step times: the CPU and GPU step tables (`steps`, `gpu-steps`), training throughput
//! (`cpu`, `effnet`, `tiny`, `gpu`), the native reference of the browser bench, and mixed
//! precision against f32.

use std::time::Instant;

use burn::tensor::Device;
use kiln::augment;
use kiln::data::{Crop, DataConfig, Datasets, Item};
use kiln::learner::{Learner, LearnerConfig};
use kiln::model::{Arch, ClassifierConfig};

use crate::memory::proc_status_mib;
use crate::{bench_archs, bench_steps, fake_batch, median, timed};

/// ResNet-18 at 224 px (the issue's figure), or the tiny model the browser bench uses.
pub fn train_throughput(name: &str, device: Device, arch: Arch, frozen: bool, warmup: usize, steps: usize) -> f64 {
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
        pollster::block_on(learner.train_step(images, &targets, &kiln::learner::Hypers { lrs: vec![1e-4, 1e-4, 1e-3], mom: 0.9 })).unwrap(); // reads the loss: waits for the device
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
pub fn fp16_vs_f32() {
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

pub fn fp16_step(fp16: bool) {
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
        pollster::block_on(learner.train_step(images, &targets, &kiln::learner::Hypers { lrs: vec![1e-4, 1e-4, 1e-3], mom: 0.9 })).unwrap();
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

/// One JSON line per (architecture, frozen) step on `device`: forward + backward + Adam at 224 px
/// on an augmented batch, `warmup` steps untimed (a GPU's autotune and shader compiles).
fn step_lines(device: &Device, tag: &str, bs: usize, fp16: bool, warmup: usize) {
    // KILN_BENCH_SIZE: the training size (224 by default), presized at 8/7 of it as the page does.
    let size: usize = std::env::var("KILN_BENCH_SIZE").ok().and_then(|s| s.parse().ok()).unwrap_or(224);
    let presize = size * 8 / 7;
    let threads = rayon::current_num_threads();
    let classes: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let (pixels, targets) = fake_batch(bs, presize);
    for arch in bench_archs() {
        for frozen in [false, true] {
            let config = LearnerConfig::new(ClassifierConfig::new(arch.clone(), 10), size).with_batch_size(bs).with_fp16(fp16);
            let mut learner = Learner::new(config, classes.clone(), presize as u32, device).unwrap();
            if frozen {
                learner.freeze();
            }
            let x = learner.augment(augment::to_tensor(&pixels, presize, &learner.device));
            let t0 = Instant::now();
            let mut first_ms = None;
            let ms = timed(warmup, bench_steps(), &mut || {
                let t = Instant::now();
                pollster::block_on(learner.step(vec![kiln::learner::Pass::augmented(x.clone(), targets.clone())], &kiln::learner::Hypers { lrs: vec![1e-4, 1e-4, 1e-3], mom: 0.9 })).unwrap();
                first_ms.get_or_insert(t.elapsed().as_secs_f64() * 1e3);
                eprintln!("  {tag} {} frozen={frozen} bs={bs} fp16={fp16}: {:.1} s", arch.name(), t0.elapsed().as_secs_f64());
            });
            println!(
                r#"{{"impl":"kiln","device":"{tag}","what":"step","arch":"{}","frozen":{frozen},"threads":{threads},"bs":{bs},"size":{size},"fp16":{fp16},"ms":{ms:.1},"first_ms":{:.1}}}"#,
                arch.name(),
                first_ms.unwrap_or(ms)
            );
        }
    }
}

/// Untimed steps before the timed ones on a GPU (`KILN_BENCH_WARMUP`, 3 by default; the first
/// step is reported on its own either way).
fn gpu_warmup() -> usize {
    std::env::var("KILN_BENCH_WARMUP").ok().and_then(|s| s.parse().ok()).unwrap_or(3)
}

/// `gpu-steps`: the step table on wgpu's default adapter for each kernel strategy
/// (`KILN_BENCH_KERNELS`, comma-separated, in this order: `heuristic` (Kiln's default, kernels
/// by shape), `swiftshader` (direct convolutions and the naive matmul, what Kiln runs on
/// SwiftShader), `upstream` (burn's no-autotune kernels, the browser's until Kiln patched them),
/// `autotune`), at batch 16 (the CPU table's) and 64 (the page's default), then 64 in mixed
/// precision where the adapter has f16; then the CPU backend at the same sizes (`KILN_BENCH_CPU=0`
/// leaves it out). Each line has the first step (kernels compiled, and tuned under autotune) and
/// the median. Kernels compiled by an earlier strategy are not compiled again, so later
/// strategies' first steps are flattered.
pub fn gpu_step_table() {
    // As the CLI's --autotune does, before the first kernel reads cubecl's configuration.
    kiln::device::fewer_tuning_samples();
    let device = match Device::wgpu_options().init() {
        Ok(d) => d,
        Err(e) => return println!("gpu-steps: no wgpu adapter ({e})"),
    };
    let list = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| default.into()).split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect::<Vec<_>>();
    // KILN_BENCH_BS: the batch sizes, comma-separated.
    let sizes: Vec<usize> = list("KILN_BENCH_BS", "16,64").iter().filter_map(|b| b.parse().ok()).collect();
    for kernels in list("KILN_BENCH_KERNELS", "heuristic,upstream,autotune") {
        match kernels.as_str() {
            "upstream" => kiln::device::Kernels::Upstream.set(),
            "swiftshader" => kiln::device::Kernels::SwiftShader.set(),
            _ => kiln::device::Kernels::ByShape.set(),
        }
        kiln::device::set_autotune(kernels == "autotune").unwrap_or_else(|e| panic!("{e}"));
        let tag = format!("wgpu-{kernels}");
        for &bs in &sizes {
            step_lines(&device, &tag, bs, false, gpu_warmup());
        }
        match kiln::mixed_precision::fp16_support(&device) {
            Ok(()) if std::env::var("KILN_BENCH_FP16").map_or(true, |v| v != "0") => step_lines(&device, &tag, 64, true, gpu_warmup()),
            Ok(()) => {}
            Err(why) => println!("gpu-steps: no fp16 ({why})"),
        }
    }
    let _ = kiln::device::set_autotune(false);
    if std::env::var("KILN_BENCH_CPU").map_or(true, |v| v != "0") {
        for &bs in &sizes {
            step_lines(&Device::flex(), "flex", bs, false, 2);
        }
    }
}

/// One line of the side-by-side table (`scripts/bench-cpu.sh`): the median model step
/// (forward, backward, Adam) on an already augmented batch of 16 at 224 px, frozen or not,
/// with the augmentation and the data loading of the same batch timed on their own.
pub fn step_table() {
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

/// What `benches/browser.mjs` times in the page, natively: fine_tune(1) on the digits sample at
/// presize 256, 224 px, batch 16, from random weights; the median batch interval of each phase
/// (the first of a phase, which follows validation, left out). One JSON line per architecture.
pub fn browser_reference() {
    let items: Vec<Item> = kiln::samples::digits_items(32).into_iter().take(112).collect();
    let dls = Datasets::from_items(items, DataConfig::default().with_presize(256).with_splitter(kiln::Splitter::Auto { valid_pct: 0.143, seed: 42 })).unwrap();
    let threads = rayon::current_num_threads();
    for arch in bench_archs() {
        let config = LearnerConfig::new(ClassifierConfig::new(arch.clone(), dls.classes.len()), 224).with_batch_size(16);
        let mut learner = Learner::new(config, dls.classes.clone(), 256, &Device::flex()).unwrap();
        let mut times: std::collections::BTreeMap<kiln::learner::Phase, Vec<f64>> = Default::default();
        let mut last: Option<(kiln::learner::Phase, Instant)> = None;
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
        let m = |p: kiln::learner::Phase| times.get(&p).map(|v| median(v[1.min(v.len() - 1)..].to_vec())).unwrap_or(f64::NAN);
        println!(r#"{{"ref":"native","arch":"{}","threads":{threads},"frozen_s":{:.4},"unfrozen_s":{:.4}}}"#, arch.name(), m(kiln::learner::Phase::Frozen), m(kiln::learner::Phase::Unfrozen));
    }
}

//! `cargo bench --bench train [-- cpu gpu tiny data]`: median training throughput of ResNet-18
//! at 224 px, batch 16 (augmentation, forward, backward, Adam step), after warm-up, per device;
//! `tiny` is the browser bench's model on the native CPU; `data` the data pipeline's memory for
//! 10,000 images; `effnet` the bundled default backbone's step at 224 px; `pretrained` fine_tune accuracy from EfficientNet-Lite0 vs random weights on
//! crops of real photos; `memory` the peak heap of a training step per architecture. No
//! arguments: cpu and data. `steps` prints the JSON lines `scripts/bench-cpu.sh` tabulates
//! against PyTorch; `gpu-steps` the same steps on wgpu's default adapter at batch 16 and 64. `fp16` compares mixed precision with f32 on the default wgpu device.

mod accuracy;
mod memory;
mod steps;

use std::time::Instant;

use burn::tensor::Device;
use kiln::model::Arch;

use accuracy::pretrained_vs_random;
use memory::{data_memory, memory};
use steps::{browser_reference, fp16_step, fp16_vs_f32, gpu_step_table, step_table, train_throughput};

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median of `n` timed calls after `warmup` untimed ones, in ms.
pub fn timed(warmup: usize, n: usize, f: &mut dyn FnMut()) -> f64 {
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

/// The step tables' architectures: `KILN_BENCH_ARCHS` (comma-separated names), by default
/// ResNet-18, ResNet-50 and EfficientNet-Lite0.
pub fn bench_archs() -> Vec<Arch> {
    let names = std::env::var("KILN_BENCH_ARCHS").unwrap_or_else(|_| "resnet18,resnet50,efficientnet_lite0".into());
    names.split(',').map(|n| n.trim().parse().unwrap_or_else(|e| panic!("KILN_BENCH_ARCHS: {e}"))).collect()
}

pub fn bench_steps() -> usize {
    std::env::var("KILN_BENCH_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(5)
}

/// Deterministic presized "photos" and their labels for a batch.
pub fn fake_batch(bs: usize, presize: usize) -> (Vec<Vec<u8>>, Vec<Vec<usize>>) {
    let pixels = (0..bs).map(|i| (0..presize * presize * 3).map(|j| ((i * 31 + j * 7) % 251) as u8).collect()).collect();
    (pixels, (0..bs).map(|i| vec![i % 10]).collect())
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

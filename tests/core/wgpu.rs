//! A real training step on wgpu. In CI this runs on lavapipe (Mesa's Vulkan on the CPU).

use burn::tensor::Device;
use kiln::learner::{CancelToken, Event, Learner, LearnerConfig};
use kiln::model::{Arch, ClassifierConfig, ResNetConfig};
use kiln::schedule::{Lr, OneCycle};

use crate::common::{png_item, wgpu};

#[test]
fn trains_on_wgpu() {
    let device = wgpu();
    let mut items = Vec::new();
    for i in 0..4 {
        items.push(png_item(&format!("red/{i}.png"), [220, 10, 10]));
        items.push(png_item(&format!("blue/{i}.png"), [10, 10, 220]));
    }
    let dls = kiln::Datasets::from_items(items, kiln::DataConfig::default().with_presize(12).with_splitter(kiln::Splitter::Random { valid_pct: 0.25, seed: 1 })).unwrap();
    let model = ClassifierConfig::new(Arch::Custom(ResNetConfig::tiny().with_widths([4, 4, 8, 8])), 2).with_hidden(8);
    let config = LearnerConfig::new(model, 8).with_batch_size(3);
    let mut learner = Learner::new(config, dls.classes.clone(), 12, &device).unwrap();
    let start = std::time::Instant::now();
    let mut losses = Vec::new();
    let report = pollster::block_on(learner.fit_one_cycle(&dls, 1, Lr::Single(1e-2), &OneCycle::default(), &CancelToken::new(), &mut |e| {
        if let Event::Batch(b) = e {
            losses.push(b.loss);
        }
    }))
    .unwrap();
    eprintln!("wgpu: {} steps + validation in {:.1} s", losses.len(), start.elapsed().as_secs_f64());
    assert_eq!(losses.len(), 2);
    assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0), "{losses:?}");
    assert!(report.epochs[0].metrics.valid_loss.is_finite());
}


/// The same inputs give the same loss and augmentation on wgpu as on the CPU backend.
#[test]
fn wgpu_agrees_with_the_cpu() {
    use burn::tensor::{Int, Tensor, TensorData};
    let (gpu, cpu) = (wgpu(), Device::flex());
    let logits = |d: &Device| Tensor::<2>::from_data(TensorData::new(vec![-2.24f32, 0.38, -0.67, 1.50, -2.30, 0.92], [2, 3]), d);
    let targets = |d: &Device| Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 2], [2]), d);
    let a = kiln::loss::cross_entropy(logits(&gpu), targets(&gpu)).into_scalar::<f32>();
    let b = kiln::loss::cross_entropy(logits(&cpu), targets(&cpu)).into_scalar::<f32>();
    assert!((a - b).abs() < 1e-5, "loss on wgpu {a} vs cpu {b}");

    let px: Vec<Vec<u8>> = (0..2).map(|i| (0..10 * 10 * 3).map(|j| ((i * 91 + j * 13) % 256) as u8).collect()).collect();
    let cfg = kiln::augment::AugConfig::new(8);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    let augs: Vec<_> = (0..2).map(|_| cfg.draw(&mut rng)).collect();
    let run = |d: &Device| kiln::augment::augment_batch(kiln::augment::to_tensor(&px, 10, d), &augs, 8).into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let (g, c) = (run(&gpu), run(&cpu));
    let err = g.iter().zip(&c).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(err < 1e-3, "augmentation differs by {err}");

    // ReLU6's gradient (Kiln's clamp backward: flex's one-pass kernel on the CPU, comparisons
    // and a mask fill on wgpu), at and between the bounds.
    let xs = vec![-1.0f32, 0.0, 0.5, 3.0, 5.9, 6.0, 7.5, -0.1];
    let grad = |d: &Device| {
        let d = d.clone().autodiff();
        let x = Tensor::<1>::from_data(TensorData::new(xs.clone(), [8]), &d).require_grad();
        let r = Tensor::<1>::from_data(TensorData::new((1..=8).map(|i| i as f32).collect::<Vec<_>>(), [8]), &d);
        let g = (burn::tensor::activation::relu6(x.clone()) * r).sum().backward();
        x.grad(&g).unwrap().into_data().try_to_vec::<f32>().unwrap()
    };
    let want = vec![0.0, 0.0, 3.0, 4.0, 5.0, 0.0, 0.0, 0.0];
    assert_eq!(grad(&cpu), want, "relu6 gradient on the cpu");
    assert_eq!(grad(&gpu), want, "relu6 gradient on wgpu");
}

/// Both kernel sets wgpu runs without autotune (chosen by shape: vendor/burn-cubecl's
/// `heuristic.rs`; SwiftShader's direct convolutions and naive matmul) give the kernel tests'
/// reference values and gradients on every case. Other tests may run meanwhile under either
/// set: both are correct, which is what this checks.
#[test]
fn convolutions_match_the_reference_on_wgpu() {
    use kiln::device::Kernels;
    for kernels in [Kernels::SwiftShader, Kernels::ByShape] {
        kernels.set();
        pollster::block_on(crate::kernels::check_all_on(&wgpu()));
    }
}

/// On a GPU the validation batches keep one size (the short last one padded, so no new shapes
/// to compile or tune), and the predictions are the CPU's for the same model, one per photo.
#[test]
fn get_preds_on_wgpu_pads_the_last_batch_and_matches_the_cpu() {
    let mut items = Vec::new();
    for i in 0..7 {
        items.push(png_item(&format!("red/{i}.png"), [200 + i as u8 * 5, 10, 10]));
        items.push(png_item(&format!("blue/{i}.png"), [10, 10, 200 + i as u8 * 5]));
    }
    // 14 photos, half for validation: 7, in batches of 4 and a short one of 3.
    let dls = kiln::Datasets::from_items(items, kiln::DataConfig::default().with_presize(12).with_splitter(kiln::Splitter::Random { valid_pct: 0.5, seed: 2 })).unwrap();
    assert_eq!(dls.valid.len() % 4, 3);
    let model = ClassifierConfig::new(Arch::Custom(ResNetConfig::tiny().with_widths([4, 4, 8, 8])), 2).with_hidden(8);
    let cpu = Learner::new(LearnerConfig::new(model, 8).with_batch_size(4), dls.classes.clone(), 12, &Device::flex()).unwrap();
    let bytes = pollster::block_on(kiln::export::to_bytes(&cpu)).unwrap();
    let mut on_cpu = kiln::export::from_bytes(&bytes, &Device::flex()).unwrap();
    let mut on_gpu = kiln::export::from_bytes(&bytes, &wgpu()).unwrap();
    let (a, b) = (pollster::block_on(on_cpu.get_preds(&dls)).unwrap(), pollster::block_on(on_gpu.get_preds(&dls)).unwrap());
    assert_eq!((b.probs.len(), b.losses.len(), b.targets.len()), (7, 7, 7));
    for (p, q) in a.probs.iter().flatten().zip(b.probs.iter().flatten()).chain(a.losses.iter().zip(&b.losses)) {
        assert!((p - q).abs() < 1e-4, "cpu {:?} vs wgpu {:?}", a.probs, b.probs);
    }
}

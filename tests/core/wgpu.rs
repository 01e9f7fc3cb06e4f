//! A real training step on wgpu. In CI this runs on lavapipe (Mesa's Vulkan on the CPU).

use burn::tensor::Device;
use kiln::learner::{CancelToken, Event, Learner, LearnerConfig};
use kiln::model::{Arch, ClassifierConfig, ResNetConfig};
use kiln::schedule::{Lr, OneCycle};

use crate::common::png_item;

#[test]
fn trains_on_wgpu() {
    let device = Device::wgpu_options().init().expect("a wgpu adapter (install mesa-vulkan-drivers for lavapipe)");
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
    assert!(report.epochs[0].valid_loss.is_finite());
}

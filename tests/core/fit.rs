//! Training by hand after fine_tune, as the book does: freeze/unfreeze, fit_one_cycle with
//! fastai's slices, and an epoch table that continues across fits and saves.

use kiln::learner::{CancelToken, Event, FineTune, FitOneCycle, Learner, Phase};
use kiln::model::NUM_GROUPS;
use kiln::schedule::{Lr, OneCycle};

use crate::common::cpu;
use crate::learner::{tiny_config, two_colours};

fn fit(learner: &mut Learner, dls: &kiln::data::Datasets, epochs: usize, lr: Lr) -> (Vec<usize>, Vec<Vec<f64>>) {
    let mut lrs = Vec::new();
    let report = pollster::block_on(learner.fit_one_cycle(dls, epochs, lr, &OneCycle::default(), &CancelToken::new(), &mut |e| {
        if let Event::Batch(b) = e {
            lrs.push(b.hypers.lrs.clone());
        }
    }))
    .unwrap();
    assert!(report.epochs.iter().all(|e| e.phase == Phase::Fit));
    (report.epochs.iter().map(|e| e.number).collect(), lrs)
}

#[test]
fn fit_one_cycle_after_fine_tune_numbers_on_and_the_history_survives_a_save() {
    let dls = two_colours();
    let mut learner = Learner::new(tiny_config(2, 16).with_batch_size(8), dls.classes.clone(), 20, &cpu()).unwrap();
    let tuned = pollster::block_on(learner.fine_tune(&dls, 1, &FineTune::default(), &CancelToken::new(), &mut |_| {})).unwrap();
    assert_eq!(tuned.epochs.iter().map(|e| (e.phase, e.number)).collect::<Vec<_>>(), [(Phase::Frozen, 0), (Phase::Unfrozen, 1)]);
    assert_eq!(learner.frozen_below, 0, "fine_tune leaves the model unfrozen");

    // The book: unfreeze (already), then fit_one_cycle(n, lr_max=slice(1e-6, 1e-4)).
    let (numbers, lrs) = fit(&mut learner, &dls, 2, Lr::Range(1e-6, 1e-4));
    assert_eq!(numbers, [2, 3]);
    for step in &lrs {
        assert_eq!(step.len(), NUM_GROUPS);
        // Discriminative rates: the head's is 100x the first group's at every step of the cycle.
        assert!((step[NUM_GROUPS - 1] / step[0] - 100.0).abs() < 1e-6, "{step:?}");
        assert!(step.windows(2).all(|w| w[0] < w[1]), "rates grow towards the head: {step:?}");
    }
    let peak = lrs.iter().map(|s| s[NUM_GROUPS - 1]).fold(0.0, f64::max);
    assert!((peak - 1e-4).abs() < 1e-5, "the head peaks near lr_max's hi: {peak}");
    assert_eq!(learner.history.len(), 4);

    learner.freeze();
    let bytes = pollster::block_on(kiln::export::to_bytes(&learner)).unwrap();
    let mut reopened = kiln::export::from_bytes(&bytes, &cpu()).unwrap();
    assert_eq!(reopened.history, learner.history, "the epoch table comes back with the model");
    assert_eq!(reopened.frozen_below, learner.frozen_below, "and frozen as it was saved");
    let (numbers, _) = fit(&mut reopened, &dls, 1, Lr::Single(1e-3));
    assert_eq!(numbers, [4], "a reopened model numbers on");

    // A file from before histories were saved still opens, with an empty table.
    let old = pollster::block_on(kiln::export::to_bytes(&Learner::new(tiny_config(2, 16), dls.classes.clone(), 20, &cpu()).unwrap())).unwrap();
    assert!(kiln::export::from_bytes(&old, &cpu()).unwrap().history.is_empty());
}

#[test]
fn learning_rates_are_read_as_fastai_writes_them_and_bad_ones_are_named() {
    assert_eq!(Lr::parse("1e-3"), Ok(Lr::Single(1e-3)));
    assert_eq!(Lr::parse("1e-6, 1e-4"), Ok(Lr::Range(1e-6, 1e-4)));
    for (bad, says) in [("fast", "\"fast\" is not a number"), ("1e-4,1e-6", "lo ≤ hi"), ("1,2,3", "one or two values"), ("0", "positive")] {
        let e = Lr::parse(bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
    let opts = |json: &str| serde_json::from_str::<FitOneCycle>(json);
    assert_eq!(opts(r#"{"lrMax": [1e-6, 1e-4]}"#).unwrap().lr_max, Lr::Range(1e-6, 1e-4));
    assert_eq!(opts(r#"{"lrMax": [1e-3]}"#).unwrap().lr_max, Lr::Slice(1e-3));
    assert_eq!(opts(r#"{"lrMax": 0.01, "pctStart": 0.5}"#).unwrap(), FitOneCycle { lr_max: Lr::Single(0.01), pct_start: 0.5, ..FitOneCycle::default() });
    assert!(opts(r#"{"lrMax": [1, 2, 3]}"#).unwrap_err().to_string().contains("one or two values"));
    assert!(opts(r#"{"lrMax": 1e-3, "pctStart": 2}"#).unwrap().validate().unwrap_err().contains("pct_start"));
}

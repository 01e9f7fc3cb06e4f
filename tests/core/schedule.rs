use std::f64::consts::PI;

use kiln::schedule::{Lr, OneCycle};

#[test]
fn one_cycle_lr_and_momentum_follow_the_recipe_formulas() {
    let s = OneCycle::default();
    let lr_max = 1e-3;
    // The formula, written out here: a + (1 + cos(π(1 − t)))·(b − a)/2.
    let cos = |a: f64, b: f64, t: f64| a + (1.0 + (PI * (1.0 - t)).cos()) * (b - a) / 2.0;
    for &p in &[0.0, 0.1, 0.2, 0.25, 0.5, 0.9, 1.0] {
        let (lr, mom) = if p < 0.25 {
            (cos(lr_max / 25.0, lr_max, p / 0.25), cos(0.95, 0.85, p / 0.25))
        } else {
            let t = (p - 0.25) / 0.75;
            (cos(lr_max, lr_max / 1e5, t), cos(0.85, 0.95, t))
        };
        assert!((s.lr(lr_max, p) - lr).abs() < 1e-9, "lr at {p}");
        assert!((s.mom(p) - mom).abs() < 1e-6, "mom at {p}");
    }
    assert!((s.lr(lr_max, 0.0) - 4e-5).abs() < 1e-12);
    assert!((s.lr(lr_max, 0.25) - 1e-3).abs() < 1e-12);
    assert!((s.lr(lr_max, 1.0) - 1e-8).abs() < 1e-15);
    assert!((s.mom(0.25) - 0.85).abs() < 1e-12);
}

#[test]
fn slices_give_fastai_discriminative_rates() {
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12 * y.abs().max(1e-300) + 1e-18);
    assert!(close(&Lr::Range(1e-5, 1e-3).per_group(3), &[1e-5, 1e-4, 1e-3]));
    assert!(close(&Lr::Slice(1e-3).per_group(3), &[1e-4, 1e-4, 1e-3]));
    assert!(close(&Lr::Single(3e-3).per_group(3), &[3e-3; 3]));
    assert!(Lr::Single(-1.0).validate().is_err());
    assert!(Lr::Range(1e-2, 1e-4).validate().is_err());
}

/// The LRs and momenta the training loop actually used, batch by batch, against the RECIPE
/// formulas worked out here: fit_one_cycle, then both phases of fine_tune.
#[test]
fn training_loops_use_the_recipe_schedules() {
    use kiln::learner::{CancelToken, Event, FineTune, Learner, Phase};

    let cos = |a: f64, b: f64, t: f64| a + (1.0 + (PI * (1.0 - t)).cos()) * (b - a) / 2.0;
    let one_cycle = |lr_max: f64, p: f64, pct: f64, div: f64| {
        if p < pct { cos(lr_max / div, lr_max, p / pct) } else { cos(lr_max, lr_max / 1e5, (p - pct) / (1.0 - pct)) }
    };
    let mom = |p: f64, pct: f64| if p < pct { cos(0.95, 0.85, p / pct) } else { cos(0.85, 0.95, (p - pct) / (1.0 - pct)) };

    let dls = crate::learner::two_colours();
    let mut learner = Learner::new(crate::learner::tiny_config(2, 16).with_batch_size(8), dls.classes.clone(), 20, &crate::common::cpu()).unwrap();
    let mut seen: Vec<(Phase, usize, usize, Vec<f64>, f64)> = Vec::new();
    let mut record = |e: &Event| {
        if let Event::Batch(b) = e {
            seen.push((b.phase, b.iter, b.total_iters, b.hypers.lrs.clone(), b.hypers.mom));
        }
    };
    pollster::block_on(learner.fit_one_cycle(&dls, 2, Lr::Single(3e-3), &OneCycle::default(), &CancelToken::new(), &mut record)).unwrap();
    pollster::block_on(learner.fine_tune(&dls, 2, &FineTune::default(), &CancelToken::new(), &mut record)).unwrap();
    let per_epoch = dls.train.len() / 8;
    assert_eq!(seen.len(), per_epoch * (2 + 1 + 2));
    for (phase, iter, total, lrs, m) in &seen {
        let p = *iter as f64 / *total as f64;
        let (want, want_mom): (Vec<f64>, f64) = match *phase {
            Phase::Fit => (vec![one_cycle(3e-3, p, 0.25, 25.0); 3], mom(p, 0.25)),
            // fine_tune step 1: slice(2e-3) → [2e-4, 2e-4, 2e-3], pct_start 0.99, div 25.
            Phase::Frozen => ([2e-4, 2e-4, 2e-3].iter().map(|&l| one_cycle(l, p, 0.99, 25.0)).collect(), mom(p, 0.99)),
            // Steps 2–3: base_lr/2 = 1e-3, slice(1e-5, 1e-3) → [1e-5, 1e-4, 1e-3], pct 0.3, div 5.
            Phase::Unfrozen => ([1e-5, 1e-4, 1e-3].iter().map(|&l| one_cycle(l, p, 0.3, 5.0)).collect(), mom(p, 0.3)),
            other => panic!("unexpected phase {other}"),
        };
        for (a, b) in lrs.iter().zip(&want) {
            assert!(((a - b) / b).abs() < 1e-6, "{phase} iter {iter}: lr {a} vs {b}");
        }
        assert!((m - want_mom).abs() < 1e-6, "{phase} iter {iter}: mom {m} vs {want_mom}");
    }
    assert_eq!(seen.iter().filter(|s| s.0 == Phase::Frozen).count(), per_epoch);
    assert_eq!(seen.iter().filter(|s| s.0 == Phase::Unfrozen).count(), 2 * per_epoch);
}

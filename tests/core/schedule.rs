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

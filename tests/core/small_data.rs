//! Settings proposed for small training sets (src/learner/small_data.rs).

use kiln::learner::small_data::{MIN_STEPS, propose};

#[test]
fn small_sets_get_enough_steps_and_large_ones_keep_fastais_defaults() {
    // The page bench's 144 photos, 116 for training: fastai's defaults are 1 step an epoch.
    let p = propose(116).expect("116 photos need a proposal");
    assert_eq!((p.batch_size, p.freeze_epochs, p.epochs, p.fastai_steps), (16, 1, 4, 2));
    assert_eq!(p.steps, 7 * 5);
    assert!(p.why.contains("116 training photos") && p.why.contains("batch 16 and fine_tune(4)"), "{}", p.why);
    for n in [2, 3, 5, 8, 15, 30, 40, 96, 200, 800, 959] {
        let p = propose(n).unwrap_or_else(|| panic!("{n} photos: fastai's defaults take under {MIN_STEPS} steps"));
        assert!(p.batch_size >= 2 && p.batch_size <= n, "{n}: batch {}", p.batch_size);
        assert!(p.steps >= MIN_STEPS.min(20), "{n}: {} steps", p.steps);
        assert!(p.steps > p.fastai_steps, "{n}: {} steps against fastai's {}", p.steps, p.fastai_steps);
    }
    // 960 photos are 15 batches of 64: fine_tune(1) takes 30 steps, fastai's defaults stand.
    assert_eq!(propose(960), None);
    assert_eq!(propose(10_000), None);
    assert_eq!(propose(1), None, "nothing to propose for one photo (the data check refuses it)");
}

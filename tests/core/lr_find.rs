use kiln::learner::lr_find::{minimum, slide, steep, suggest, valley};

fn log_lrs(n: usize) -> Vec<f64> {
    (0..n).map(|i| 1e-6 * 10f64.powf(6.0 * i as f64 / (n - 1) as f64)).collect()
}

#[test]
fn minimum_is_the_lr_of_the_lowest_loss_over_ten() {
    let lrs = log_lrs(50);
    let losses: Vec<f64> = (0..50).map(|i| ((i as f64 - 30.0) / 10.0).powi(2)).collect();
    let s = minimum(&lrs, &losses);
    assert_eq!(s.lr, lrs[30] / 10.0);
    assert_eq!(s.point, (lrs[30], 0.0));
}

#[test]
fn steep_is_where_loss_falls_fastest_per_log_lr() {
    let lrs = log_lrs(40);
    // Gentle descent everywhere but one cliff between points 20 and 21.
    let losses: Vec<f64> = (0..40).map(|i| 3.0 - 0.01 * i as f64 - if i > 20 { 1.0 } else { 0.0 }).collect();
    // The gradient between i and i+1 is reported at i: the cliff's left end, 20.
    assert_eq!(steep(&lrs, &losses).lr, lrs[20]);
}

#[test]
fn valley_is_about_halfway_down_the_longest_descent() {
    let lrs = log_lrs(60);
    // Rising 0..=9 (all below 1), falling strictly 10..=40 (from 2.0 to 0.5), rising after.
    let losses: Vec<f64> = (0..60)
        .map(|i| match i {
            0..=9 => 0.1 * i as f64,
            10..=40 => 2.0 - 1.5 * (i - 10) as f64 / 30.0,
            _ => 0.5 + 0.3 * (i - 40) as f64,
        })
        .collect();
    // The descent ends at 40 and is 31 points long; fastai counts its start as 40 − 31 = 9,
    // then takes start + int(31/3 ≈ 10.33) + int(10.33/2) = 9 + 10 + 5 = 24.
    assert_eq!(valley(&lrs, &losses).lr, lrs[24]);
}

/// A curve that falls from its first point (a short lr_find on an already-trained model): fastai's
/// start is then −1 and its index arithmetic is Python's, where this panicked before.
#[test]
fn valley_of_a_curve_falling_from_the_start_follows_pythons_arithmetic() {
    let lrs = log_lrs(13);
    let falling: Vec<f64> = (0..13).map(|i| 2.0 - 0.1 * i as f64).collect();
    // start −1, end 12: sections = 13/3 ≈ 4.33, index −1 + 4 + 2 = 5.
    assert_eq!(valley(&lrs, &falling).lr, lrs[5]);
    // Falling over the first two points only: −1 + int(2/3) + int(1/3) = −1, Python's last point.
    let dip = [1.0, 0.5, 0.9, 0.95];
    assert_eq!(valley(&lrs[..4], &dip).lr, lrs[3]);
}

#[test]
fn slide_walks_left_until_the_window_sees_one_slope() {
    let lrs = log_lrs(60);
    // Slope −0.01 up to 44, then +0.5 per step: numpy.gradient is −0.01 before 44, 0.245 at
    // 44, 0.5 after. A 15-wide window [r−15, r] slides left from r = 59 while its ends'
    // gradients differ by more than 0.005: for r = 59 … 44 (16 windows), the last left end
    // being 44 − 15 = 29; at r = 43 both ends are on the −0.01 slope and it stops.
    let losses: Vec<f64> = (0..60).map(|i| if i <= 44 { 1.0 - 0.01 * i as f64 } else { 0.56 + 0.5 * (i - 44) as f64 }).collect();
    let s = slide(&lrs, &losses);
    assert_eq!(s.lr, lrs[29]);
    assert!((s.point.1 - losses[29]).abs() < 1e-9);
}

#[test]
fn suggestions_skip_the_first_tenth_and_last_five_and_stop_at_nan() {
    let lrs = log_lrs(100);
    let mut losses: Vec<f64> = (0..100).map(|i| 2.0 - 0.01 * i as f64).collect();
    losses[2] = -5.0; // inside the skipped first num_it/10 points
    losses[97] = -9.0; // inside the skipped last 5
    losses[80] = f64::NAN; // cuts the window at 80
    let s = suggest(&lrs, &losses, 100).unwrap();
    // Strictly falling on [10, 80): the lowest loss is the last point, 79.
    assert_eq!(s.minimum.lr, lrs[79] / 10.0);
    assert!(suggest(&lrs[..12], &losses[..12], 100).is_none());
}

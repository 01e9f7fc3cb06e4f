use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor, TensorData, activation};
use kiln::loss::{cross_entropy, log_softmax};

use crate::common::cpu;

fn rows() -> Tensor<2> {
    Tensor::from_data(TensorData::new(vec![-2.24f32, 0.38, -0.67, 1.50, -2.30, 0.92], [2, 3]), &cpu())
}

#[test]
fn reproduces_the_seed_softmax_example() {
    let p = log_softmax(rows()).exp().into_data().try_to_vec::<f32>().unwrap();
    // Worked by hand: exp(row) / sum(exp(row)).
    let expect = |r: [f64; 3]| {
        let s: f64 = r.iter().map(|v| v.exp()).sum();
        r.map(|v| (v.exp() / s) as f32)
    };
    let want: Vec<f32> = [expect([-2.24, 0.38, -0.67]), expect([1.50, -2.30, 0.92])].concat();
    for (a, b) in p.iter().zip(&want) {
        assert!((a - b).abs() < 1e-6, "{p:?} vs {want:?}");
    }
    // Known values: first row ≈ [0.0512, 0.7029, 0.2460].
    assert!((p[0] - 0.0512).abs() < 1e-3 && (p[1] - 0.7029).abs() < 1e-3 && (p[2] - 0.2460).abs() < 1e-3);
}

#[test]
fn agrees_with_burns_cross_entropy() {
    let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 0], [2]), &cpu());
    let ours = cross_entropy(rows(), targets.clone()).into_scalar::<f32>();
    let burns = CrossEntropyLossConfig::new().init(&cpu()).forward(rows(), targets).into_scalar::<f32>();
    assert!((ours - burns).abs() < 1e-6, "{ours} vs {burns}");
    let by_hand = -((0.70287f64).ln() + (0.63200f64).ln()) / 2.0;
    assert!((ours as f64 - by_hand).abs() < 1e-3, "{ours} vs {by_hand}");
}

#[test]
fn is_stable_for_huge_logits() {
    let x = Tensor::<2>::from_data(TensorData::new(vec![1000.0f32, 0.0, -1000.0], [1, 3]), &cpu());
    let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64], [1]), &cpu());
    let loss = cross_entropy(x.clone(), targets).into_scalar::<f32>();
    assert!((loss - 2000.0).abs() < 1e-2, "{loss}");
    let naive = activation::softmax(x, 1).log().into_data().try_to_vec::<f32>().unwrap();
    assert!(naive[2].is_infinite(), "log(softmax) underflows where log_softmax does not");
}

/// fastai's BCEWithLogitsLossFlat against one-hot targets: −[y·log σ(x) + (1−y)·log(1−σ(x))]
/// averaged over the classes, worked in f64; finite where σ rounds to 0 or 1 in f32.
#[test]
fn bce_matches_the_formula_and_stays_finite_at_large_logits() {
    use kiln::loss::{LossFunc, bce_per_item};
    let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 0], [2]), &cpu());
    let got = bce_per_item(rows(), targets.clone()).into_data().try_to_vec::<f32>().unwrap();
    let x = [[-2.24f64, 0.38, -0.67], [1.50, -2.30, 0.92]];
    for (i, t) in [1usize, 0].into_iter().enumerate() {
        let want: f64 = (0..3).map(|c| {
            let s = 1.0 / (1.0 + (-x[i][c]).exp());
            if c == t { -s.ln() } else { -(1.0 - s).ln() }
        }).sum::<f64>() / 3.0;
        assert!((got[i] as f64 - want).abs() < 1e-6, "row {i}: {} vs {want}", got[i]);
    }
    let mean = LossFunc::Bce { thresh: 0.5 }.mean(rows(), &[vec![1], vec![0]]).into_scalar::<f32>();
    assert!((mean - (got[0] + got[1]) / 2.0).abs() < 1e-6);
    // Sets of labels: row 0 is classes 0 and 2, row 1 none of them.
    let (probs, losses) = LossFunc::Bce { thresh: 0.5 }.probs_and_losses(rows(), &[vec![0, 2], vec![]]);
    let losses = losses.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(probs.dims(), [2, 3]);
    for (i, t) in [[true, false, true], [false, false, false]].into_iter().enumerate() {
        let want: f64 = (0..3).map(|c| {
            let s = 1.0 / (1.0 + (-x[i][c]).exp());
            if t[c] { -s.ln() } else { -(1.0 - s).ln() }
        }).sum::<f64>() / 3.0;
        assert!((losses[i] as f64 - want).abs() < 1e-6, "multi-hot row {i}: {} vs {want}", losses[i]);
    }
    let big = Tensor::<2>::from_data(TensorData::new(vec![100f32, -100.0, -100.0, 100.0], [2, 2]), &cpu());
    let t = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 0], [2]), &cpu());
    let l = bce_per_item(big, t).into_data().try_to_vec::<f32>().unwrap();
    assert!(l.iter().all(|v| v.is_finite()) && (l[0] - 100.0).abs() < 1e-3, "{l:?}");
}

/// fastai's accuracy_multi(thresh): the share of (photo, class) pairs where "probability above
/// the threshold" equals "is the photo's class".
#[test]
fn accuracy_multi_is_fastais_formula() {
    let preds = kiln::learner::Preds {
        probs: vec![vec![0.9, 0.2, 0.6], vec![0.1, 0.4, 0.3], vec![0.3, 0.8, 0.1]],
        targets: vec![vec![0], vec![2], vec![1]],
        losses: vec![0.0; 3],
        thresh: Some(0.5),
    };
    // Row 0: right, right, wrong (0.6 > 0.5 but not its class); row 1: right, right, wrong
    // (its class 2 at 0.3); row 2: all right. 7 of 9.
    assert!((preds.accuracy() - 7.0 / 9.0).abs() < 1e-6);
    let softmax = kiln::learner::Preds { thresh: None, ..preds.clone() };
    assert!((softmax.accuracy() - 2.0 / 3.0).abs() < 1e-6, "plain accuracy: argmax right on rows 0 and 2");
    // Sets of labels: row 0 {0, 2}, row 1 none (all three below 0.5), row 2 {1}: 9 of 9 right;
    // with row 1 labelled {2} (at 0.3), 8 of 9.
    let multi = kiln::learner::Preds { targets: vec![vec![0, 2], vec![], vec![1]], ..preds.clone() };
    assert!((multi.accuracy() - 1.0).abs() < 1e-6, "{}", multi.accuracy());
    let multi = kiln::learner::Preds { targets: vec![vec![0, 2], vec![2], vec![1]], ..preds.clone() };
    assert!((multi.accuracy() - 8.0 / 9.0).abs() < 1e-6, "{}", multi.accuracy());
    // JS sees one number a photo when every photo has one label, else arrays.
    assert_eq!(serde_json::to_value(&preds).unwrap()["targets"], serde_json::json!([0, 2, 1]));
    assert_eq!(serde_json::to_value(&multi).unwrap()["targets"], serde_json::json!([[0, 2], [2], [1]]));
}

/// fastai's LabelSmoothingCrossEntropy(eps): eps · mean over classes of −log p, plus
/// (1 − eps) · −log p(target), worked in f64.
#[test]
fn label_smoothing_matches_fastais_formula() {
    use kiln::loss::LossFunc;
    let x = [[-2.24f64, 0.38, -0.67], [1.50, -2.30, 0.92]];
    let (probs, losses) = LossFunc::LabelSmoothing { eps: 0.1 }.probs_and_losses(rows(), &[vec![1], vec![0]]);
    let losses = losses.into_data().try_to_vec::<f32>().unwrap();
    for (i, t) in [1usize, 0].into_iter().enumerate() {
        let lse = x[i].iter().map(|v| v.exp()).sum::<f64>().ln();
        let logp: Vec<f64> = x[i].iter().map(|v| v - lse).collect();
        let want = 0.1 * -logp.iter().sum::<f64>() / 3.0 + 0.9 * -logp[t];
        assert!((losses[i] as f64 - want).abs() < 1e-6, "row {i}: {} vs {want}", losses[i]);
    }
    let sums = probs.sum_dim(1).into_data().try_to_vec::<f32>().unwrap();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-6), "a softmax: {sums:?}");
    let mean = LossFunc::LabelSmoothing { eps: 0.1 }.mean(rows(), &[vec![1], vec![0]]).into_scalar::<f32>();
    assert!((mean - (losses[0] + losses[1]) / 2.0).abs() < 1e-6);
}

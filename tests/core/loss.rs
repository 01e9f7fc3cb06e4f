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

use burn::tensor::{Tensor, TensorData};
use kiln::augment::{self, AugConfig, IDENTITY, ImageAug, flip_x, mat_mul, rotation, warp};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::common::cpu;

fn batch(n: usize, side: usize) -> Tensor<4> {
    // Distinct values everywhere: channel, row and column all matter.
    let data: Vec<f32> = (0..n * 3 * side * side).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
    Tensor::from_data(TensorData::new(data, [n, 3, side, side]), &cpu())
}

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn identity_parameters_return_the_input() {
    let x = batch(2, 9);
    let out = augment::warp_batch(x.clone(), &[IDENTITY, IDENTITY], 9);
    let (a, b) = (values(x), values(out));
    let err = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
    assert!(err < 1e-4, "max error {err}");
    // Identity lighting leaves pixels alone too.
    let y = batch(1, 4);
    let lit = augment::lighting(y.clone(), &[ImageAug::identity()]);
    assert_eq!(values(y), values(lit));
}

#[test]
fn a_flip_and_a_rotation_move_known_pixels() {
    let side = 5;
    let x = batch(1, side);
    let src = values(x.clone());
    let at = |v: &[f32], c: usize, r: usize, col: usize| v[(c * side + r) * side + col];
    let flipped = values(augment::warp_batch(x.clone(), &[flip_x()], side));
    for r in 0..side {
        for col in 0..side {
            assert!((at(&flipped, 1, r, col) - at(&src, 1, r, side - 1 - col)).abs() < 1e-4);
        }
    }
    // 90°: output (x, y) samples source (−y, x), i.e. output[r][c] = source[c][side−1−r].
    let rotated = values(augment::warp_batch(x, &[rotation(90.0)], side));
    for r in 0..side {
        for col in 0..side {
            let (want, got) = (at(&src, 0, col, side - 1 - r), at(&rotated, 0, r, col));
            assert!((want - got).abs() < 1e-4, "({r},{col}): {got} vs {want}");
        }
    }
}

#[test]
fn warp_moves_the_corners_by_fastais_pattern() {
    let m = warp(0.2, -0.1);
    let apply = |x: f32, y: f32| {
        let v = [m[0][0] * x + m[0][1] * y + m[0][2], m[1][0] * x + m[1][1] * y + m[1][2], m[2][0] * x + m[2][1] * y + m[2][2]];
        (v[0] / v[2], v[1] / v[2])
    };
    // fastai's targets for magnitudes (x, y) = (0.2, -0.1): (-1,-1) → (-1-y, -1-x), etc.
    for ((px, py), (tx, ty)) in [((-1.0, -1.0), (-0.9, -1.2)), ((-1.0, 1.0), (-1.1, 1.2)), ((1.0, -1.0), (0.9, -0.8)), ((1.0, 1.0), (1.1, 0.8))] {
        let (x, y) = apply(px, py);
        assert!((x - tx).abs() < 1e-4 && (y - ty).abs() < 1e-4, "({px},{py}) → ({x},{y}), want ({tx},{ty})");
    }
    assert!(m[2][0].abs() > 1e-3 || m[2][1].abs() > 1e-3, "a perspective map, not an affine one");
    assert_eq!(mat_mul(&IDENTITY, &m), m);
}

#[test]
fn the_same_seed_gives_the_same_batch() {
    let cfg = AugConfig::new(8);
    let draw = |seed| {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..4).map(|_| cfg.draw(&mut rng)).collect::<Vec<_>>()
    };
    let (a, b, c) = (draw(1), draw(1), draw(2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let x = batch(4, 12);
    let out_a = values(augment::augment_batch(x.clone(), &a, 8));
    let out_b = values(augment::augment_batch(x.clone(), &b, 8));
    let out_c = values(augment::augment_batch(x, &c, 8));
    assert_eq!(out_a, out_b);
    assert_ne!(out_a, out_c);
    assert_eq!(out_a.len(), 4 * 3 * 8 * 8);
}

#[test]
fn drawn_parameters_stay_in_fastai_ranges() {
    let cfg = AugConfig::new(8);
    let mut rng = StdRng::seed_from_u64(0);
    let augs: Vec<ImageAug> = (0..2000).map(|_| cfg.draw(&mut rng)).collect();
    let logit = |p: f32| (p / (1.0 - p)).ln();
    for a in &augs {
        assert!(a.brightness.abs() <= logit(0.6) + 1e-6);
        assert!(a.contrast >= 0.8 - 1e-6 && a.contrast <= 1.25 + 1e-6);
    }
    // p_lighting = 0.75 for each of brightness and contrast.
    let lit = augs.iter().filter(|a| a.brightness != 0.0).count() as f32 / augs.len() as f32;
    assert!((lit - 0.75).abs() < 0.04, "{lit}");
    // Horizontal flips: about half have a negative x scale.
    let flips = augs.iter().filter(|a| a.matrix[0][0] < 0.0).count() as f32 / augs.len() as f32;
    assert!((flips - 0.5).abs() < 0.05, "{flips}");
}

#[test]
fn normalisation_uses_imagenet_statistics() {
    let x = Tensor::<4>::ones([1, 3, 2, 2], &cpu()) * 0.485;
    let v = values(augment::normalize(x));
    assert!(v[0].abs() < 1e-6);
    assert!((v[4] - (0.485 - 0.456) / 0.224).abs() < 1e-5);
}

#[test]
fn a_training_batch_augments_as_without_autodiff() {
    // The learner's batches carry autodiff; augment_batch runs them on the backend's own
    // grid_sample. Burn's generic form (what an autodiff tensor gets) must agree with it,
    // reflections at the border included.
    let cfg = AugConfig::new(10);
    let mut rng = StdRng::seed_from_u64(7);
    let augs: Vec<_> = (0..4).map(|_| cfg.draw(&mut rng)).collect();
    let matrices: Vec<_> = augs.iter().map(|a| a.matrix).collect();
    let x = batch(4, 14);
    assert!(!x.is_autodiff());
    let generic = values(augment::warp_batch(x.clone().autodiff(), &matrices, 10));
    let kernel = values(augment::warp_batch(x.clone(), &matrices, 10));
    let err = generic.iter().zip(&kernel).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
    assert!(err < 1e-4, "max difference {err}");
    let trained = augment::augment_batch(x.clone().autodiff(), &augs, 10);
    assert!(trained.is_autodiff(), "a training batch stays on the autodiff backend");
    assert_eq!(values(trained), values(augment::augment_batch(x, &augs, 10)));
}

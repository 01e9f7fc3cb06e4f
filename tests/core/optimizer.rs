//! fastai's Adam against the same update written out in f64: on the CPU backend (one fused pass
//! over each parameter) and on wgpu (tensor operations), with decoupled weight decay on weights
//! and none on biases, and a snapshot (lr_find's) that later steps must not disturb.

use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use kiln::optimizer::{Adam, AdamConfig};

use crate::common::{cpu, wgpu};

// The weight is large enough for the CPU backend's fused pass, the bias takes the tensor form.
const D_IN: usize = 128;
const D_OUT: usize = 160;
const BATCH: usize = 2;
const STEPS: usize = 3;

fn x(b: usize, i: usize) -> f32 {
    ((b * 7 + i * 3) % 11) as f32 / 5.0 - 1.0
}

/// The loss sum(x·W + b) is linear in the parameters, so every step's gradient is the same:
/// dW[i][j] = Σ_b x[b][i], db[j] = the batch size.
fn reference(w0: &[f64], b0: &[f64], lr: f64, mom: f64, cfg: &AdamConfig) -> (Vec<f64>, Vec<f64>) {
    // burn's Linear weight is [in, out], row-major.
    let gw: Vec<f64> = (0..w0.len()).map(|k| (0..BATCH).map(|b| x(b, k / D_OUT) as f64).sum()).collect();
    let gb = vec![BATCH as f64; b0.len()];
    let run = |p0: &[f64], g: &[f64], wd: f64| {
        let (mut p, mut m, mut v) = (p0.to_vec(), vec![0.0; p0.len()], vec![0.0; p0.len()]);
        for step in 1..=STEPS as i32 {
            for k in 0..p.len() {
                m[k] = m[k] * mom + g[k] * (1.0 - mom);
                v[k] = v[k] * cfg.sqr_mom + g[k] * g[k] * (1.0 - cfg.sqr_mom);
                p[k] *= 1.0 - lr * wd;
                let (d1, d2) = (1.0 - mom.powi(step), 1.0 - cfg.sqr_mom.powi(step));
                p[k] -= lr * (m[k] / d1) / ((v[k] / d2).sqrt() + cfg.eps);
            }
        }
        p
    };
    (run(w0, &gw, cfg.wd), run(b0, &gb, 0.0))
}

fn values(t: Tensor<2>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()
}

fn step(model: Linear, opt: &mut Adam, device: &Device, lr: f64, mom: f64) -> Linear {
    let xs: Vec<f32> = (0..BATCH * D_IN).map(|k| x(k / D_IN, k % D_IN)).collect();
    let xs = Tensor::<2>::from_data(burn::tensor::TensorData::new(xs, [BATCH, D_IN]), device);
    let loss = model.forward(xs).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    opt.step(model, grads, &[lr], mom)
}

fn check(device: Device) {
    let device = device.autodiff();
    let (lr, mom) = (0.01, 0.9);
    let mut model = LinearConfig::new(D_IN, D_OUT).init(&device);
    let w0 = values(model.weight.val());
    let b0 = values(model.bias.as_ref().unwrap().val().unsqueeze());
    let cfg = AdamConfig::default();
    let mut opt = Adam::new(cfg.clone());
    model = step(model, &mut opt, &device, lr, mom);
    // lr_find's snapshot: both copies must go on from the same state.
    let (snapshot, snapshot_model) = (opt.clone(), model.clone());
    for _ in 1..STEPS {
        model = step(model, &mut opt, &device, lr, mom);
    }
    let (w, b) = reference(&w0, &b0, lr, mom, &cfg);
    let close = |got: Vec<f64>, want: &[f64], what: &str| {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{what}: {g} vs {w}");
        }
    };
    close(values(model.weight.val()), &w, "weight (with weight decay)");
    close(values(model.bias.as_ref().unwrap().val().unsqueeze()), &b, "bias (no weight decay)");

    let (mut opt, mut model) = (snapshot, snapshot_model);
    for _ in 1..STEPS {
        model = step(model, &mut opt, &device, lr, mom);
    }
    close(values(model.weight.val()), &w, "weight, stepped again from the snapshot");
}

#[test]
fn adam_matches_fastai_on_the_cpu_backend() {
    check(cpu());
}

#[test]
fn adam_matches_fastai_on_wgpu() {
    check(wgpu());
}

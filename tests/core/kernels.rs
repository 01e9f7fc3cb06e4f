//! The CPU kernels Kiln patches into burn-flex (vendor/burn-flex, see its KILN-PATCH.md),
//! checked against a plain reference on small shapes.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};

use crate::common::cpu;

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            (((i as u32)
                .wrapping_mul(2654435761)
                .wrapping_add(seed.wrapping_mul(40503))
                >> 8)
                % 2001) as f32
                / 1000.0
                - 1.0
        })
        .collect()
}

struct Case {
    batch: usize,
    c_in: usize,
    c_out: usize,
    hw: [usize; 2],
    k: [usize; 2],
    stride: usize,
    pad: [usize; 4], // top, left, bottom, right
    dil: usize,
    groups: usize,
}

/// dW[co, ci, ky, kx] = Σ_n Σ_o R[n, co, o] · x[n, group(co)·cig + ci, o·s + k·d − p], in f64.
fn reference(c: &Case, x: &[f32], r: &[f32], out: [usize; 2]) -> Vec<f64> {
    let (cig, cog) = (c.c_in / c.groups, c.c_out / c.groups);
    let [h, w] = c.hw;
    let mut dw = vec![0f64; c.c_out * cig * c.k[0] * c.k[1]];
    for n in 0..c.batch {
        for co in 0..c.c_out {
            for ci in 0..cig {
                let cx = (co / cog) * cig + ci;
                for ky in 0..c.k[0] {
                    for kx in 0..c.k[1] {
                        let mut s = 0f64;
                        for oy in 0..out[0] {
                            for ox in 0..out[1] {
                                let iy = (oy * c.stride + ky * c.dil) as isize - c.pad[0] as isize;
                                let ix = (ox * c.stride + kx * c.dil) as isize - c.pad[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xv = x[((n * c.c_in + cx) * h + iy as usize) * w + ix as usize]
                                    as f64;
                                s +=
                                    r[((n * c.c_out + co) * out[0] + oy) * out[1] + ox] as f64 * xv;
                            }
                        }
                        dw[((co * cig + ci) * c.k[0] + ky) * c.k[1] + kx] += s;
                    }
                }
            }
        }
    }
    dw
}

/// The weight gradient burn's autodiff computes on the CPU backend, through the patched kernel.
fn weight_grad(c: &Case) -> (Vec<f32>, Vec<f64>) {
    let device = cpu().autodiff();
    let cig = c.c_in / c.groups;
    let x_vals = values(c.batch * c.c_in * c.hw[0] * c.hw[1], 1);
    let w_vals = values(c.c_out * cig * c.k[0] * c.k[1], 2);
    let x = Tensor::<4>::from_data(
        TensorData::new(x_vals.clone(), [c.batch, c.c_in, c.hw[0], c.hw[1]]),
        &device,
    );
    let w = Tensor::<4>::from_data(
        TensorData::new(w_vals, [c.c_out, cig, c.k[0], c.k[1]]),
        &device,
    )
    .require_grad();
    let [t, l, b, r] = c.pad;
    let options =
        ConvOptions::new_with_padding([c.stride; 2], [(t, b), (l, r)], [c.dil; 2], c.groups);
    let y = conv2d(x, w.clone(), None, options);
    let [_, _, oh, ow] = y.dims();
    let r_vals = values(c.batch * c.c_out * oh * ow, 3);
    let rt = Tensor::<4>::from_data(
        TensorData::new(r_vals.clone(), [c.batch, c.c_out, oh, ow]),
        &device,
    );
    let grads = (y * rt).sum().backward();
    let got = w
        .grad(&grads)
        .expect("weight gradient")
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    (got, reference(c, &x_vals, &r_vals, [oh, ow]))
}

fn check(name: &str, c: Case) {
    let (got, want) = weight_grad(&c);
    assert_eq!(got.len(), want.len(), "{name}: gradient size");
    let scale = want.iter().fold(1f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= 1e-4 * scale,
            "{name}: dW[{i}] = {g}, reference {w}"
        );
    }
}

#[test]
fn conv2d_weight_gradient_matches_reference_dense() {
    let base = || Case {
        batch: 3,
        c_in: 5,
        c_out: 7,
        hw: [11, 9],
        k: [3, 3],
        stride: 1,
        pad: [1; 4],
        dil: 1,
        groups: 1,
    };
    check("3×3 stride 1 pad 1", base());
    check(
        "3×3 stride 2 pad 1",
        Case {
            stride: 2,
            ..base()
        },
    );
    check(
        "1×1 stride 1",
        Case {
            k: [1, 1],
            pad: [0; 4],
            ..base()
        },
    );
    check(
        "1×1 stride 2 (ResNet downsample)",
        Case {
            k: [1, 1],
            pad: [0; 4],
            stride: 2,
            ..base()
        },
    );
    check(
        "7×7 stride 2 pad 3 (ResNet stem)",
        Case {
            c_in: 3,
            hw: [20, 18],
            k: [7, 7],
            stride: 2,
            pad: [3; 4],
            ..base()
        },
    );
    check(
        "3×3 dilation 2",
        Case {
            dil: 2,
            pad: [2; 4],
            ..base()
        },
    );
    check(
        "3×1 kernel, no padding",
        Case {
            k: [3, 1],
            pad: [0; 4],
            ..base()
        },
    );
    check(
        "grouped (2 groups)",
        Case {
            c_in: 4,
            c_out: 6,
            groups: 2,
            ..base()
        },
    );
    check(
        "TF 'same' stride 2 (asymmetric, EfficientNet stem)",
        Case {
            c_in: 3,
            hw: [12, 12],
            stride: 2,
            pad: [0, 0, 1, 1],
            ..base()
        },
    );
    check(
        "one image, more threads than images",
        Case { batch: 1, ..base() },
    );
}

#[test]
fn conv2d_weight_gradient_matches_reference_depthwise() {
    let base = || Case {
        batch: 2,
        c_in: 6,
        c_out: 6,
        hw: [10, 13],
        k: [3, 3],
        stride: 1,
        pad: [1; 4],
        dil: 1,
        groups: 6,
    };
    check("depthwise 3×3 stride 1", base());
    check(
        "depthwise 3×3 stride 2",
        Case {
            stride: 2,
            ..base()
        },
    );
    check(
        "depthwise 5×5 TF 'same' stride 2 (asymmetric)",
        Case {
            k: [5, 5],
            stride: 2,
            pad: [1, 1, 2, 2],
            ..base()
        },
    );
    check(
        "depthwise 5×5 stride 1 pad 2, wide rows",
        Case {
            k: [5, 5],
            pad: [2; 4],
            hw: [5, 37],
            ..base()
        },
    );
    check(
        "depthwise channel multiplier 2 (not the fast path)",
        Case {
            c_out: 12,
            ..base()
        },
    );
}

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use kiln::model::{Arch, ClassifierConfig, ResNetConfig, param_group};

use crate::common::cpu;

#[derive(Default)]
struct Names {
    path: Vec<String>,
    params: Vec<(String, usize)>,
}

impl ModuleVisitor for Names {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.params.push((self.path.join("."), param.lazy_shape().num_elements()));
    }
}

fn names<M: Module>(m: &M) -> Vec<(String, usize)> {
    let mut v = Names::default();
    m.visit(&mut v);
    v.params
}

/// torchvision's state_dict keys for the ResNet body (everything before avgpool/fc), in
/// Kiln's spelling: BatchNorm weight/bias are gamma/beta, downsample.0/.1 are .conv/.bn.
fn torchvision_keys(layers: [usize; 4], bottleneck: bool) -> Vec<String> {
    let bn = |p: &str| vec![format!("{p}.gamma"), format!("{p}.beta"), format!("{p}.running_mean"), format!("{p}.running_var")];
    let mut keys = vec!["conv1.weight".to_string()];
    keys.extend(bn("bn1"));
    for (l, &n) in layers.iter().enumerate() {
        for b in 0..n {
            let p = format!("layer{}.{b}", l + 1);
            keys.push(format!("{p}.conv1.weight"));
            keys.extend(bn(&format!("{p}.bn1")));
            keys.push(format!("{p}.conv2.weight"));
            keys.extend(bn(&format!("{p}.bn2")));
            if bottleneck {
                keys.push(format!("{p}.conv3.weight"));
                keys.extend(bn(&format!("{p}.bn3")));
            }
            // A bottleneck's first block widens 64 → 256 even at stride 1.
            if b == 0 && (l > 0 || bottleneck) {
                keys.push(format!("{p}.downsample.conv.weight"));
                keys.extend(bn(&format!("{p}.downsample.bn")));
            }
        }
    }
    keys
}

#[test]
fn resnet_bodies_have_torchvisions_structure_and_sizes() {
    for (arch, layers, params) in [
        (Arch::ResNet18, [2, 2, 2, 2], 11_176_512usize),
        (Arch::ResNet34, [3, 4, 6, 3], 21_284_672),
        (Arch::ResNet50, [3, 4, 6, 3], 23_508_032),
        (Arch::ResNet101, [3, 4, 23, 3], 42_500_160),
        (Arch::ResNet152, [3, 8, 36, 3], 58_143_808),
    ] {
        let cfg = arch.resnet().unwrap();
        let body = cfg.init(&cpu());
        let got = names(&body);
        let mut keys: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        let mut want = torchvision_keys(layers, cfg.bottleneck);
        keys.sort();
        want.sort();
        assert_eq!(keys, want, "{}", arch.name());
        // Trainable parameters: torchvision's resnetN minus fc (features·1000 + 1000).
        let trainable: usize = got.iter().filter(|(n, _)| !n.contains("running")).map(|(_, n)| n).sum();
        assert_eq!(trainable, params, "{}", arch.name());
        assert!(arch.min_body_params() <= params as u64 && arch.train_fixed_bytes() >= 16 * params as u64, "{}", arch.name());
    }
    let r50 = ResNetConfig::resnet50().init(&cpu());
    assert_eq!(r50.forward(Tensor::zeros([1, 3, 64, 64], &cpu())).dims(), [1, 2048, 2, 2]);
    assert_eq!(Arch::ResNet50.num_features(), 2048);
}

/// torchvision's Bottleneck in f64 with training-mode BatchNorm (γ = 1, β = 0, as initialised):
/// relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + bn(downsample(x))).
mod bottleneck_reference {
    pub struct Shape {
        pub n: usize,
        pub c_in: usize,
        pub width: usize,
        pub hw: usize,
        pub stride: usize,
    }

    /// `x` is [n, ci, h, h]; `w` is [co, ci, k, k]; padding k/2.
    fn conv(x: &[f64], w: &[f64], [n, ci, h]: [usize; 3], co: usize, k: usize, stride: usize) -> (Vec<f64>, usize) {
        let pad = k / 2;
        let oh = (h + 2 * pad - k) / stride + 1;
        let mut y = vec![0.0; n * co * oh * oh];
        for b in 0..n {
            for o in 0..co {
                for oy in 0..oh {
                    for ox in 0..oh {
                        let mut s = 0.0;
                        for c in 0..ci {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let (iy, ix) = ((oy * stride + ky) as isize - pad as isize, (ox * stride + kx) as isize - pad as isize);
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < h {
                                        s += x[((b * ci + c) * h + iy as usize) * h + ix as usize] * w[((o * ci + c) * k + ky) * k + kx];
                                    }
                                }
                            }
                        }
                        y[((b * co + o) * oh + oy) * oh + ox] = s;
                    }
                }
            }
        }
        (y, oh)
    }

    fn bn(x: &mut [f64], [n, c, s]: [usize; 3]) {
        for ch in 0..c {
            let idx: Vec<usize> = (0..n).flat_map(|i| (0..s).map(move |j| (i * c + ch) * s + j)).collect();
            let mean = idx.iter().map(|&k| x[k]).sum::<f64>() / idx.len() as f64;
            let var = idx.iter().map(|&k| (x[k] - mean).powi(2)).sum::<f64>() / idx.len() as f64;
            for &k in &idx {
                x[k] = (x[k] - mean) / (var + 1e-5).sqrt();
            }
        }
    }

    fn relu(x: &mut [f64]) {
        x.iter_mut().for_each(|v| *v = v.max(0.0));
    }

    /// [conv1, conv2, conv3, downsample] weights.
    pub fn forward(s: &Shape, x: &[f64], w: &[Vec<f64>; 4]) -> Vec<f64> {
        let (n, wd, out) = (s.n, s.width, 4 * s.width);
        let (mut y, h1) = conv(x, &w[0], [n, s.c_in, s.hw], wd, 1, 1);
        bn(&mut y, [n, wd, h1 * h1]);
        relu(&mut y);
        let (mut y, h2) = conv(&y, &w[1], [n, wd, h1], wd, 3, s.stride);
        bn(&mut y, [n, wd, h2 * h2]);
        relu(&mut y);
        let (mut y, _) = conv(&y, &w[2], [n, wd, h2], out, 1, 1);
        bn(&mut y, [n, out, h2 * h2]);
        let (mut id, _) = conv(x, &w[3], [n, s.c_in, s.hw], out, 1, s.stride);
        bn(&mut id, [n, out, h2 * h2]);
        let mut y: Vec<f64> = y.iter().zip(&id).map(|(a, b)| a + b).collect();
        relu(&mut y);
        y
    }
}

#[test]
fn bottleneck_block_forward_and_gradients_match_an_f64_reference() {
    use bottleneck_reference::{Shape, forward};
    use burn::tensor::TensorData;
    use kiln::model::resnet::Block;
    let s = Shape { n: 2, c_in: 8, width: 4, hw: 6, stride: 2 };
    let device = cpu().autodiff();
    let block = Block::bottleneck(s.c_in, s.width, s.stride, &device);
    let vals = |t: Tensor<4>| t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
    let d = block.downsample.as_ref().expect("8 → 16 channels at stride 2 needs a downsample");
    let conv3 = block.conv3.as_ref().unwrap();
    let ws = [vals(block.conv1.weight.val()), vals(block.conv2.weight.val()), vals(conv3.weight.val()), vals(d.conv.weight.val())];
    let x_vals: Vec<f64> = (0..s.n * s.c_in * s.hw * s.hw).map(|i| (i * 37 % 101) as f64 / 50.0 - 1.0).collect();
    let y_ref = forward(&s, &x_vals, &ws);
    let r: Vec<f64> = (0..y_ref.len()).map(|i| (i * 13 % 29) as f64 / 14.0 - 1.0).collect();
    let loss_ref = |x: &[f64], ws: &[Vec<f64>; 4]| forward(&s, x, ws).iter().zip(&r).map(|(y, r)| y * r).sum::<f64>();

    let x = Tensor::<4>::from_data(TensorData::new(x_vals.iter().map(|&v| v as f32).collect(), [s.n, s.c_in, s.hw, s.hw]), &device).require_grad();
    let y = block.forward_with(x.clone(), kiln::mixed_precision::Precision::F32);
    assert_eq!(y.dims(), [s.n, 4 * s.width, 3, 3]);
    let rt = Tensor::<4>::from_data(TensorData::new(r.iter().map(|&v| v as f32).collect(), y.dims()), &device);
    let y_got = vals(y.clone());
    for (i, (a, b)) in y_got.iter().zip(&y_ref).enumerate() {
        assert!((a - b).abs() < 1e-4, "y[{i}]: {a} vs the reference's {b}");
    }
    let grads = (y * rt).sum().backward();
    let grad = |t: Tensor<4>| vals(t.grad(&grads).expect("a gradient"));
    let got = [grad(block.conv1.weight.val()), grad(block.conv2.weight.val()), grad(conv3.weight.val()), grad(d.conv.weight.val())];
    let got_x = grad(x);
    // Central differences of the f64 reference at a spread of elements of each operand.
    let h = 1e-5;
    for (which, name) in ["conv1", "conv2", "conv3", "downsample.0"].iter().enumerate() {
        let scale = got[which].iter().fold(0f64, |m, g| m.max(g.abs()));
        for i in (0..ws[which].len()).step_by(7) {
            let (mut up, mut down) = (ws.clone(), ws.clone());
            up[which][i] += h;
            down[which][i] -= h;
            let want = (loss_ref(&x_vals, &up) - loss_ref(&x_vals, &down)) / (2.0 * h);
            assert!((got[which][i] - want).abs() < 2e-3 * scale.max(1.0), "d loss / d {name}.weight[{i}]: {} vs the reference's {want}", got[which][i]);
        }
    }
    let scale = got_x.iter().fold(0f64, |m, g| m.max(g.abs()));
    for i in (0..x_vals.len()).step_by(11) {
        let (mut up, mut down) = (x_vals.clone(), x_vals.clone());
        up[i] += h;
        down[i] -= h;
        let want = (loss_ref(&up, &ws) - loss_ref(&down, &ws)) / (2.0 * h);
        assert!((got_x[i] - want).abs() < 2e-3 * scale.max(1.0), "d loss / d x[{i}]: {} vs the reference's {want}", got_x[i]);
    }
}

#[test]
fn head_matches_fastais_create_head() {
    let m = ClassifierConfig::new(Arch::ResNet34, 37).init(&cpu());
    let head = names(&m.head);
    let sizes: Vec<(&str, usize)> = head.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    assert_eq!(
        sizes,
        vec![
            ("bn1.gamma", 1024),
            ("bn1.beta", 1024),
            ("bn1.running_mean", 1024),
            ("bn1.running_var", 1024),
            ("lin1.weight", 1024 * 512),
            ("bn2.gamma", 512),
            ("bn2.beta", 512),
            ("bn2.running_mean", 512),
            ("bn2.running_var", 512),
            ("lin2.weight", 512 * 37),
        ]
    );
}

fn group(path: &str) -> usize {
    param_group(&path.split('.').map(str::to_string).collect::<Vec<_>>())
}

#[test]
fn three_parameter_groups_split_like_fastai() {
    let m = ClassifierConfig::new(Arch::ResNet18, 2).init(&cpu());
    let mut counts = [0; 3];
    for (n, _) in names(&m) {
        counts[group(&n)] += 1;
    }
    assert_eq!(group("body.ResNet.conv1.weight"), 0);
    assert_eq!(group("body.ResNet.bn1.gamma"), 0);
    assert_eq!(group("body.ResNet.layer2.1.bn2.gamma"), 0);
    assert_eq!(group("body.ResNet.layer3.0.conv1.weight"), 1);
    assert_eq!(group("body.ResNet.layer4.1.conv2.weight"), 1);
    assert_eq!(group("head.lin2.weight"), 2);
    assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
}

#[test]
fn efficientnet_groups_split_at_stride_8() {
    let m = ClassifierConfig::new(Arch::EfficientNetLite0, 2).init(&cpu());
    let mut counts = [0usize; 3];
    for (n, size) in names(&m) {
        counts[group(&n)] += size;
    }
    assert_eq!(group("body.EfficientNet.conv_stem.weight"), 0);
    assert_eq!(group("body.EfficientNet.blocks.4.project_conv.weight"), 0);
    assert_eq!(group("body.EfficientNet.blocks.5.expand_conv.weight"), 1);
    assert_eq!(group("body.EfficientNet.conv_head.weight"), 1);
    assert_eq!(group("body.EfficientNet.bn1.gamma"), 1);
    assert_eq!(group("head.lin1.weight"), 2);
    // The stride-8 stages are small; most of the body is in the late group, as for ResNets.
    assert!(counts[0] > 0 && counts[1] > 10 * counts[0] && counts[2] > 0, "{counts:?}");
}

#[test]
fn efficientnet_lite0_has_the_published_structure() {
    let body = kiln::model::EfficientNet::lite0(&cpu());
    let got = names(&body);
    let total: usize = got.iter().map(|(_, n)| n).sum();
    // 4,652,008 parameters in the published model minus its 1280×1000+1000 classifier; BatchNorm
    // running statistics (2 per channel) are counted here too.
    let bn_stats: usize = got.iter().filter(|(n, _)| n.ends_with("running_mean") || n.ends_with("running_var")).map(|(_, n)| n).sum();
    assert_eq!(total - bn_stats, 4_652_008 - 1_281_000);
    assert_eq!(got.iter().filter(|(n, _)| n.ends_with("depthwise_conv.weight")).count(), 16);
    let out = body.forward(Tensor::zeros([1, 3, 224, 224], &cpu()));
    assert_eq!(out.dims(), [1, 1280, 7, 7]);
    // TF "same" padding keeps odd sizes at ceil(size / stride).
    assert_eq!(body.forward(Tensor::zeros([1, 3, 33, 33], &cpu())).dims(), [1, 1280, 2, 2]);
}

#[test]
fn tiny_model_forward_gives_one_logit_per_class() {
    let m = ClassifierConfig::new(Arch::Custom(ResNetConfig::tiny()), 5).with_hidden(32).init(&cpu());
    let out = m.valid().forward(Tensor::zeros([3, 3, 32, 32], &cpu()));
    assert_eq!(out.dims(), [3, 5]);
}

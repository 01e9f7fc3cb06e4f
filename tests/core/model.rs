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
fn torchvision_keys(layers: [usize; 4]) -> Vec<String> {
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
            if b == 0 && l > 0 {
                keys.push(format!("{p}.downsample.conv.weight"));
                keys.extend(bn(&format!("{p}.downsample.bn")));
            }
        }
    }
    keys
}

#[test]
fn resnet_bodies_have_torchvisions_structure_and_sizes() {
    for (cfg, layers, params) in [
        (ResNetConfig::resnet18(), [2, 2, 2, 2], 11_176_512usize),
        (ResNetConfig::resnet34(), [3, 4, 6, 3], 21_284_672),
    ] {
        let body = cfg.init(&cpu());
        let got = names(&body);
        let mut keys: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        let mut want = torchvision_keys(layers);
        keys.sort();
        want.sort();
        assert_eq!(keys, want);
        // Trainable parameters: torchvision resnet18/34 minus fc (512·1000 + 1000).
        let trainable: usize = got.iter().filter(|(n, _)| !n.contains("running")).map(|(_, n)| n).sum();
        assert_eq!(trainable, params);
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

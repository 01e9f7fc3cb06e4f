//! ResNet-18/34 (BasicBlock) and ResNet-50/101/152 (Bottleneck) with torchvision's structure
//! and parameter names (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.conv3`, …), so torchvision
//! checkpoints map onto it; cut before the pooling and classifier (fastai's `cut=-2`).
//! `downsample.0`/`.1` are named `downsample.conv`/`.bn` here.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d, Relu};
use burn::tensor::{Device, Tensor};

use crate::mixed_precision::{Precision, batchnorm as bn_in, conv as conv_in};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResNetConfig {
    /// Blocks per stage: [2,2,2,2] for ResNet-18, [3,4,6,3] for ResNet-34.
    pub layers: [usize; 4],
    /// Channels per stage: [64,128,256,512] in torchvision; cut down for fast tests. A
    /// Bottleneck stage outputs four times its width.
    pub widths: [usize; 4],
    /// Bottleneck blocks (1×1, 3×3 with the stride, 1×1 ×4) instead of basic ones (two 3×3).
    #[serde(default)]
    pub bottleneck: bool,
}

/// A Bottleneck block's output channels per unit of width (torchvision's `expansion`).
pub const EXPANSION: usize = 4;

impl ResNetConfig {
    pub fn resnet18() -> Self {
        Self { layers: [2, 2, 2, 2], widths: [64, 128, 256, 512], bottleneck: false }
    }
    pub fn resnet34() -> Self {
        Self { layers: [3, 4, 6, 3], ..Self::resnet18() }
    }
    pub fn resnet50() -> Self {
        Self { layers: [3, 4, 6, 3], bottleneck: true, ..Self::resnet18() }
    }
    pub fn resnet101() -> Self {
        Self { layers: [3, 4, 23, 3], ..Self::resnet50() }
    }
    pub fn resnet152() -> Self {
        Self { layers: [3, 8, 36, 3], ..Self::resnet50() }
    }
    /// A few thousand parameters: the same code path, fast enough for tests.
    pub fn tiny() -> Self {
        Self { layers: [1, 1, 1, 1], widths: [8, 16, 32, 64], bottleneck: false }
    }
    pub fn with_bottleneck(mut self, bottleneck: bool) -> Self {
        self.bottleneck = bottleneck;
        self
    }
    pub fn with_widths(mut self, widths: [usize; 4]) -> Self {
        self.widths = widths;
        self
    }
    pub fn with_layers(mut self, layers: [usize; 4]) -> Self {
        self.layers = layers;
        self
    }
    /// Channels a stage outputs.
    pub fn out_channels(&self, stage: usize) -> usize {
        self.widths[stage] * if self.bottleneck { EXPANSION } else { 1 }
    }
    pub fn num_features(&self) -> usize {
        self.out_channels(3)
    }

    pub fn init(&self, device: &Device) -> ResNet {
        let w = self.widths;
        let mut in_ch = w[0];
        let mut stage = |i: usize, stride: usize| {
            let blocks = (0..self.layers[i])
                .map(|b| {
                    let stride = if b == 0 { stride } else { 1 };
                    let block = if self.bottleneck {
                        Block::bottleneck(in_ch, w[i], stride, device)
                    } else {
                        Block::basic(in_ch, w[i], stride, device)
                    };
                    in_ch = self.out_channels(i);
                    block
                })
                .collect();
            blocks
        };
        let layer1 = stage(0, 1);
        let layer2 = stage(1, 2);
        let layer3 = stage(2, 2);
        let layer4 = stage(3, 2);
        ResNet {
            conv1: conv(3, w[0], 7, 2, 3, device),
            bn1: bn(w[0], device),
            relu: Relu::new(),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }
}

// torchvision initialises convolutions with kaiming_normal(fan_out, relu).
fn conv(i: usize, o: usize, k: usize, stride: usize, pad: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([i, o], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal { gain: 2f64.sqrt(), fan_out_only: true })
        .init(device)
}

fn bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).init(device)
}

#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

/// torchvision's BasicBlock (conv1 3×3 with the stride, conv2 3×3), or its Bottleneck when
/// `conv3` is present (conv1 1×1, conv2 3×3 with the stride, conv3 1×1 to four times the
/// width): one struct, so the parameter names are torchvision's for both.
#[derive(Module, Debug)]
pub struct Block {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub relu: Relu,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub conv3: Option<Conv2d>,
    pub bn3: Option<BatchNorm>,
    pub downsample: Option<Downsample>,
}

fn downsample(in_ch: usize, out_ch: usize, stride: usize, device: &Device) -> Option<Downsample> {
    (stride != 1 || in_ch != out_ch).then(|| Downsample { conv: conv(in_ch, out_ch, 1, stride, 0, device), bn: bn(out_ch, device) })
}

impl Block {
    pub fn basic(in_ch: usize, out_ch: usize, stride: usize, device: &Device) -> Self {
        Self {
            conv1: conv(in_ch, out_ch, 3, stride, 1, device),
            bn1: bn(out_ch, device),
            relu: Relu::new(),
            conv2: conv(out_ch, out_ch, 3, 1, 1, device),
            bn2: bn(out_ch, device),
            conv3: None,
            bn3: None,
            downsample: downsample(in_ch, out_ch, stride, device),
        }
    }

    /// torchvision's Bottleneck (v1.5: the stride on the 3×3, not the first 1×1).
    pub fn bottleneck(in_ch: usize, width: usize, stride: usize, device: &Device) -> Self {
        let out_ch = width * EXPANSION;
        Self {
            conv1: conv(in_ch, width, 1, 1, 0, device),
            bn1: bn(width, device),
            relu: Relu::new(),
            conv2: conv(width, width, 3, stride, 1, device),
            bn2: bn(width, device),
            conv3: Some(conv(width, out_ch, 1, 1, 0, device)),
            bn3: Some(bn(out_ch, device)),
            downsample: downsample(in_ch, out_ch, stride, device),
        }
    }

    pub fn forward_with(&self, x: Tensor<4>, p: Precision) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => bn_in(&d.bn, conv_in(&d.conv, x.clone(), p), p),
            None => x.clone(),
        };
        let out = self.relu.forward(bn_in(&self.bn1, conv_in(&self.conv1, x, p), p));
        let mut out = bn_in(&self.bn2, conv_in(&self.conv2, out, p), p);
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            out = bn_in(bn3, conv_in(conv3, self.relu.forward(out), p), p);
        }
        self.relu.forward(out + identity)
    }
}

/// The body: everything before torchvision's `avgpool` and `fc`.
#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub relu: Relu,
    pub maxpool: MaxPool2d,
    pub layer1: Vec<Block>,
    pub layer2: Vec<Block>,
    pub layer3: Vec<Block>,
    pub layer4: Vec<Block>,
}

impl ResNet {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with(x, Precision::F32)
    }
    pub fn forward_with(&self, x: Tensor<4>, p: Precision) -> Tensor<4> {
        let mut x = self.maxpool.forward(self.relu.forward(bn_in(&self.bn1, conv_in(&self.conv1, x, p), p)));
        for block in self.layer1.iter().chain(&self.layer2).chain(&self.layer3).chain(&self.layer4) {
            x = block.forward_with(x, p);
        }
        x
    }
}

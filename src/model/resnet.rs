//! ResNet-18/34 with torchvision's structure and parameter names (`conv1`, `bn1`,
//! `layer1.0.conv1`, …), so torchvision checkpoints map onto it; cut before the pooling and
//! classifier (fastai's `cut=-2`). `downsample.0`/`.1` are named `downsample.conv`/`.bn` here.

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
    /// Channels per stage: [64,128,256,512] in torchvision; cut down for fast tests.
    pub widths: [usize; 4],
}

impl ResNetConfig {
    pub fn resnet18() -> Self {
        Self { layers: [2, 2, 2, 2], widths: [64, 128, 256, 512] }
    }
    pub fn resnet34() -> Self {
        Self { layers: [3, 4, 6, 3], widths: [64, 128, 256, 512] }
    }
    /// A few thousand parameters: the same code path, fast enough for tests.
    pub fn tiny() -> Self {
        Self { layers: [1, 1, 1, 1], widths: [8, 16, 32, 64] }
    }
    pub fn with_widths(mut self, widths: [usize; 4]) -> Self {
        self.widths = widths;
        self
    }
    pub fn with_layers(mut self, layers: [usize; 4]) -> Self {
        self.layers = layers;
        self
    }
    pub fn num_features(&self) -> usize {
        self.widths[3]
    }

    pub fn init(&self, device: &Device) -> ResNet {
        let w = self.widths;
        let mut in_ch = w[0];
        let mut stage = |i: usize, stride: usize| {
            let blocks = (0..self.layers[i])
                .map(|b| {
                    let block = BasicBlock::new(in_ch, w[i], if b == 0 { stride } else { 1 }, device);
                    in_ch = w[i];
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

#[derive(Module, Debug)]
pub struct BasicBlock {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub relu: Relu,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub downsample: Option<Downsample>,
}

impl BasicBlock {
    fn new(in_ch: usize, out_ch: usize, stride: usize, device: &Device) -> Self {
        let downsample = (stride != 1 || in_ch != out_ch)
            .then(|| Downsample { conv: conv(in_ch, out_ch, 1, stride, 0, device), bn: bn(out_ch, device) });
        Self {
            conv1: conv(in_ch, out_ch, 3, stride, 1, device),
            bn1: bn(out_ch, device),
            relu: Relu::new(),
            conv2: conv(out_ch, out_ch, 3, 1, 1, device),
            bn2: bn(out_ch, device),
            downsample,
        }
    }

    pub fn forward_with(&self, x: Tensor<4>, p: Precision) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => bn_in(&d.bn, conv_in(&d.conv, x.clone(), p), p),
            None => x.clone(),
        };
        let out = self.relu.forward(bn_in(&self.bn1, conv_in(&self.conv1, x, p), p));
        let out = bn_in(&self.bn2, conv_in(&self.conv2, out, p), p);
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
    pub layer1: Vec<BasicBlock>,
    pub layer2: Vec<BasicBlock>,
    pub layer3: Vec<BasicBlock>,
    pub layer4: Vec<BasicBlock>,
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

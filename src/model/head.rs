//! fastai's `create_head`: AdaptiveConcatPool2d → Flatten → BN → Dropout(0.25) →
//! Linear(2f→512, no bias) → ReLU → BN → Dropout(0.5) → Linear(512→n, no bias).

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig, Relu};
use burn::tensor::{Device, FloatDType, Tensor};

use crate::mixed_precision::{Precision, batchnorm as bn_in, linear as linear_in};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeadConfig {
    pub num_features: usize,
    pub num_classes: usize,
    pub hidden: usize,
    pub ps: [f64; 2],
}

impl HeadConfig {
    pub fn new(num_features: usize, num_classes: usize) -> Self {
        Self { num_features, num_classes, hidden: 512, ps: [0.25, 0.5] }
    }
    pub fn with_hidden(mut self, hidden: usize) -> Self {
        self.hidden = hidden;
        self
    }

    pub fn init(&self, device: &Device) -> Head {
        // fastai initialises the head's linears with kaiming_normal.
        let kaiming = Initializer::KaimingNormal { gain: 2f64.sqrt(), fan_out_only: false };
        let linear = |i, o| LinearConfig::new(i, o).with_bias(false).with_initializer(kaiming.clone()).init(device);
        Head {
            bn1: BatchNormConfig::new(2 * self.num_features).init(device),
            drop1: DropoutConfig::new(self.ps[0]).init(),
            lin1: linear(2 * self.num_features, self.hidden),
            relu: Relu::new(),
            bn2: BatchNormConfig::new(self.hidden).init(device),
            drop2: DropoutConfig::new(self.ps[1]).init(),
            lin2: linear(self.hidden, self.num_classes),
        }
    }
}

#[derive(Module, Debug)]
pub struct Head {
    pub bn1: BatchNorm,
    pub drop1: Dropout,
    pub lin1: Linear,
    pub relu: Relu,
    pub bn2: BatchNorm,
    pub drop2: Dropout,
    pub lin2: Linear,
}

/// AdaptiveConcatPool2d: [max ‖ avg] over the spatial dimensions (fastai's order).
pub fn concat_pool(x: Tensor<4>) -> Tensor<2> {
    let [n, c, h, w] = x.dims();
    let flat = x.reshape([n, c, h * w]);
    let max = flat.clone().max_dim(2).reshape([n, c]);
    let avg = flat.mean_dim(2).reshape([n, c]);
    Tensor::cat(vec![max, avg], 1)
}

impl Head {
    pub fn forward(&self, features: Tensor<4>) -> Tensor<2> {
        self.forward_with(features, Precision::F32)
    }
    /// The pooling reductions run in f32, the linear layers in `p`; the logits come out f32.
    pub fn forward_with(&self, features: Tensor<4>, p: Precision) -> Tensor<2> {
        let x = concat_pool(features.cast(FloatDType::F32));
        let x = linear_in(&self.lin1, self.drop1.forward(bn_in(&self.bn1, x, Precision::F32)), p);
        let x = self.relu.forward(x);
        let x = bn_in(&self.bn2, x, p);
        linear_in(&self.lin2, self.drop2.forward(x), p).cast(FloatDType::F32)
    }
}

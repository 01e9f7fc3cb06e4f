//! fastai's `create_head`, with vision_learner's options: pool ([max ‖ avg], or avg alone
//! without `concat_pool`) → Flatten → BN (`first_bn`) → Dropout(ps/2) → Linear(→ lin_ftrs, no
//! bias) → ReLU → BN → Dropout(ps) → Linear(→ n, no bias) → BN (`bn_final`). The defaults give
//! fastai's head: concat pool, 512 hidden, ps 0.5, first_bn, no bn_final. With `lin_first` the
//! order is the same, but the first BatchNorm moves behind the ReLU (it is `bn2`, present with
//! `first_bn`) and the last linear has a bias, as fastai builds it.

use std::borrow::Cow;

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig, Relu};
use burn::tensor::{Device, FloatDType, Tensor};

use crate::mixed_precision::{Precision, batchnorm as bn_in, linear as linear_in};

/// vision_learner's head options, as `.kiln` headers keep them (fastai's defaults for files
/// made before they existed).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeadOptions {
    /// Width of the first hidden layer (fastai's `lin_ftrs=[512]`).
    pub hidden: usize,
    /// Widths of further hidden layers (`lin_ftrs=[hidden, …]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_hidden: Vec<usize>,
    /// fastai's `ps`: the last dropout's probability; the one before gets half.
    #[serde(default = "default_ps")]
    pub ps: f64,
    #[serde(default = "yes")]
    pub concat_pool: bool,
    #[serde(default = "yes")]
    pub first_bn: bool,
    #[serde(default)]
    pub bn_final: bool,
    /// fastai's `lin_first`: each linear layer before its BatchNorm and dropout.
    #[serde(default)]
    pub lin_first: bool,
}

fn default_ps() -> f64 {
    0.5
}
fn yes() -> bool {
    true
}

impl Default for HeadOptions {
    fn default() -> Self {
        Self { hidden: 512, more_hidden: Vec::new(), ps: 0.5, concat_pool: true, first_bn: true, bn_final: false, lin_first: false }
    }
}

impl HeadOptions {
    /// fastai's `lin_ftrs`: every hidden layer's width.
    pub fn lin_ftrs(&self) -> Vec<usize> {
        std::iter::once(self.hidden).chain(self.more_hidden.iter().copied()).collect()
    }
    /// The hidden layers' widths (at least one; Kiln's head has no head without one).
    pub fn with_lin_ftrs(mut self, lin_ftrs: &[usize]) -> Self {
        if let Some((&first, more)) = lin_ftrs.split_first() {
            self.hidden = first;
            self.more_hidden = more.to_vec();
        }
        self
    }
    pub fn with_hidden(mut self, hidden: usize) -> Self {
        self.hidden = hidden;
        self
    }
    pub fn with_ps(mut self, ps: f64) -> Self {
        self.ps = ps;
        self
    }
    pub fn with_concat_pool(mut self, concat_pool: bool) -> Self {
        self.concat_pool = concat_pool;
        self
    }
    pub fn with_first_bn(mut self, first_bn: bool) -> Self {
        self.first_bn = first_bn;
        self
    }
    pub fn with_lin_first(mut self, lin_first: bool) -> Self {
        self.lin_first = lin_first;
        self
    }
    pub fn with_bn_final(mut self, bn_final: bool) -> Self {
        self.bn_final = bn_final;
        self
    }
}

/// The head for a body with `num_features` channels and `num_classes` outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadConfig {
    pub num_features: usize,
    pub num_classes: usize,
    pub options: HeadOptions,
}

impl HeadConfig {
    pub fn new(num_features: usize, num_classes: usize, options: HeadOptions) -> Self {
        Self { num_features, num_classes, options }
    }

    /// Features after pooling: twice the body's with concat pooling.
    pub fn pooled(&self) -> usize {
        if self.options.concat_pool { 2 * self.num_features } else { self.num_features }
    }

    pub fn init(&self, device: &Device) -> Head {
        let o = &self.options;
        // fastai initialises the head's linears with kaiming_normal.
        let kaiming = Initializer::KaimingNormal { gain: 2f64.sqrt(), fan_out_only: false };
        // A linear layer after a BatchNorm has no bias (fastai's LinBnDrop: bias=not bn).
        let linear = |i, o, bias| LinearConfig::new(i, o).with_bias(bias).with_initializer(kaiming.clone()).init(device);
        let bn = |c| BatchNormConfig::new(c).init(device);
        let n = self.pooled();
        let widths = o.lin_ftrs();
        let last = *widths.last().expect("at least one hidden layer");
        // The BatchNorm in front of hidden layer k (k ≥ 1): always, or with lin_first the one
        // behind layer k − 1, which the first layer has only with first_bn.
        let bn_before = |k: usize| !o.lin_first || k > 1 || o.first_bn;
        Head {
            bn1: (o.first_bn && !o.lin_first).then(|| bn(n)),
            drop1: DropoutConfig::new(o.ps / 2.0).init(),
            lin1: linear(n, o.hidden, !o.first_bn),
            relu: Relu::new(),
            more: widths
                .windows(2)
                .enumerate()
                .map(|(i, w)| HiddenLayer { bn: bn_before(i + 1).then(|| bn(w[0])), drop: DropoutConfig::new(o.ps / 2.0).init(), lin: linear(w[0], w[1], false) })
                .collect(),
            bn2: bn_before(widths.len()).then(|| bn(last)),
            drop2: DropoutConfig::new(o.ps).init(),
            lin2: linear(last, self.num_classes, o.lin_first),
            // fastai's BatchNorm1d(n_out, momentum=0.01): burn's momentum is the same weight.
            bn_final: o.bn_final.then(|| BatchNormConfig::new(self.num_classes).with_momentum(0.01).init(device)),
        }
    }
}

/// One layer of the head after pooling (see [`Head::layers`]).
pub enum HeadLayer<'a> {
    BatchNorm(&'a BatchNorm),
    Dropout(&'a Dropout),
    Linear(&'a Linear),
    Relu,
}

/// A hidden layer after the first ([BN] → dropout → linear, then ReLU).
#[derive(Module, Debug)]
pub struct HiddenLayer {
    pub bn: Option<BatchNorm>,
    pub drop: Dropout,
    pub lin: Linear,
}

#[derive(Module, Debug)]
pub struct Head {
    pub bn1: Option<BatchNorm>,
    pub drop1: Dropout,
    pub lin1: Linear,
    pub relu: Relu,
    /// Hidden layers after the first (`lin_ftrs` of more than one width).
    pub more: Vec<HiddenLayer>,
    pub bn2: Option<BatchNorm>,
    pub drop2: Dropout,
    pub lin2: Linear,
    pub bn_final: Option<BatchNorm>,
}

/// AdaptiveConcatPool2d: [max ‖ avg] over the spatial dimensions (fastai's order).
pub fn concat_pool(x: Tensor<4>) -> Tensor<2> {
    let [n, c, h, w] = x.dims();
    let flat = x.reshape([n, c, h * w]);
    let max = flat.clone().max_dim(2).reshape([n, c]);
    let avg = flat.mean_dim(2).reshape([n, c]);
    Tensor::cat(vec![max, avg], 1)
}

/// AdaptiveAvgPool2d(1), flattened.
pub fn avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
}

impl Head {
    pub fn forward(&self, features: Tensor<4>) -> Tensor<2> {
        self.forward_with(features, Precision::F32)
    }
    /// Whether the pool is fastai's concat pool: the first linear takes twice the channels.
    pub fn concat_pool(&self, channels: usize) -> bool {
        self.lin1.weight.dims()[0] == 2 * channels
    }
    /// The layers after pooling and flattening, in fastai's Sequential order, each with its
    /// field's name: what the forward pass, the ONNX graph and the fastai state dict all walk.
    pub fn layers(&self) -> Vec<(Cow<'static, str>, HeadLayer<'_>)> {
        let mut out: Vec<(Cow<'static, str>, HeadLayer<'_>)> = Vec::with_capacity(9 + 4 * self.more.len());
        if let Some(bn) = &self.bn1 {
            out.push(("bn1".into(), HeadLayer::BatchNorm(bn)));
        }
        out.extend([("drop1".into(), HeadLayer::Dropout(&self.drop1)), ("lin1".into(), HeadLayer::Linear(&self.lin1)), ("relu".into(), HeadLayer::Relu)]);
        for (i, layer) in self.more.iter().enumerate() {
            if let Some(bn) = &layer.bn {
                out.push((format!("more.{i}.bn").into(), HeadLayer::BatchNorm(bn)));
            }
            out.push((format!("more.{i}.drop").into(), HeadLayer::Dropout(&layer.drop)));
            out.push((format!("more.{i}.lin").into(), HeadLayer::Linear(&layer.lin)));
            out.push((format!("more.{i}.relu").into(), HeadLayer::Relu));
        }
        if let Some(bn) = &self.bn2 {
            out.push(("bn2".into(), HeadLayer::BatchNorm(bn)));
        }
        out.extend([("drop2".into(), HeadLayer::Dropout(&self.drop2)), ("lin2".into(), HeadLayer::Linear(&self.lin2))]);
        if let Some(bn) = &self.bn_final {
            out.push(("bn_final".into(), HeadLayer::BatchNorm(bn)));
        }
        out
    }

    /// The pooling reductions, and BatchNorms before the first or after the last linear layer,
    /// run in f32; the rest in `p`; the logits come out f32.
    pub fn forward_with(&self, features: Tensor<4>, p: Precision) -> Tensor<2> {
        let channels = features.dims()[1];
        let features = features.cast(FloatDType::F32);
        let mut x = if self.concat_pool(channels) { concat_pool(features) } else { avg_pool(features) };
        let layers = self.layers();
        let linear = |l: &HeadLayer<'_>| matches!(l, HeadLayer::Linear(_));
        let first = layers.iter().position(|(_, l)| linear(l)).unwrap_or(0);
        let last = layers.iter().rposition(|(_, l)| linear(l)).unwrap_or(0);
        for (i, (_, layer)) in layers.iter().enumerate() {
            let at = if i < first || i > last { Precision::F32 } else { p };
            x = match layer {
                HeadLayer::BatchNorm(bn) => bn_in(bn, x, at),
                HeadLayer::Dropout(d) => d.forward(x),
                HeadLayer::Linear(l) if i == last => linear_in(l, x, p).cast(FloatDType::F32),
                HeadLayer::Linear(l) => linear_in(l, x, p),
                HeadLayer::Relu => self.relu.forward(x),
            };
        }
        x
    }
}

//! fastai's `to_fp16` (its `MixedPrecision` callback, PyTorch's autocast + GradScaler): the
//! forward and backward passes run in half precision where that is safe, while the weights and
//! Adam's state stay f32 (the master copy).
//!
//! - In f16: convolutions, the head's linear layers and the elementwise ops between them
//!   (ReLU, ReLU6, max pooling, residual additions). Weights are cast per pass (a
//!   differentiable cast, so gradients arrive in f32 on the f32 weights).
//! - In f32: BatchNorm (its batch statistics and running averages), the pooling reductions
//!   before the head, the loss and softmax, validation and prediction.
//! - A dynamic [`LossScaler`] multiplies the loss before backward so small gradients do not
//!   underflow in f16, and divides the gradients before Adam. A step whose gradients overflow
//!   is skipped and the scale halved; after enough clean steps it doubles.
//!
//! Only on GPUs with half precision (`shader-f16` on WebGPU): the CPU backend computes in f32.

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, FloatDType, Tensor};

/// The dtype a forward pass computes in (see the module docs for what stays f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F32,
    F16,
}

impl Precision {
    fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::F16 => FloatDType::F16,
        }
    }
    /// `x` in this precision (no-op when it already is).
    pub fn cast<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        x.cast(self.dtype())
    }
}

/// Whether `device` can train in mixed precision, or why not (a sentence for the user).
pub fn fp16_support(device: &Device) -> Result<(), String> {
    if crate::device::is_cpu(device) {
        return Err("mixed precision (fp16) needs a GPU with half precision; the CPU backend computes in f32".into());
    }
    if !device.clone().inner().supports_dtype(FloatDType::F16) {
        return Err("this GPU has no half precision (WebGPU's shader-f16 feature), so mixed precision (fp16) is not available".into());
    }
    Ok(())
}

/// A convolution in `p`: the input and weights cast, the output in `p`.
pub fn conv(c: &Conv2d, x: Tensor<4>, p: Precision) -> Tensor<4> {
    if p == Precision::F32 {
        return c.forward(x);
    }
    let [_, _, h, w] = x.dims();
    let [(top, bottom), (left, right)] = conv_padding(&c.padding, [h, w], c.kernel_size, c.stride);
    let options = ConvOptions::new_with_padding(c.stride, [(top, bottom), (left, right)], c.dilation, c.groups);
    conv2d(p.cast(x), p.cast(c.weight.val()), c.bias.as_ref().map(|b| p.cast(b.val())), options)
}

/// A convolution's padding as ((top, bottom), (left, right)) for an input of `hw`, as burn's
/// `Conv2d` computes it: "same" is TF-style, the odd pixel at the end. (For the functional
/// convolution above, and the ONNX export's explicit pads.)
pub fn conv_padding(padding: &PaddingConfig2d, hw: [usize; 2], kernel: [usize; 2], stride: [usize; 2]) -> [(usize, usize); 2] {
    let same = |k: usize, s: usize, n: usize| {
        let total = ((n.div_ceil(s).max(1) - 1) * s + k).saturating_sub(n);
        (total / 2, total - total / 2)
    };
    match padding {
        PaddingConfig2d::Valid => [(0, 0); 2],
        PaddingConfig2d::Explicit(t, l, b, r) => [(*t, *b), (*l, *r)],
        PaddingConfig2d::Same => [same(kernel[0], stride[0], hw[0]), same(kernel[1], stride[1], hw[1])],
    }
}

/// BatchNorm computed in f32 (batch statistics and running averages), the output back in `p`.
pub fn batchnorm<const D: usize>(bn: &BatchNorm, x: Tensor<D>, p: Precision) -> Tensor<D> {
    if p == Precision::F32 {
        return bn.forward(x);
    }
    p.cast(bn.forward(x.cast(FloatDType::F32)))
}

/// A linear layer in `p`.
pub fn linear(l: &Linear, x: Tensor<2>, p: Precision) -> Tensor<2> {
    if p == Precision::F32 {
        return l.forward(x);
    }
    let y = p.cast(x).matmul(p.cast(l.weight.val()));
    match &l.bias {
        Some(b) => y + p.cast(b.val()).unsqueeze::<2>(),
        None => y,
    }
}

/// PyTorch's GradScaler policy: start at 2^16, halve on overflow (and skip that step), double
/// after `growth_interval` clean steps in a row.
#[derive(Clone, Debug, PartialEq)]
pub struct LossScaler {
    pub scale: f64,
    pub growth_factor: f64,
    pub backoff_factor: f64,
    pub growth_interval: usize,
    clean_steps: usize,
    /// Steps skipped because their gradients overflowed.
    pub skipped: usize,
}

impl Default for LossScaler {
    fn default() -> Self {
        Self { scale: 65536.0, growth_factor: 2.0, backoff_factor: 0.5, growth_interval: 2000, clean_steps: 0, skipped: 0 }
    }
}

impl LossScaler {
    pub fn with_growth_interval(mut self, n: usize) -> Self {
        self.growth_interval = n.max(1);
        self
    }

    /// Record a step's outcome: `finite` gradients are applied (returns true); an overflow
    /// halves the scale and the step is skipped (returns false).
    pub fn update(&mut self, finite: bool) -> bool {
        if finite {
            self.clean_steps += 1;
            if self.clean_steps >= self.growth_interval {
                self.scale *= self.growth_factor;
                self.clean_steps = 0;
            }
        } else {
            // Never below 1: a scale that small means the gradients themselves are not finite.
            self.scale = (self.scale * self.backoff_factor).max(1.0);
            self.clean_steps = 0;
            self.skipped += 1;
        }
        finite
    }
}

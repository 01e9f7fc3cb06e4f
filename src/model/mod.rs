//! Model: a pretrained body (ResNet or EfficientNet-Lite0) and fastai's head (vision_learner),
//! with fastai's three parameter groups: [stem + early stages], [late stages], [head].

pub mod efficientnet;
pub mod head;
pub mod resnet;

pub use efficientnet::EfficientNet;
pub use head::{Head, HeadConfig, HeadOptions};
pub use resnet::{ResNet, ResNetConfig};

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::device::MemoryBudget;
use crate::mixed_precision::Precision;

/// The architectures a user can name.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    ResNet18,
    ResNet34,
    ResNet50,
    ResNet101,
    ResNet152,
    #[serde(rename = "efficientnet_lite0")]
    EfficientNetLite0,
    /// A cut-down ResNet for tests and quick experiments.
    Custom(ResNetConfig),
}

impl Arch {
    /// The ResNet's configuration, or `None` for EfficientNet.
    pub fn resnet(&self) -> Option<ResNetConfig> {
        match self {
            Arch::ResNet18 => Some(ResNetConfig::resnet18()),
            Arch::ResNet34 => Some(ResNetConfig::resnet34()),
            Arch::ResNet50 => Some(ResNetConfig::resnet50()),
            Arch::ResNet101 => Some(ResNetConfig::resnet101()),
            Arch::ResNet152 => Some(ResNetConfig::resnet152()),
            Arch::EfficientNetLite0 => None,
            Arch::Custom(c) => Some(c.clone()),
        }
    }
    pub fn init_body(&self, device: &Device) -> Body {
        match self.resnet() {
            Some(c) => Body::ResNet(c.init(device)),
            None => Body::EfficientNet(EfficientNet::lite0(device)),
        }
    }
    /// Channels of the body's last feature map.
    pub fn num_features(&self) -> usize {
        match self.resnet() {
            Some(c) => c.num_features(),
            None => efficientnet::NUM_FEATURES,
        }
    }
    /// Bytes one training pass (forward kept for backward, then backward) holds per image at
    /// `size` px, on burn's CPU backend: activations grow with the pixel count. Measured with
    /// `cargo bench --bench train -- memory` (peak heap of a step at two batch sizes), rounded
    /// up.
    pub fn train_bytes_per_image(&self, size: usize) -> u64 {
        let per_px: u64 = match self {
            Arch::ResNet18 => TRAIN_BYTES_PER_PX_RESNET18,
            Arch::ResNet34 => TRAIN_BYTES_PER_PX_RESNET34,
            Arch::ResNet50 => TRAIN_BYTES_PER_PX_RESNET50,
            Arch::ResNet101 => TRAIN_BYTES_PER_PX_RESNET101,
            Arch::ResNet152 => TRAIN_BYTES_PER_PX_RESNET152,
            Arch::EfficientNetLite0 => TRAIN_BYTES_PER_PX_EFFNET,
            // Activations scale with the stem's width (ResNet-18: 64); a bottleneck's with its
            // fourfold outputs and extra convolution (ResNet-50 against ResNet-34).
            Arch::Custom(c) => {
                let basic = (TRAIN_BYTES_PER_PX_RESNET18 * c.widths[0] as u64).div_ceil(64);
                if c.bottleneck { basic * TRAIN_BYTES_PER_PX_RESNET50.div_ceil(TRAIN_BYTES_PER_PX_RESNET34) } else { basic }
            }
        };
        per_px * (size * size) as u64
    }

    /// A lower bound on the body's parameter count, computed without building it (saturating,
    /// so absurd declared sizes stay comparable): what a model file must at least hold.
    pub fn min_body_params(&self) -> u64 {
        match self {
            Arch::ResNet18 => 11_000_000,
            Arch::ResNet34 => 21_000_000,
            Arch::ResNet50 => 23_000_000,
            Arch::ResNet101 => 42_000_000,
            Arch::ResNet152 => 58_000_000,
            Arch::EfficientNetLite0 => 3_000_000,
            // Each block's 3×3 convolution alone: widths[i]² × 9 weights.
            Arch::Custom(c) => c.layers.iter().zip(c.widths).fold(0u64, |sum, (&l, w)| sum.saturating_add((l as u64).saturating_mul((w as u64).saturating_pow(2)).saturating_mul(9))),
        }
    }

    /// Bytes held whatever the batch: weights, their gradients and Adam's two moments (f32).
    pub fn train_fixed_bytes(&self) -> u64 {
        let params: u64 = match self {
            Arch::ResNet18 => 11_700_000,
            Arch::ResNet34 => 21_800_000,
            Arch::ResNet50 => 25_600_000,
            Arch::ResNet101 => 44_600_000,
            Arch::ResNet152 => 60_300_000,
            Arch::EfficientNetLite0 => 4_700_000,
            Arch::Custom(c) => (c.widths.iter().map(|&w| 9 * w * w * 2).sum::<usize>() + 1_000_000) as u64,
        };
        params * 4 * 4
    }

    /// Images a training pass can hold at `size` px within `budget` (gradients are accumulated
    /// over passes, so the optimiser still sees the whole batch).
    pub fn micro_batch(&self, budget: &MemoryBudget, size: usize) -> usize {
        let free = budget.bytes.saturating_sub(self.train_fixed_bytes());
        (free / self.train_bytes_per_image(size).max(1)) as usize
    }

    pub fn name(&self) -> String {
        match self {
            Arch::ResNet18 => "resnet18".into(),
            Arch::ResNet34 => "resnet34".into(),
            Arch::ResNet50 => "resnet50".into(),
            Arch::ResNet101 => "resnet101".into(),
            Arch::ResNet152 => "resnet152".into(),
            Arch::EfficientNetLite0 => "efficientnet_lite0".into(),
            Arch::Custom(c) => format!("resnet(layers={:?}, widths={:?}{})", c.layers, c.widths, if c.bottleneck { ", bottleneck" } else { "" }),
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "resnet18" => Ok(Arch::ResNet18),
            "resnet34" => Ok(Arch::ResNet34),
            "resnet50" => Ok(Arch::ResNet50),
            "resnet101" => Ok(Arch::ResNet101),
            "resnet152" => Ok(Arch::ResNet152),
            "efficientnet_lite0" => Ok(Arch::EfficientNetLite0),
            "tiny" => Ok(Arch::Custom(ResNetConfig::tiny())),
            _ => Err(format!("unknown architecture {s:?}: use efficientnet_lite0, resnet18, resnet34, resnet50, resnet101, resnet152 or tiny")),
        }
    }
}

// Per-pixel training bytes (see `Arch::train_bytes_per_image`): measured peaks with a margin;
// EfficientNet-Lite0's keeps a larger margin on purpose (docs/BENCHMARKS.md, "Training memory").
const TRAIN_BYTES_PER_PX_RESNET18: u64 = 640;
const TRAIN_BYTES_PER_PX_RESNET34: u64 = 960;
const TRAIN_BYTES_PER_PX_RESNET50: u64 = 2600;
const TRAIN_BYTES_PER_PX_RESNET101: u64 = 3900;
const TRAIN_BYTES_PER_PX_RESNET152: u64 = 5500;
const TRAIN_BYTES_PER_PX_EFFNET: u64 = 1400;

/// The feature extractor: everything before the pooling and classifier.
#[derive(Module, Debug)]
pub enum Body {
    ResNet(ResNet),
    EfficientNet(EfficientNet),
}

impl Body {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with(x, Precision::F32)
    }
    pub fn forward_with(&self, x: Tensor<4>, p: Precision) -> Tensor<4> {
        match self {
            Body::ResNet(m) => m.forward_with(x, p),
            Body::EfficientNet(m) => m.forward_with(x, p),
        }
    }
}

/// A pretrained body as published, with its original ImageNet classifier when the file had
/// one (average pool → `fc`), which [`Pretrained::imagenet_logits`] runs.
#[derive(Module, Debug)]
pub struct Pretrained {
    pub body: Body,
    pub fc: Option<Linear>,
}

impl Pretrained {
    pub fn init(arch: &Arch, imagenet_classes: Option<usize>, device: &Device) -> Self {
        Self {
            body: arch.init_body(device),
            fc: imagenet_classes.map(|n| LinearConfig::new(arch.num_features(), n).init(device)),
        }
    }
    /// The original network's logits, or `None` when the file had no classifier.
    pub fn imagenet_logits(&self, images: Tensor<4>) -> Option<Tensor<2>> {
        let fc = self.fc.as_ref()?;
        let x = self.body.forward(images);
        let [n, c, h, w] = x.dims();
        Some(fc.forward(x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])))
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassifierConfig {
    pub arch: Arch,
    pub num_classes: usize,
    /// vision_learner's head options (their keys sit beside `arch` in a header).
    #[serde(flatten)]
    pub head: HeadOptions,
}

impl ClassifierConfig {
    pub fn new(arch: Arch, num_classes: usize) -> Self {
        Self { arch, num_classes, head: HeadOptions::default() }
    }
    /// A lower bound on the whole model's parameter count (body, then the head's two linear
    /// layers), computed without building it.
    pub fn min_params(&self) -> u64 {
        let (f, h, n) = (self.head_config().pooled() as u64, self.head.hidden as u64, self.num_classes as u64);
        self.arch.min_body_params().saturating_add(f.saturating_mul(h)).saturating_add(h.saturating_mul(n))
    }
    pub fn with_hidden(mut self, hidden: usize) -> Self {
        self.head.hidden = hidden;
        self
    }
    pub fn with_head(mut self, head: HeadOptions) -> Self {
        self.head = head;
        self
    }
    pub fn head_config(&self) -> HeadConfig {
        HeadConfig::new(self.arch.num_features(), self.num_classes, self.head.clone())
    }
    pub fn init(&self, device: &Device) -> Classifier {
        Classifier { body: self.arch.init_body(device), head: self.init_head(device) }
    }
    pub fn init_head(&self, device: &Device) -> Head {
        self.head_config().init(device)
    }
}

#[derive(Module, Debug)]
pub struct Classifier {
    pub body: Body,
    pub head: Head,
}

impl Classifier {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_with(images, Precision::F32)
    }
    /// The logits (always f32) with the body and head computing in `p`.
    pub fn forward_with(&self, images: Tensor<4>, p: Precision) -> Tensor<2> {
        self.head.forward_with(self.body.forward_with(p.cast(images), p), p)
    }
}

/// The number of parameter groups (fastai's splitter).
pub const NUM_GROUPS: usize = 3;

/// The parameter group a parameter belongs to, from its module path with the body's variant
/// (e.g. `body.ResNet.layer3.0.conv1`, `body.EfficientNet.blocks.7.bn1`).
pub fn param_group(path: &[String]) -> usize {
    let at = |i: usize| path.get(i).map(String::as_str);
    match (at(0), at(1), at(2)) {
        (Some("head"), ..) => 2,
        (Some("body"), Some("ResNet"), Some("layer3" | "layer4")) => 1,
        (Some("body"), Some("EfficientNet"), Some("conv_head" | "bn1")) => 1,
        (Some("body"), Some("EfficientNet"), Some("blocks")) => {
            let block: usize = at(3).and_then(|b| b.parse().ok()).unwrap_or(0);
            usize::from(block >= efficientnet::FIRST_LATE_BLOCK)
        }
        _ => 0,
    }
}

/// Where a module mapper is in the model tree: the field names and container types on the
/// way down, which decide a parameter's group and whether it belongs to a BatchNorm.
#[derive(Default)]
pub struct ParamPath {
    names: Vec<String>,
    containers: Vec<String>,
}

impl ParamPath {
    pub fn enter(&mut self, name: &str, container_type: &str) {
        self.names.push(name.to_string());
        self.containers.push(container_type.to_string());
    }
    pub fn exit(&mut self) {
        self.names.pop();
        self.containers.pop();
    }

    /// The parameter's own field name (`weight`, `bias`, `gamma`, `running_mean`, …).
    pub fn name(&self) -> &str {
        self.names.last().map(String::as_str).unwrap_or("")
    }
    pub fn group(&self) -> usize {
        param_group(&self.names)
    }
    pub fn in_batchnorm(&self) -> bool {
        self.containers.last().is_some_and(|c| c == "Struct:BatchNorm")
    }
}

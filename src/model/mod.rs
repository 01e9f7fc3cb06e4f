//! Model: a ResNet body and fastai's head (vision_learner), with fastai's three parameter
//! groups: [stem + layer1 + layer2], [layer3 + layer4], [head].

pub mod head;
pub mod resnet;

pub use head::{Head, HeadConfig};
pub use resnet::{ResNet, ResNetConfig};

use burn::module::Module;
use burn::tensor::{Device, Tensor};

/// The architectures a user can name.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    ResNet18,
    ResNet34,
    /// A cut-down ResNet for tests and quick experiments.
    Custom(ResNetConfig),
}

impl Arch {
    pub fn body(&self) -> ResNetConfig {
        match self {
            Arch::ResNet18 => ResNetConfig::resnet18(),
            Arch::ResNet34 => ResNetConfig::resnet34(),
            Arch::Custom(c) => c.clone(),
        }
    }
    pub fn name(&self) -> String {
        match self {
            Arch::ResNet18 => "resnet18".into(),
            Arch::ResNet34 => "resnet34".into(),
            Arch::Custom(c) => format!("resnet(layers={:?}, widths={:?})", c.layers, c.widths),
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "resnet18" => Ok(Arch::ResNet18),
            "resnet34" => Ok(Arch::ResNet34),
            "tiny" => Ok(Arch::Custom(ResNetConfig::tiny())),
            other => Err(format!("unknown architecture {other:?}: use resnet18, resnet34 or tiny")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassifierConfig {
    pub arch: Arch,
    pub num_classes: usize,
    /// Width of the head's hidden layer (512 in fastai).
    pub hidden: usize,
}

impl ClassifierConfig {
    pub fn new(arch: Arch, num_classes: usize) -> Self {
        Self { arch, num_classes, hidden: 512 }
    }
    pub fn with_hidden(mut self, hidden: usize) -> Self {
        self.hidden = hidden;
        self
    }
    pub fn init(&self, device: &Device) -> Classifier {
        let body = self.arch.body();
        Classifier {
            head: HeadConfig::new(body.num_features(), self.num_classes).with_hidden(self.hidden).init(device),
            body: body.init(device),
        }
    }
}

#[derive(Module, Debug)]
pub struct Classifier {
    pub body: ResNet,
    pub head: Head,
}

impl Classifier {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.body.forward(images))
    }
}

/// The number of parameter groups (fastai's splitter for ResNets).
pub const NUM_GROUPS: usize = 3;

/// The parameter group a parameter belongs to, from its module path (e.g. `body.layer3.0.conv1`).
pub fn param_group(path: &[String]) -> usize {
    match (path.first().map(String::as_str), path.get(1).map(String::as_str)) {
        (Some("head"), _) => 2,
        (Some("body"), Some("layer3" | "layer4")) => 1,
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

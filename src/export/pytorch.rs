//! PyTorch / fastai export: the whole model's `state_dict` as `.safetensors`, under the key
//! names and shapes of the model fastai's `vision_learner` builds for the same architecture,
//! so `learn.model.load_state_dict(load_file(path))` loads it strictly and training goes on in
//! a notebook.
//!
//! Layout: `0.` is the body — torchvision's ResNet children (`0.0` conv1, `0.1` bn1,
//! `0.4`–`0.7` layer1–4) or timm's `tf_efficientnet_lite0` inside fastai's `TimmBody`
//! (`0.model.conv_stem`, `0.model.blocks.{stage}.{i}`, …); `1.` is `create_head`'s Sequential
//! (`1.2` BatchNorm1d, `1.4` Linear, `1.6` BatchNorm1d, `1.8` Linear). Linear weights are
//! written `[out, in]` as PyTorch stores them; every BatchNorm gets a `num_batches_tracked`
//! (a strict load asks for it). The file's metadata carries the classes and the
//! `vision_learner` arguments that rebuild the same model.

use std::collections::BTreeMap;

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::tensor::Tensor;
use safetensors::{Dtype, tensor::TensorView};

use super::{ExportError, cpu_classifier, f32_values};
use super::ModelHeader;
use crate::model::Classifier;
use crate::model::efficientnet::{EfficientNet, stage_of};
use crate::model::head::HeadLayer;
use crate::model::resnet::ResNet;
use crate::model::{Arch, Body, Head};

/// One entry of the state dict: its shape and little-endian bytes.
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// What fastai calls the architecture, for `vision_learner(dls, ARCH, …)`.
pub fn fastai_arch(arch: &Arch) -> Result<&'static str, ExportError> {
    match arch {
        Arch::ResNet18 => Ok("resnet18"),
        Arch::ResNet34 => Ok("resnet34"),
        Arch::ResNet50 => Ok("resnet50"),
        Arch::ResNet101 => Ok("resnet101"),
        Arch::ResNet152 => Ok("resnet152"),
        Arch::EfficientNetLite0 => Ok("tf_efficientnet_lite0"),
        Arch::Custom(_) => Err(ExportError::Unsupported(format!(
            "{} is Kiln's own cut-down ResNet, which fastai has no model for: export it as ONNX instead, or train resnet18/34/50/101/152 or efficientnet_lite0 to continue in fastai",
            arch.name()
        ))),
    }
}

/// The model as a fastai-layout `.safetensors` state dict.
pub async fn to_safetensors(header: &ModelHeader, model: &Classifier) -> Result<Vec<u8>, ExportError> {
    let arch = fastai_arch(&header.config.model.arch)?;
    let model = cpu_classifier(header, model).await?;
    let mut sd = StateDict::default();
    match &model.body {
        Body::ResNet(m) => sd.resnet(m, "0."),
        Body::EfficientNet(m) => sd.efficientnet(m, "0.model.")?,
    }
    sd.head(&model.head, "1.");

    let size = header.config.aug.size;
    let mut metadata = super::metadata(header);
    metadata.extend([
        ("format", "pt".into()),
        (
            "fastai",
            format!(
                "vision_learner(dls, '{arch}', n_out={}, pretrained=False, normalize=True, {}); images: Resize({}) then size {size}, imagenet_stats",
                header.classes.len(),
                header.config.fastai_args(),
                header.presize
            ),
        ),
    ]);
    let views: Vec<(String, TensorView<'_>)> = sd
        .0
        .iter()
        .map(|(k, e)| TensorView::new(e.dtype, e.shape.clone(), &e.bytes).map(|v| (k.clone(), v)))
        .collect::<Result<_, _>>()
        .map_err(|e| ExportError::Corrupt(format!("building the state dict: {e}")))?;
    let info = Some(metadata.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
    safetensors::serialize(views, info).map_err(|e| ExportError::Corrupt(format!("writing safetensors: {e}")))
}

fn f32_bytes<const D: usize>(t: Tensor<D>) -> Vec<u8> {
    f32_values(t).iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[derive(Default)]
struct StateDict(BTreeMap<String, Entry>);

impl StateDict {
    fn put<const D: usize>(&mut self, key: String, t: Tensor<D>) {
        let shape = t.dims().to_vec();
        self.0.insert(key, Entry { dtype: Dtype::F32, shape, bytes: f32_bytes(t) });
    }

    fn conv(&mut self, c: &Conv2d, key: &str) {
        self.put(format!("{key}.weight"), c.weight.val());
        if let Some(b) = &c.bias {
            self.put(format!("{key}.bias"), b.val());
        }
    }

    fn batchnorm(&mut self, bn: &BatchNorm, key: &str) {
        self.put(format!("{key}.weight"), bn.gamma.val());
        self.put(format!("{key}.bias"), bn.beta.val());
        self.put(format!("{key}.running_mean"), bn.running_mean.value());
        self.put(format!("{key}.running_var"), bn.running_var.value());
        // Kiln does not count BatchNorm updates; PyTorch uses the count only when momentum is None.
        self.0.insert(format!("{key}.num_batches_tracked"), Entry { dtype: Dtype::I64, shape: vec![], bytes: 0i64.to_le_bytes().to_vec() });
    }

    fn linear(&mut self, l: &Linear, key: &str) {
        self.put(format!("{key}.weight"), l.weight.val().transpose());
        if let Some(b) = &l.bias {
            self.put(format!("{key}.bias"), b.val());
        }
    }

    /// torchvision's ResNet as fastai's `create_body` keeps it: an nn.Sequential of its children.
    fn resnet(&mut self, m: &ResNet, p: &str) {
        self.conv(&m.conv1, &format!("{p}0"));
        self.batchnorm(&m.bn1, &format!("{p}1"));
        for (i, layer) in [&m.layer1, &m.layer2, &m.layer3, &m.layer4].into_iter().enumerate() {
            for (j, b) in layer.iter().enumerate() {
                let k = format!("{p}{}.{j}", 4 + i);
                self.conv(&b.conv1, &format!("{k}.conv1"));
                self.batchnorm(&b.bn1, &format!("{k}.bn1"));
                self.conv(&b.conv2, &format!("{k}.conv2"));
                self.batchnorm(&b.bn2, &format!("{k}.bn2"));
                if let (Some(c), Some(bn)) = (&b.conv3, &b.bn3) {
                    self.conv(c, &format!("{k}.conv3"));
                    self.batchnorm(bn, &format!("{k}.bn3"));
                }
                if let Some(d) = &b.downsample {
                    self.conv(&d.conv, &format!("{k}.downsample.0"));
                    self.batchnorm(&d.bn, &format!("{k}.downsample.1"));
                }
            }
        }
    }

    /// timm's `tf_efficientnet_lite0`: the first stage is a depthwise-separable block
    /// (conv_dw, bn1, conv_pw, bn2), the rest inverted residuals (conv_pw, bn1, conv_dw, bn2,
    /// conv_pwl, bn3); Kiln's lukemelas names map onto them.
    fn efficientnet(&mut self, m: &EfficientNet, p: &str) -> Result<(), ExportError> {
        self.conv(&m.conv_stem, &format!("{p}conv_stem"));
        self.batchnorm(&m.bn0, &format!("{p}bn1"));
        for (i, b) in m.blocks.iter().enumerate() {
            let (stage, j) = stage_of(i).ok_or_else(|| ExportError::Unsupported(format!("EfficientNet-Lite0 has no block {i}")))?;
            let k = format!("{p}blocks.{stage}.{j}");
            match (&b.expand_conv, &b.bn0) {
                (Some(c), Some(bn)) => {
                    self.conv(c, &format!("{k}.conv_pw"));
                    self.batchnorm(bn, &format!("{k}.bn1"));
                    self.conv(&b.depthwise_conv, &format!("{k}.conv_dw"));
                    self.batchnorm(&b.bn1, &format!("{k}.bn2"));
                    self.conv(&b.project_conv, &format!("{k}.conv_pwl"));
                    self.batchnorm(&b.bn2, &format!("{k}.bn3"));
                }
                _ => {
                    self.conv(&b.depthwise_conv, &format!("{k}.conv_dw"));
                    self.batchnorm(&b.bn1, &format!("{k}.bn1"));
                    self.conv(&b.project_conv, &format!("{k}.conv_pw"));
                    self.batchnorm(&b.bn2, &format!("{k}.bn2"));
                }
            }
        }
        self.conv(&m.conv_head, &format!("{p}conv_head"));
        self.batchnorm(&m.bn1, &format!("{p}bn2"));
        Ok(())
    }

    /// create_head's Sequential, numbered as fastai numbers it: pool, flatten, then per
    /// LinBnDrop [BN] [dropout, when p > 0] linear [ReLU], then [BN] for bn_final. With the
    /// defaults: 2 BN, 4 linear, 6 BN, 8 linear.
    fn head(&mut self, h: &Head, p: &str) {
        // fastai leaves out a dropout of p = 0; pool and flatten are 0 and 1.
        let kept = h.layers().into_iter().filter(|(_, l)| !matches!(l, HeadLayer::Dropout(d) if d.prob == 0.0));
        for (i, (_, layer)) in kept.enumerate() {
            let key = format!("{p}{}", i + 2);
            match layer {
                HeadLayer::BatchNorm(bn) => self.batchnorm(bn, &key),
                HeadLayer::Linear(l) => self.linear(l, &key),
                HeadLayer::Dropout(_) | HeadLayer::Relu => {}
            }
        }
    }
}

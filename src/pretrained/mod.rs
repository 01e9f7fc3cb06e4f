//! Pretrained weights (fastai's `pretrained=True`): read a checkpoint a user brings — PyTorch
//! zip or legacy `.pth`, or `.safetensors` — from bytes (the browser has no file paths), map
//! its names onto Kiln's body, and apply it with burn-store's applier and PyTorch adapter
//! (Linear transposes, BatchNorm weight/bias → gamma/beta). torchvision ResNet-18/34/50/101/152 and
//! lukemelas-style EfficientNet-Lite0 state dicts are recognised from their keys.

pub mod pickle;
pub mod sniff;
mod torch;

use std::collections::HashMap;

use burn::store::{ApplyError, ModuleSnapshot, PyTorchToBurnAdapter, burn_pack};
use burn::tensor::{Bytes, DType, Device};

use crate::model::{Arch, Pretrained};

/// One tensor of a checkpoint, converted to f32 in row-major order.
#[derive(Clone, Debug)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// A checkpoint's tensors under the names its framework gave them.
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    pub tensors: Vec<NamedTensor>,
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{0}")]
    Format(String),
    #[error("not a weights file Kiln can read: expected a PyTorch checkpoint (.pth/.pt), a .safetensors file, or a Kiln backbone (.kiln)")]
    Unknown,
    #[error("cannot tell the architecture from the checkpoint's keys (first keys: {0}); Kiln imports torchvision ResNet-18/34/50/101/152 and EfficientNet-Lite0 state dicts")]
    UnknownArch(String),
    #[error("the checkpoint is a {found} but {expected} was asked for")]
    ArchMismatch { expected: String, found: String },
    #[error("the checkpoint does not fit {arch}:\n{}", .problems.join("\n"))]
    Mismatch { arch: String, problems: Vec<String> },
}

impl Checkpoint {
    /// Reads any supported container, telling them apart by their first bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WeightsError> {
        let mut ckpt = if sniff::is_zip(bytes) {
            torch::read_zip(bytes)?
        } else if sniff::is_legacy(bytes) {
            torch::read_legacy(bytes)?
        } else if sniff::is_safetensors(bytes) {
            read_safetensors(bytes)?
        } else {
            return Err(WeightsError::Unknown);
        };
        // DataParallel saves prefix every key with `module.`.
        if !ckpt.tensors.is_empty() && ckpt.tensors.iter().all(|t| t.name.starts_with("module.")) {
            for t in &mut ckpt.tensors {
                t.name = t.name["module.".len()..].to_string();
            }
        }
        Ok(ckpt)
    }

    pub fn get(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The architecture whose published state dict has these keys.
    pub fn infer_arch(&self) -> Result<Arch, WeightsError> {
        let has = |k: &str| self.get(k).is_some();
        if has("_conv_stem.weight") && has("_blocks.15._project_conv.weight") && !has("_blocks.16._project_conv.weight") {
            return Ok(Arch::EfficientNetLite0);
        }
        if has("conv1.weight") && has("layer1.0.conv2.weight") {
            // Blocks in layer3 tell the depths apart: 2/6 basic (18/34), 6/23/36 bottleneck.
            let layer3 = (0..).take_while(|b| has(&format!("layer3.{b}.conv1.weight"))).count();
            let arch = match (has("layer1.0.conv3.weight"), layer3) {
                (false, 2) => Some(Arch::ResNet18),
                (false, 6) => Some(Arch::ResNet34),
                (true, 6) => Some(Arch::ResNet50),
                (true, 23) => Some(Arch::ResNet101),
                (true, 36) => Some(Arch::ResNet152),
                _ => None,
            };
            if let Some(arch) = arch {
                return Ok(arch);
            }
        }
        if has("1.8.weight") && (has("0.0.weight") || has("0.model.conv_stem.weight")) {
            return Err(WeightsError::Format(
                "this is a whole fastai model (body under `0.`, head under `1.`), such as Kiln's fastai/PyTorch export: Kiln imports ImageNet backbones as weights; to use a model trained in Kiln again, load the .kiln file it was exported from".into(),
            ));
        }
        let first: Vec<&str> = self.tensors.iter().take(4).map(|t| t.name.as_str()).collect();
        Err(WeightsError::UnknownArch(first.join(", ")))
    }

    /// The size of the checkpoint's own classifier (1000 for ImageNet), if it has one.
    pub fn classifier_size(&self, arch: &Arch) -> Option<usize> {
        let key = if matches!(arch, Arch::EfficientNetLite0) { "_fc.weight" } else { "fc.weight" };
        self.get(key).and_then(|t| t.shape.first().copied())
    }
}

fn read_safetensors(bytes: &[u8]) -> Result<Checkpoint, WeightsError> {
    use safetensors::Dtype;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Format(format!("safetensors: {e}")))?;
    let mut tensors = Vec::new();
    let mut names: Vec<&str> = st.names();
    names.sort();
    for name in names {
        let view = st.tensor(name).map_err(|e| WeightsError::Format(format!("{name}: {e}")))?;
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
            Dtype::F64 => data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
            Dtype::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes(b.try_into().unwrap()).to_f32()).collect(),
            Dtype::BF16 => data.chunks_exact(2).map(|b| half::bf16::from_le_bytes(b.try_into().unwrap()).to_f32()).collect(),
            Dtype::I64 => data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
            Dtype::I32 => data.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
            other => return Err(WeightsError::Format(format!("{name}: unsupported dtype {other:?}"))),
        };
        tensors.push(NamedTensor { name: name.to_string(), shape: view.shape().to_vec(), values });
    }
    Ok(Checkpoint { tensors })
}

/// A checkpoint key → the path of the same tensor in [`Pretrained`] (enum variant left out),
/// or `None` for bookkeeping entries that carry no weights.
fn kiln_path(arch: &Arch, key: &str) -> Option<String> {
    if key.ends_with("num_batches_tracked") {
        return None;
    }
    Some(match arch {
        Arch::EfficientNetLite0 => {
            let path: Vec<&str> = key.split('.').map(|s| s.trim_start_matches('_')).collect();
            let path = path.join(".");
            if path.starts_with("fc.") { path } else { format!("body.{path}") }
        }
        _ => {
            if key.starts_with("fc.") {
                key.to_string()
            } else {
                format!("body.{}", key.replace(".downsample.0.", ".downsample.conv.").replace(".downsample.1.", ".downsample.bn."))
            }
        }
    })
}

/// A Kiln parameter path → the checkpoint key it is read from, for error messages.
fn checkpoint_key(arch: &Arch, path: &str) -> String {
    let path = path.strip_prefix("body.").unwrap_or(path);
    let path = path.replace(".gamma", ".weight").replace(".beta", ".bias");
    match arch {
        Arch::EfficientNetLite0 => path
            .split('.')
            .map(|s| if s.parse::<usize>().is_ok() || matches!(s, "weight" | "bias" | "running_mean" | "running_var") { s.to_string() } else { format!("_{s}") })
            .collect::<Vec<_>>()
            .join("."),
        _ => path.replace(".downsample.conv.", ".downsample.0.").replace(".downsample.bn.", ".downsample.1."),
    }
}

/// Builds `arch`'s body (and its original classifier, when the checkpoint has one) from a
/// checkpoint. Every tensor must fit: a missing, extra or mis-shaped key is an error naming it.
pub fn load_checkpoint(ckpt: Checkpoint, arch: &Arch, device: &Device) -> Result<Pretrained, WeightsError> {
    let found = ckpt.infer_arch()?;
    if found != *arch {
        return Err(WeightsError::ArchMismatch { expected: arch.name(), found: found.name() });
    }
    let mut model = Pretrained::init(arch, ckpt.classifier_size(arch), device);
    let expected: HashMap<String, Vec<usize>> =
        model.collect(None, None, true).into_iter().map(|t| (t.name.clone(), t.shape.to_vec())).collect();
    let mut original = HashMap::new();
    // Consumes the checkpoint, so a large one is held once, not twice.
    let tensors: Vec<burn_pack::Tensor> = ckpt
        .tensors
        .into_iter()
        .filter_map(|t| {
            let path = kiln_path(arch, &t.name)?;
            original.insert(path.clone(), (t.name, t.shape.clone()));
            Some(burn_pack::Tensor::new(path, DType::F32, t.shape, None, Bytes::from_elems(t.values)))
        })
        .collect();
    let result = model.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    let mut problems = Vec::new();
    for e in &result.errors {
        problems.push(match e {
            ApplyError::ShapeMismatch { path, expected, found } => {
                let key = original.get(path).map(|o| o.0.clone()).unwrap_or_else(|| checkpoint_key(arch, path));
                format!("  {key}: the checkpoint has shape {:?}, the model expects {:?}", found.to_vec(), expected.to_vec())
            }
            other => format!("  {other}"),
        });
    }
    for (path, _) in &result.missing {
        let shape = expected.get(path).cloned().unwrap_or_default();
        problems.push(format!("  {}: missing from the checkpoint (the model expects shape {shape:?})", checkpoint_key(arch, path)));
    }
    for path in &result.unused {
        let (key, shape) = original.get(path).cloned().unwrap_or_else(|| (path.clone(), Vec::new()));
        problems.push(format!("  {key}: not in {} (the checkpoint has shape {shape:?})", arch.name()));
    }
    if !problems.is_empty() {
        problems.sort();
        let n = problems.len();
        if n > 12 {
            problems.truncate(12);
            problems.push(format!("  … and {} more", n - 12));
        }
        return Err(WeightsError::Mismatch { arch: arch.name(), problems });
    }
    Ok(model)
}

/// The original network's top-`k` classes (index, probability) for one photo, preprocessed as
/// at ImageNet evaluation: centre square crop resized to `size`, ImageNet normalisation.
pub async fn imagenet_top_k(model: &Pretrained, bytes: &[u8], size: u32, k: usize, device: &Device) -> Result<Vec<(usize, f32)>, String> {
    use crate::data::{Crop, DataConfig, decode_rgb8, presize};
    let img = decode_rgb8(bytes, DataConfig::default().max_pixels).map_err(|e| e.to_string())?;
    let px = presize(&img, size, Crop::Centre).into_raw();
    let x = crate::augment::normalize(crate::augment::to_tensor(&[px], size as usize, device));
    let logits = model.imagenet_logits(x).ok_or("these weights have no ImageNet classifier")?;
    let probs = burn::tensor::activation::softmax(logits, 1).into_data_async().await.map_err(|e| format!("{e:?}"))?;
    let probs = probs.convert::<f32>().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
    let mut ranked: Vec<(usize, f32)> = probs.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(k);
    Ok(ranked)
}

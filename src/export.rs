//! Kiln's files (`.kiln`), read by the CLI and the page alike: a trained model (everything
//! needed to predict) or a pretrained backbone. Layout: `KILN` magic, format version (u32 LE),
//! JSON header length (u32 LE), a CRC-32 of everything after it (u32 LE), the JSON header (its
//! `kind`; for a model: classes, architecture, input sizes, normalisation), then burn's
//! burnpack record of the weights and BatchNorm statistics. The checksum makes a flipped bit
//! an error instead of silently different predictions.
//!
//! A model also leaves Kiln as ONNX ([`onnx`], for apps and runtimes) or as a PyTorch state
//! dict in fastai's layout ([`pytorch`], to keep training in a notebook).

pub mod onnx;
mod onnx_proto;
pub mod pytorch;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Shape, Tensor, TensorData};

use crate::augment::{IMAGENET_MEAN, IMAGENET_STD};
use crate::learner::{Learner, LearnerConfig};
use crate::model::{Arch, Classifier, Pretrained};

const MAGIC: &[u8; 4] = b"KILN";
/// 2: the body became an enum (ResNet or EfficientNet) and headers gained `kind`.
/// 3: a CRC-32 of the header and weights. Version 2 files (no checksum) are still read.
const VERSION: u32 = 3;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FileHeader {
    Model(ModelHeader),
    Backbone(BackboneHeader),
}

/// A pretrained body (and its original classifier, if any) converted from a checkpoint.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BackboneHeader {
    pub arch: Arch,
    /// Outputs of the original classifier (1000 for ImageNet), when the file keeps it.
    pub imagenet_classes: Option<usize>,
    /// What it was converted from (a file name), for the record.
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelHeader {
    pub classes: Vec<String>,
    pub config: LearnerConfig,
    /// Side of the CPU presize crop.
    pub presize: u32,
    /// Normalisation applied to inputs, per RGB channel.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("not a Kiln model file (it does not start with KILN); export one with `kiln train … -o model.kiln`")]
    NotKiln,
    #[error("this is {0}, not a Kiln model: Kiln reads the .kiln file it saved (Export model), and only exports ONNX and PyTorch files for use elsewhere")]
    Foreign(&'static str),
    #[error("{0}")]
    Unsupported(String),
    #[error("this file has format version {0}, but this Kiln reads versions 2 and {VERSION}: {hint}", hint = version_hint(*.0))]
    Version(u32),
    #[error("this .kiln file holds a {found}, not a {expected}: {hint}")]
    Kind { expected: &'static str, found: &'static str, hint: &'static str },
    #[error("the model file is truncated or corrupt: {0}")]
    Corrupt(String),
    #[error("the model holds NaN or infinite values (its training diverged), so it was not saved: train it again with a lower learning rate")]
    NotFinite,
    #[error("the model file is truncated or damaged: its checksum does not match its contents (cut short, or a byte changed on disk or in transfer); export or download it again")]
    Checksum,
}

fn version_hint(version: u32) -> &'static str {
    if version < 2 {
        "it was written by an earlier Kiln; train the model again, or import the weights again with `kiln weights import`"
    } else {
        "update Kiln to read it"
    }
}

/// Serialise the learner's model. Tensors are read with async reads (a blocking read panics on
/// WebGPU) into a CPU copy of the model, which burn then packs.
pub async fn to_bytes(learner: &Learner) -> Result<Vec<u8>, ExportError> {
    let header = ModelHeader {
        classes: learner.classes.clone(),
        config: learner.config.clone(),
        presize: learner.presize,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
    };
    pack(&FileHeader::Model(header), cpu_classifier(learner).await?)
}

/// The files a trained model leaves Kiln as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Kiln's own `.kiln`, which the page and the CLI read back.
    Kiln,
    /// An ONNX inference graph ([`onnx`]).
    Onnx,
    /// fastai's `vision_learner` state dict as `.safetensors` ([`pytorch`]).
    PyTorch,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Kiln => "kiln",
            Format::Onnx => "onnx",
            Format::PyTorch => "safetensors",
        }
    }
}

/// The learner's model as a file in `format`.
pub async fn write(learner: &Learner, format: Format) -> Result<Vec<u8>, ExportError> {
    match format {
        Format::Kiln => to_bytes(learner).await,
        Format::Onnx => onnx::to_onnx(learner).await,
        Format::PyTorch => pytorch::to_safetensors(learner).await,
    }
}

/// What both foreign formats record about the model, as (key, value) metadata.
pub(crate) fn metadata(learner: &Learner) -> Vec<(&'static str, String)> {
    vec![
        ("classes", serde_json::to_string(&learner.classes).expect("strings serialise")),
        ("image_size", learner.config.aug.size.to_string()),
        ("presize", learner.presize.to_string()),
        ("architecture", learner.config.model.arch.name()),
        ("kiln_version", env!("CARGO_PKG_VERSION").into()),
    ]
}

/// A weight of a [`cpu_classifier`] model as f32 values, row-major.
pub(crate) fn f32_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    // `to_cpu` builds every tensor from f32 data, so the read cannot fail.
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

/// The learner's model in eval mode on the CPU backend, every weight finite and f32: what each
/// export format writes from.
pub(crate) async fn cpu_classifier(learner: &Learner) -> Result<Classifier, ExportError> {
    to_cpu(&learner.model.clone().valid(), |d| learner.config.model.init(d)).await
}

/// Serialise a pretrained backbone (see [`crate::pretrained`]).
pub async fn backbone_to_bytes(model: &Pretrained, header: BackboneHeader) -> Result<Vec<u8>, ExportError> {
    let cpu_model = to_cpu(model, |d| Pretrained::init(&header.arch, header.imagenet_classes, d)).await?;
    pack(&FileHeader::Backbone(header), cpu_model)
}

fn pack<M: Module>(header: &FileHeader, cpu_model: M) -> Result<Vec<u8>, ExportError> {
    let json = serde_json::to_vec(header).expect("header serialises");
    let weights = cpu_model.into_record().into_bytes().map_err(|e| ExportError::Corrupt(e.to_string()))?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&json);
    crc.update(&weights);
    let mut out = Vec::with_capacity(16 + json.len() + weights.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&weights);
    Ok(out)
}

pub fn read_header(bytes: &[u8]) -> Result<(FileHeader, &[u8]), ExportError> {
    if bytes.len() < 12 || &bytes[..4] != MAGIC {
        return Err(foreign_kind(bytes).map_or(ExportError::NotKiln, ExportError::Foreign));
    }
    let version = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
    let start = match version {
        2 => 12,
        VERSION => 16,
        _ => return Err(ExportError::Version(version)),
    };
    if bytes.len() < start {
        return Err(ExportError::Corrupt("the file ends inside its preamble".into()));
    }
    let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let json_end = start.checked_add(len).filter(|&e| e <= bytes.len()).ok_or_else(|| ExportError::Corrupt("header runs past the end".into()))?;
    if version == VERSION {
        let stored = u32::from_le_bytes(bytes[12..16].try_into().unwrap());
        if crc32fast::hash(&bytes[16..]) != stored {
            return Err(ExportError::Checksum);
        }
    }
    let header: FileHeader = serde_json::from_slice(&bytes[start..json_end]).map_err(|e| ExportError::Corrupt(e.to_string()))?;
    Ok((header, &bytes[json_end..]))
}

/// What a file that is not a `.kiln` is, when it is a model format users meet (ONNX, which
/// Kiln exports but does not run; PyTorch/safetensors weights, which go to weights import).
fn foreign_kind(bytes: &[u8]) -> Option<&'static str> {
    use prost::Message;
    if crate::pretrained::sniff::is_checkpoint(bytes) {
        return Some("a PyTorch or safetensors weights file (to start training from pretrained weights, import it as weights)");
    }
    // An ONNX model starts with its IR version (field 1) and parses as a ModelProto with a graph.
    let onnx = bytes.first() == Some(&0x08) && onnx_proto::ModelProto::decode(bytes).is_ok_and(|m| m.ir_version > 0 && m.graph.is_some());
    onnx.then_some("an ONNX model (Kiln does not run ONNX graphs from elsewhere)")
}

/// The header's sizes decide what gets allocated: refuse a model whose declared parameters
/// (f32, 4 bytes each) could not fit in the weights the file actually holds.
fn declared_fits(min_params: u64, weights: &[u8]) -> Result<(), ExportError> {
    if min_params.saturating_mul(4) > weights.len() as u64 {
        return Err(ExportError::Corrupt(format!(
            "its header declares a model of at least {min_params} parameters, more than the {} bytes of weights it holds",
            weights.len()
        )));
    }
    Ok(())
}

fn load_weights<M: Module>(model: M, weights: &[u8]) -> Result<M, ExportError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec())).map_err(|e| ExportError::Corrupt(e.to_string()))?;
    model.try_load_record(record).map_err(|e| ExportError::Corrupt(e.to_string()))
}

/// Rebuild a learner from a model file on `device`.
pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Learner, ExportError> {
    let (header, weights) = match read_header(bytes)? {
        (FileHeader::Model(h), weights) => (h, weights),
        (FileHeader::Backbone(_), _) => {
            return Err(ExportError::Kind {
                expected: "trained model",
                found: "pretrained backbone",
                hint: "train on it first (it is the starting point for training, not a classifier for your classes)",
            });
        }
    };
    if header.classes.len() != header.config.model.num_classes {
        return Err(ExportError::Corrupt("class list and model size disagree".into()));
    }
    declared_fits(header.config.model.min_params(), weights)?;
    // Built on the training (autodiff) device, as `Learner::new` does, so it can train on.
    let model = load_weights(header.config.model.init(&device.clone().autodiff()), weights)?;
    Ok(Learner::from_parts(model, device.clone(), header.classes, header.config, header.presize))
}

/// Read a backbone file on `device`.
pub fn backbone_from_bytes(bytes: &[u8], device: &Device) -> Result<(BackboneHeader, Pretrained), ExportError> {
    match read_header(bytes)? {
        (FileHeader::Backbone(h), weights) => {
            let classifier = (h.arch.num_features() as u64).saturating_mul(h.imagenet_classes.unwrap_or(0) as u64);
            declared_fits(h.arch.min_body_params().saturating_add(classifier), weights)?;
            let model = load_weights(Pretrained::init(&h.arch, h.imagenet_classes, device), weights)?;
            Ok((h, model))
        }
        (FileHeader::Model(_), _) => Err(ExportError::Kind {
            expected: "pretrained backbone",
            found: "trained model",
            hint: "load it with Import/`kiln predict` instead",
        }),
    }
}

/// Collects every float tensor (parameters and BatchNorm statistics) in visiting order.
#[derive(Default)]
struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

/// Writes collected values back in the same (derive-generated) order.
struct Fill {
    values: std::vec::IntoIter<TensorData>,
    device: Device,
}

impl ModuleMapper for Fill {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let shape: Shape = tensor.shape();
        let data = self.values.next().expect("same module structure");
        let t = Tensor::<1>::from_data(data, &self.device).reshape(shape);
        Param::from_mapped_value(id, t, mapper)
    }
}

/// A copy of `model` on the CPU backend, read with async reads; `fresh` builds the same
/// structure there.
async fn to_cpu<M: Module>(model: &M, fresh: impl FnOnce(&Device) -> M) -> Result<M, ExportError> {
    let mut collect = Collect::default();
    model.visit(&mut collect);
    let mut values = Vec::with_capacity(collect.0.len());
    for t in collect.0 {
        let data = t.into_data_async().await.map_err(|e| ExportError::Corrupt(format!("reading weights: {e:?}")))?;
        if data.iter::<f32>().any(|x| !x.is_finite()) {
            return Err(ExportError::NotFinite);
        }
        values.push(data.convert::<f32>());
    }
    let cpu = Device::flex();
    let mut fill = Fill { values: values.into_iter(), device: cpu.clone() };
    Ok(fresh(&cpu).map(&mut fill))
}

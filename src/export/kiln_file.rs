//! Kiln's own file, `.kiln`, read by the CLI and the page alike: a trained model (everything
//! needed to predict and to train on) or a pretrained backbone. Layout: `KILN` magic, format
//! version (u32 LE), JSON header length (u32 LE), a CRC-32 of everything after it (u32 LE), the
//! JSON header (its `kind`; for a model: classes, architecture, input sizes, normalisation),
//! then burn's burnpack record of the weights and BatchNorm statistics. The checksum makes a
//! flipped bit an error instead of silently different predictions.

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};

use super::{ExportError, cpu_classifier, onnx_proto, to_cpu};
use crate::augment::{IMAGENET_MEAN, IMAGENET_STD};
use crate::learner::{EpochStats, Learner, LearnerConfig};
use crate::model::{Arch, Classifier, Pretrained};
use crate::pretrained::{Checkpoint, WeightsError, load_checkpoint};

const MAGIC: &[u8; 4] = b"KILN";
/// 2: the body became an enum (ResNet or EfficientNet) and headers gained `kind`.
/// 3: a CRC-32 of the header and weights. Version 2 files (no checksum) are still read.
pub(crate) const VERSION: u32 = 3;

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
    /// The epoch table so far, so training continues its numbering after a reload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<EpochStats>,
    /// Parameter groups before this one were frozen when the model was saved.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frozen_below: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ModelHeader {
    /// A model's header: its classes, how it was trained, and ImageNet's normalisation.
    pub fn new(classes: Vec<String>, config: LearnerConfig, presize: u32) -> Self {
        Self { classes, config, presize, mean: IMAGENET_MEAN, std: IMAGENET_STD, history: Vec::new(), frozen_below: 0 }
    }

    /// What `learner` would be saved with.
    pub fn of(learner: &Learner) -> Self {
        let header = Self::new(learner.classes.clone(), learner.config.clone(), learner.presize);
        Self { history: learner.history.clone(), frozen_below: learner.frozen_below, ..header }
    }
}

/// A model as `.kiln` bytes. Tensors are read with async reads (a blocking read panics on
/// WebGPU) into a CPU copy of the model, which burn then packs.
pub async fn to_bytes(header: &ModelHeader, model: &Classifier) -> Result<Vec<u8>, ExportError> {
    pack(&FileHeader::Model(header.clone()), cpu_classifier(header, model).await?)
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

fn load_record<M: Module>(model: M, weights: &[u8]) -> Result<M, ExportError> {
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
    let model = load_record(header.config.model.init(&device.clone().autodiff()), weights)?;
    if header.frozen_below >= crate::model::NUM_GROUPS {
        return Err(ExportError::Corrupt(format!("frozen_below {} is past the model's {} parameter groups", header.frozen_below, crate::model::NUM_GROUPS)));
    }
    let mut learner = Learner::from_parts(model, device.clone(), header.classes, header.config, header.presize);
    learner.history = header.history;
    if header.frozen_below > 0 {
        learner.freeze_to(header.frozen_below);
    }
    Ok(learner)
}

/// Read a backbone file on `device`.
pub fn backbone_from_bytes(bytes: &[u8], device: &Device) -> Result<(BackboneHeader, Pretrained), ExportError> {
    match read_header(bytes)? {
        (FileHeader::Backbone(h), weights) => {
            let classifier = (h.arch.num_features() as u64).saturating_mul(h.imagenet_classes.unwrap_or(0) as u64);
            declared_fits(h.arch.min_body_params().saturating_add(classifier), weights)?;
            let model = load_record(Pretrained::init(&h.arch, h.imagenet_classes, device), weights)?;
            Ok((h, model))
        }
        (FileHeader::Model(_), _) => Err(ExportError::Kind {
            expected: "pretrained backbone",
            found: "trained model",
            hint: "open it as a trained model (Import in the page, kiln predict in the CLI) instead",
        }),
    }
}

/// Any weights a user brings: a Kiln backbone file or a checkpoint (architecture inferred
/// from its keys unless `arch` names it).
pub fn load_weights(bytes: &[u8], arch: Option<&Arch>, device: &Device) -> Result<(Arch, Pretrained), WeightsError> {
    if bytes.starts_with(b"KILN") {
        let (header, model) = backbone_from_bytes(bytes, device).map_err(|e| WeightsError::Format(e.to_string()))?;
        if let Some(a) = arch
            && *a != header.arch
        {
            return Err(WeightsError::ArchMismatch { expected: a.name(), found: header.arch.name() });
        }
        return Ok((header.arch, model));
    }
    let ckpt = Checkpoint::from_bytes(bytes)?;
    let arch = match arch {
        Some(a) => a.clone(),
        None => ckpt.infer_arch()?,
    };
    let model = load_checkpoint(ckpt, &arch, device)?;
    Ok((arch, model))
}

/// `kiln weights import`: any weights a user brings, as a Kiln backbone file (with the
/// checkpoint's own classifier kept for `pretrained::imagenet_top_k`).
pub async fn import_weights(bytes: &[u8], source: &str, arch: Option<&Arch>) -> Result<(BackboneHeader, Vec<u8>), WeightsError> {
    // Converting is pure data movement: the CPU backend serves everywhere, the browser included.
    let cpu = Device::flex();
    let (arch, model) = load_weights(bytes, arch, &cpu)?;
    let imagenet_classes = model.fc.as_ref().map(|fc| fc.weight.dims()[1]);
    let header = BackboneHeader { arch, imagenet_classes, source: source.to_string() };
    let file = backbone_to_bytes(&model, header.clone()).await.map_err(|e| WeightsError::Format(e.to_string()))?;
    Ok((header, file))
}

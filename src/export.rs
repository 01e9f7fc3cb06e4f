//! The model file (`.kiln`): everything needed to predict, in one file the CLI and the page
//! both read. Layout: `KILN` magic, format version (u32 LE), JSON header length (u32 LE), the
//! JSON header (classes, architecture, input sizes, normalisation), then burn's burnpack
//! record of the weights and BatchNorm statistics.

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};

use crate::augment::{IMAGENET_MEAN, IMAGENET_STD};
use crate::learner::{Learner, LearnerConfig};
use crate::model::Classifier;

const MAGIC: &[u8; 4] = b"KILN";
const VERSION: u32 = 1;

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
    #[error("this model file has format version {0}; this Kiln reads version {VERSION}")]
    Version(u32),
    #[error("the model file is truncated or corrupt: {0}")]
    Corrupt(String),
}

pub fn to_bytes(learner: &Learner) -> Result<Vec<u8>, ExportError> {
    let header = ModelHeader {
        classes: learner.classes.clone(),
        config: learner.config.clone(),
        presize: learner.presize,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
    };
    let json = serde_json::to_vec(&header).expect("header serialises");
    let weights = learner.model.clone().valid().into_record().into_bytes().map_err(|e| ExportError::Corrupt(e.to_string()))?;
    let mut out = Vec::with_capacity(12 + json.len() + weights.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&weights);
    Ok(out)
}

pub fn read_header(bytes: &[u8]) -> Result<(ModelHeader, &[u8]), ExportError> {
    if bytes.len() < 12 || &bytes[..4] != MAGIC {
        return Err(ExportError::NotKiln);
    }
    let version = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
    if version != VERSION {
        return Err(ExportError::Version(version));
    }
    let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let json = bytes.get(12..12 + len).ok_or_else(|| ExportError::Corrupt("header runs past the end".into()))?;
    let header: ModelHeader = serde_json::from_slice(json).map_err(|e| ExportError::Corrupt(e.to_string()))?;
    Ok((header, &bytes[12 + len..]))
}

/// Rebuild a learner from a model file on `device`.
pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Learner, ExportError> {
    let (header, weights) = read_header(bytes)?;
    if header.classes.len() != header.config.model.num_classes {
        return Err(ExportError::Corrupt("class list and model size disagree".into()));
    }
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec())).map_err(|e| ExportError::Corrupt(e.to_string()))?;
    let model: Classifier = header.config.model.init(device);
    let model = model.try_load_record(record).map_err(|e| ExportError::Corrupt(e.to_string()))?;
    Ok(Learner::from_parts(model, device.clone(), header.classes, header.config, header.presize))
}

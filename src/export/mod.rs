//! What a trained model leaves Kiln as: Kiln's own `.kiln` file ([`kiln_file`], which the page
//! and the CLI read back), ONNX ([`onnx`], for apps and runtimes), or a PyTorch state dict in
//! fastai's layout ([`pytorch`], to keep training in a notebook). Each writer takes the model
//! file's header and the model.

pub mod kiln_file;
pub mod onnx;
mod onnx_proto;
pub mod pytorch;

use kiln_file::VERSION;
pub use kiln_file::{BackboneHeader, FileHeader, ModelHeader, backbone_from_bytes, backbone_to_bytes, from_bytes, import_weights, load_weights, read_header};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Shape, Tensor, TensorData};

use crate::learner::Learner;
use crate::model::Classifier;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("not a Kiln model file (it does not start with KILN): choose a .kiln file that Kiln saved")]
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
        "it was written by an earlier Kiln; train the model again, or import its pretrained weights again (kiln weights import)"
    } else {
        "update Kiln to read it"
    }
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

/// `learner`'s model as a file in `format`.
pub async fn write(learner: &Learner, format: Format) -> Result<Vec<u8>, ExportError> {
    let header = ModelHeader::of(learner);
    match format {
        Format::Kiln => kiln_file::to_bytes(&header, &learner.model).await,
        Format::Onnx => onnx::to_onnx(&header, &learner.model).await,
        Format::PyTorch => pytorch::to_safetensors(&header, &learner.model).await,
    }
}

/// `learner`'s model as `.kiln` bytes.
pub async fn to_bytes(learner: &Learner) -> Result<Vec<u8>, ExportError> {
    write(learner, Format::Kiln).await
}

/// What both foreign formats record about the model, as (key, value) metadata.
pub(crate) fn metadata(header: &ModelHeader) -> Vec<(&'static str, String)> {
    let loss_func = header.config.loss_func.fastai();
    vec![
        ("classes", serde_json::to_string(&header.classes).expect("strings serialise")),
        ("image_size", header.config.aug.size.to_string()),
        ("presize", header.presize.to_string()),
        ("architecture", header.config.model.arch.name()),
        ("loss_func", loss_func),
        ("kiln_version", env!("CARGO_PKG_VERSION").into()),
    ]
}

/// A weight of a [`cpu_classifier`] model as f32 values, row-major.
pub(crate) fn f32_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    // `to_cpu` builds every tensor from f32 data, so the read cannot fail.
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

/// The model in eval mode on the CPU backend, every weight finite and f32: what each format
/// writes from.
pub(crate) async fn cpu_classifier(header: &ModelHeader, model: &Classifier) -> Result<Classifier, ExportError> {
    to_cpu(&model.clone().valid(), |d| header.config.model.init(d)).await
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
pub(crate) async fn to_cpu<M: Module>(model: &M, fresh: impl FnOnce(&Device) -> M) -> Result<M, ExportError> {
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

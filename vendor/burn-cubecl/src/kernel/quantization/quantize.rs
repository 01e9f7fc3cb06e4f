use crate::tensor::CubeTensor;
use burn_backend::quantization::QuantScheme;

/// Kiln patch: always panics. cubek's quantization kernels are not compiled (cubek's
/// `quantization` feature is off, KILN-PATCH.md); Kiln trains and exports f32 (and f16) models.
pub fn quantize(_tensor: CubeTensor, _scheme: &QuantScheme, _scale: CubeTensor, _global: Option<CubeTensor>) -> CubeTensor {
    crate::kiln::not_compiled("quantization")
}

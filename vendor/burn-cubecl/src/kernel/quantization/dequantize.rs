use crate::tensor::CubeTensor;
use burn_backend::DType;

/// Kiln patch: a tensor that is not quantized comes back as it is; a quantized one panics, as
/// cubek's quantization kernels are not compiled (KILN-PATCH.md). Kiln never quantizes.
pub fn dequantize(tensor: CubeTensor, _dtype: DType) -> CubeTensor {
    match tensor.dtype {
        DType::QFloat(_) => crate::kiln::not_compiled("quantization"),
        _ => tensor,
    }
}

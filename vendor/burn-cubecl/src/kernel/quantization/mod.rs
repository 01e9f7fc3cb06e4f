mod dequantize;
mod quantize;

pub use dequantize::*;
pub use quantize::*;

const NOT_COMPILED: &str = "quantized tensors are not supported by Kiln's wgpu backend (vendor/burn-cubecl/KILN-PATCH.md)";

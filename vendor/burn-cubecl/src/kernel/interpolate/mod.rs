//! Kiln patch: cubek's interpolation kernels are not compiled (cubek's `interpolate` feature is
//! off, KILN-PATCH.md). Kiln never resizes on the device: presizing decodes and resizes on the
//! CPU, and augmentation warps with `grid_sample_2d`.

use crate::tensor::CubeTensor;
use burn_backend::ops::InterpolateOptions;

/// Always panics: see the module's comment.
pub fn interpolate(_input: CubeTensor, _output_size: [usize; 2], _options: InterpolateOptions) -> CubeTensor {
    crate::kiln::not_compiled("interpolate (resize on the CPU backend)")
}

/// Always panics: see the module's comment.
pub fn interpolate_backward(_input: CubeTensor, _out_grad: CubeTensor, _output_size: [usize; 2], _options: InterpolateOptions) -> CubeTensor {
    crate::kiln::not_compiled("interpolate (resize on the CPU backend)")
}

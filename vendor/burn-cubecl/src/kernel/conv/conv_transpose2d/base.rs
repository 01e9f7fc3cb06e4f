use crate::tensor::CubeTensor;
use burn_backend::ops::ConvTransposeOptions;
use cubek::convolution::components::ConvSetupError;

#[cfg(feature = "autotune")]
use super::conv_transpose2d_autotune;
use super::{conv_transpose2d_col2im, conv_transpose2d_direct};

/// The strategy to be used when launching a conv_transpose kernel.
pub enum ConvTranspose2dStrategy {
    /// A simple direct convolution.
    Direct,
    #[cfg(feature = "autotune")]
    /// Using autotune to choose the best kernel based on runtime information.
    Autotune,
    /// GEMM (im2col) based implementation of convolution. Significantly increased memory usage.
    Gemm,
    /// Kiln: without autotune, GEMM for ungrouped and direct for grouped (depthwise) ones: what
    /// autotune chose for each on lavapipe (ResNet-18's and EfficientNet-Lite0's data gradients).
    Heuristic,
}

impl Default for ConvTranspose2dStrategy {
    fn default() -> Self {
        // if autotune is enabled, default to autotune
        #[cfg(feature = "autotune")]
        if crate::autotune_enabled() {
            return ConvTranspose2dStrategy::Autotune;
        }

        // Kiln: without autotune, by shape, unless the benches ask for upstream's default
        if crate::kiln::upstream_conv() {
            return ConvTranspose2dStrategy::Direct;
        }
        ConvTranspose2dStrategy::Heuristic
    }
}

/// Performs a 2D convolution with the given strategy
///
/// * `input` - The input feature map
/// * `weight` - The weights (filter) applied to each kernel
/// * `bias` - The bias added to each channel
/// * `options` - The options to use for the convolution
/// * `strategy` - The convolution algorithm to use. Autotune will pick the fastest available option.
pub fn conv_transpose2d(
    input: CubeTensor,
    weight: CubeTensor,
    bias: Option<CubeTensor>,
    options: ConvTransposeOptions<2>,
    strategy: ConvTranspose2dStrategy,
) -> Result<CubeTensor, ConvSetupError> {
    match strategy {
        ConvTranspose2dStrategy::Direct => conv_transpose2d_direct(input, weight, bias, options),
        #[cfg(feature = "autotune")]
        ConvTranspose2dStrategy::Autotune => {
            Ok(conv_transpose2d_autotune(input, weight, bias, options))
        }
        ConvTranspose2dStrategy::Gemm => conv_transpose2d_col2im(input, weight, bias, options),
        ConvTranspose2dStrategy::Heuristic if options.groups == 1 => {
            conv_transpose2d_col2im(input, weight, bias, options)
        }
        ConvTranspose2dStrategy::Heuristic => conv_transpose2d_direct(input, weight, bias, options),
    }
}

//! Kiln: convolution kernels chosen by shape, for runs without autotune (the browser build, and
//! native runs unless `--autotune`). Upstream's no-autotune default is the direct kernel forward,
//! a direct transposed convolution for the data gradient and, for the weight gradient, the
//! fallback that convolves the input by the output gradient, which is the slowest of all (see
//! `wgrad_im2col`). The routines below are the ones upstream's autotune offers for the same
//! shapes; every one declines with an `Err` what it cannot run, and then the upstream default
//! runs. See KILN-PATCH.md for what was measured and what would retire this file.

use burn_backend::ops::ConvOptions;
use burn_std::Shape;
use cubek::convolution::{DepthwiseStrategy, DepthwiseTiling, components::ConvSetupError};

use super::{
    backward_data::fallback::conv_data_backward_fallback,
    backward_weight::fallback::conv_weight_backward_fallback, conv_direct, conv_im2col_1x1,
    dgrad_im2col, dgrad_im2col_1x1, forward::depthwise::conv_depthwise, wgrad_im2col,
    wgrad_im2col_1x1_split,
};
use crate::tensor::CubeTensor;

/// What a convolution is, for choosing its kernels. Shapes are NHWC, as below `base.rs`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// One filter per channel (`groups == c_in == c_out`).
    Depthwise,
    /// A 1×1 window with no padding or dilation (any stride), `groups == 1`.
    Pointwise,
    /// Anything else with `groups == 1`.
    Dense,
    /// Other grouped convolutions: upstream's defaults.
    Grouped,
}

fn kind<const N: usize>(c_in: usize, c_out: usize, kernel: &[usize], options: &ConvOptions<N>) -> Kind {
    if options.groups == 1 {
        let pointwise = kernel.iter().all(|&k| k == 1)
            && options.padding.iter().all(|&(b, e)| b == 0 && e == 0)
            && options.dilation.iter().all(|&d| d == 1);
        if pointwise { Kind::Pointwise } else { Kind::Dense }
    } else if options.groups == c_in && c_out == c_in {
        Kind::Depthwise
    } else {
        Kind::Grouped
    }
}

/// The tiling autotune chose for every 3×3 depthwise convolution of EfficientNet-Lite0 on
/// lavapipe (upstream's `DEPTHWISE_8X4_LINED` in `forward/tune.rs`); for 5×5 it chose the
/// routine's own.
const DEPTHWISE_3X3: DepthwiseStrategy = DepthwiseStrategy::Fixed(DepthwiseTiling { rows: 8, cols: 4, chans: 1, lines: 2 });

/// Depthwise → the depthwise routine; pointwise → one matmul; dense → the direct kernel (under
/// autotune on lavapipe it beat im2col and a matmul on every dense shape of ResNet-18).
pub(crate) fn forward<const N: usize>(
    input: CubeTensor,
    weight: CubeTensor,
    bias: Option<CubeTensor>,
    options: ConvOptions<N>,
) -> Result<CubeTensor, ConvSetupError> {
    let dim_c = input.meta.num_dims() - 1;
    let kernel = weight.meta.shape()[1..dim_c].to_vec();
    let chosen = match kind(input.meta.shape()[dim_c], weight.meta.shape()[0], &kernel, &options) {
        Kind::Depthwise if bias.is_none() => conv_depthwise::<N>(
            input.clone(),
            weight.clone(),
            None,
            options.clone(),
            if kernel.iter().all(|&k| k == 3) { DEPTHWISE_3X3 } else { DepthwiseStrategy::Routine },
        ),
        Kind::Pointwise => {
            conv_im2col_1x1::<N>(input.clone(), weight.clone(), bias.clone(), options.clone())
        }
        _ => Err(ConvSetupError::Unknown),
    };
    chosen.or_else(|_| conv_direct::<N>(input, weight, bias, options))
}

/// Pointwise → one matmul over the pixels (its contraction cut into pieces when long); dense →
/// im2col and one matmul (autotune's choice for every dense weight gradient of ResNet-18 on
/// lavapipe); depthwise and grouped → upstream's fallback.
pub(crate) fn weight_backward<const N: usize>(
    input: CubeTensor,
    out_grad: CubeTensor,
    weight_shape: Shape,
    options: ConvOptions<N>,
) -> Result<CubeTensor, ConvSetupError> {
    let dim_c = input.meta.num_dims() - 1;
    let chosen = match kind(input.meta.shape()[dim_c], weight_shape[0], &weight_shape[1..dim_c], &options) {
        // At stride 1 the 1×1 forms (no columns); strided, its columns (autotune's choice for
        // ResNet's downsampling 1×1s on lavapipe).
        Kind::Pointwise => wgrad_im2col_1x1_split::<N>(
            input.clone(),
            out_grad.clone(),
            weight_shape.clone(),
            options.clone(),
        )
        .or_else(|_| {
            wgrad_im2col::<N>(input.clone(), out_grad.clone(), weight_shape.clone(), options.clone())
        }),
        Kind::Dense => {
            wgrad_im2col::<N>(input.clone(), out_grad.clone(), weight_shape.clone(), options.clone())
        }
        _ => Err(ConvSetupError::Unknown),
    };
    chosen.or_else(|_| conv_weight_backward_fallback::<N>(input, out_grad, weight_shape, options))
}

/// Pointwise at stride 1 → one matmul; strided pointwise → one matmul then col2im; the rest →
/// upstream's fallback, a transposed convolution, which without autotune now takes its col2im
/// form (`conv_transpose2d/base.rs`): what autotune chose for ResNet-18's 3×3 data gradients
/// on lavapipe, against `dgrad_im2col` and the direct transposed kernel.
pub(crate) fn data_backward<const N: usize>(
    out_grad: CubeTensor,
    weight: CubeTensor,
    in_shape: Shape,
    options: ConvOptions<N>,
) -> Result<CubeTensor, ConvSetupError> {
    let dim_c = out_grad.meta.num_dims() - 1;
    let kernel = weight.meta.shape()[1..dim_c].to_vec();
    let chosen = match kind(in_shape[dim_c], weight.meta.shape()[0], &kernel, &options) {
        // Strided pointwise has no single-matmul form; its columns do.
        Kind::Pointwise => {
            dgrad_im2col_1x1::<N>(out_grad.clone(), weight.clone(), in_shape.clone(), options.clone())
                .or_else(|_| {
                    dgrad_im2col::<N>(out_grad.clone(), weight.clone(), in_shape.clone(), options.clone())
                })
        }
        _ => Err(ConvSetupError::Unknown),
    };
    chosen.or_else(|_| conv_data_backward_fallback::<N>(out_grad, weight, in_shape, options))
}

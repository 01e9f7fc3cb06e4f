//! Kiln patch (KILN-PATCH.md): backward kernels that the backend trait has no method for.

use core::any::Any;

use burn_backend::{Backend, Scalar, TensorMetadata, get_or_init_device_settings, tensor::FloatTensor};

/// The gradient of `clamp(x, min, max)` from its output: `grad` where `min < output < max` (or
/// the output is NaN), zero elsewhere — PyTorch's `hardtanh_backward`, so ReLU6 as in PyTorch.
/// On the CPU backend (flex) one pass; elsewhere two comparisons, an `or` and a mask fill.
pub(crate) fn clamp_backward<B: Backend>(
    output: FloatTensor<B>,
    grad: FloatTensor<B>,
    min: Scalar,
    max: Scalar,
) -> FloatTensor<B> {
    let mut operands = Some((output, grad));
    let flex = (&mut operands as &mut dyn Any)
        .downcast_mut::<Option<(burn_flex::FlexTensor, burn_flex::FlexTensor)>>()
        .map(|o| o.take().expect("operands taken once"));
    if let Some((output, grad)) = flex {
        let mut result = Some(burn_flex::ops::activation::clamp_backward(output, grad, min, max));
        return (&mut result as &mut dyn Any)
            .downcast_mut::<Option<FloatTensor<B>>>()
            .and_then(Option::take)
            .expect("B is Flex: its float primitive is FlexTensor");
    }
    let (output, grad) = operands.expect("not taken for other backends");
    let dtype = get_or_init_device_settings::<B>(&output.device()).bool_dtype;
    let outside = B::bool_or(
        B::float_lower_equal_elem(output.clone(), min, dtype),
        B::float_greater_equal_elem(output, max, dtype),
    );
    B::float_mask_fill(grad, outside, 0f32.into())
}

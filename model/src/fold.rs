//! Batch-norm folding: at inference a batch-norm is a fixed per-channel scale and shift, so it
//! can be merged into the convolution before it. That removes four full passes over every
//! activation (subtract, divide, multiply, add) per layer, which profiling showed as a tenth of
//! the accurate model's CPU time, and is what ONNX Runtime does to the same network.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::activation::relu6;
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::depthwise::Depthwise;

/// Merges `norm` into `conv` once, and marks the pair folded so that [`conv_norm`] skips the
/// batch-norm. Inference only: a folded layer must not be trained or stored (see
/// [`Network::fold_batch_norms`](crate::Network::fold_batch_norms)).
pub fn fold(conv: &mut Conv2d, norm: &BatchNorm, folded: &mut bool) {
    if !*folded {
        *conv = fold_batch_norm(conv.clone(), norm);
        *folded = true;
    }
}

/// `norm(conv(x))` as one convolution: weights scaled by `gamma / sqrt(var + eps)` per output
/// channel, and a bias of `beta - mean * scale` (plus the scaled old bias, if any).
fn fold_batch_norm(conv: Conv2d, norm: &BatchNorm) -> Conv2d {
    let scale: Tensor<1> =
        norm.gamma.val() / norm.running_var.value().add_scalar(norm.epsilon).sqrt();
    let shift = norm.beta.val() - norm.running_mean.value() * scale.clone();
    let bias = match &conv.bias {
        Some(bias) => bias.val() * scale.clone() + shift,
        None => shift,
    };
    let [channels] = scale.dims();
    let weight = conv.weight.val() * scale.reshape([channels, 1, 1, 1]);
    Conv2d {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
        ..conv
    }
}

/// Runs a convolution and its batch-norm, or the convolution alone once folded.
pub fn conv_norm(conv: &Conv2d, norm: &BatchNorm, folded: bool, input: Tensor<4>) -> Tensor<4> {
    let x = conv.forward(input);
    if folded { x } else { norm.forward(x) }
}

/// [`conv_norm`] followed by ReLU6. Once folded (inference) on flex, the bias and the clamp are
/// done here, in one pass over the convolution's output and in place: flex adds a bias as a
/// pass of its own, and its clamp is a scalar loop that tests both bounds for NaN at every
/// element, which `perf` put at 18.6 % of the accurate model's time (one thread, natively),
/// more than its 3x3 convolutions' matrix products. The same clamp with constant bounds
/// compiles to vector min/max instructions (SSE/AVX natively, wasm SIMD in the page). The
/// values are those of `relu6(conv + bias)`, NaN kept as NaN.
pub fn conv_norm_relu6(
    conv: &Conv2d,
    norm: &BatchNorm,
    folded: bool,
    input: Tensor<4>,
) -> Tensor<4> {
    let device = input.device();
    // Training (unfolded, autodiff) and the other backends keep Burn's operations.
    let fused = folded && input.dtype() == DType::F32 && device == Device::flex();
    let (true, Some(bias)) = (fused, &conv.bias) else {
        return relu6(conv_norm(conv, norm, folded, input));
    };
    if let Some(depthwise) = depthwise_geometry(conv, &input) {
        return depthwise_relu6(depthwise, conv, bias, input);
    }
    let unbiased = Conv2d {
        bias: None,
        ..conv.clone()
    };
    // The convolution's fresh output has no other owner, so flex hands over its buffer and
    // takes it back without a copy.
    let output = unbiased.forward(input);
    let [_, _, height, width] = output.dims();
    let mut data = output.into_data();
    let bias = bias.val().into_data();
    add_bias_relu6(
        height * width,
        data.as_mut_slice::<f32>()
            .expect("an f32 tensor's data holds f32 values"),
        f32s(&bias),
    );
    Tensor::from_data(data, &device)
}

/// The geometry of `conv` over `input` when it is a depthwise convolution that
/// [`Depthwise`] computes (one filter per channel, square kernel, stride 1 or 2, no dilation,
/// `Same` padding: every one in the Lite family).
fn depthwise_geometry(conv: &Conv2d, input: &Tensor<4>) -> Option<Depthwise> {
    let [channels, per_group, kernel, kernel_w] = conv.weight.dims();
    let [_, input_channels, height, width] = input.dims();
    let [stride, stride_w] = conv.stride;
    let depthwise = conv.groups == channels && per_group == 1 && input_channels == channels;
    let square = kernel == kernel_w && stride == stride_w && conv.dilation == [1, 1];
    let supported = matches!(stride, 1 | 2) && conv.padding == PaddingConfig2d::Same;
    (depthwise && square && supported).then(|| Depthwise::same(height, width, kernel, stride))
}

/// The depthwise convolution, its bias and ReLU6 in one pass (see [`crate::depthwise`]).
fn depthwise_relu6(
    depthwise: Depthwise,
    conv: &Conv2d,
    bias: &Param<Tensor<1>>,
    input: Tensor<4>,
) -> Tensor<4> {
    let device = input.device();
    let [batch, channels, _, _] = input.dims();
    let [input, weights, bias] = [
        input.into_data(),
        conv.weight.val().into_data(),
        bias.val().into_data(),
    ];
    let output = depthwise.run(f32s(&input), f32s(&weights), f32s(&bias));
    let shape = [batch, channels, depthwise.out_h, depthwise.out_w];
    Tensor::from_data(TensorData::new(output, shape), &device)
}

fn f32s(data: &TensorData) -> &[f32] {
    data.as_slice::<f32>()
        .expect("an f32 network's tensors hold f32 values")
}

/// `relu6(x + bias[channel])` over NCHW values, one channel's plane of `plane` values at a time.
fn add_bias_relu6(plane: usize, values: &mut [f32], bias: &[f32]) {
    let planes = values.chunks_exact_mut(plane.max(1));
    for (channel_plane, &shift) in planes.zip(bias.iter().cycle()) {
        for value in channel_plane {
            *value = (*value + shift).clamp(0.0, 6.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::add_bias_relu6;

    #[test]
    fn bias_and_relu6_follow_each_channel_through_a_batch() {
        // Two photos, two channels, planes of two values: the bias cycles per plane.
        let mut values = [-1.0, 2.0, 5.0, 7.0, 0.5, f32::NAN, -0.0, 6.5];
        add_bias_relu6(2, &mut values, &[0.5, 1.5]);
        let want = [0.0, 2.5, 6.0, 6.0, 1.0, f32::NAN, 1.5, 6.0];
        for (i, (got, want)) in values.iter().zip(want).enumerate() {
            assert!(
                got == &want || (got.is_nan() && want.is_nan()),
                "value {i}: {got}, not {want}"
            );
        }
    }
}

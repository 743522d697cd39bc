//! The depthwise convolution of an inverted-residual block with its bias and ReLU6, in one pass,
//! for inference on flex.
//!
//! Why: `perf` put flex's depthwise kernel at 32 % of the accurate model's time (one thread,
//! natively, after the ReLU6 fusion in [`fold`](crate::fold)), and the page's profile at a
//! fifth. Flex accumulates each kernel tap into the whole output plane in turn, so every
//! output value is loaded and stored once per tap (9 or 25 times), its stride-2 layers gather
//! with a scalar loop, and the bias is a pass of its own.
//!
//! Here each output is summed in registers over every tap, `LANES` neighbours at a time. The
//! input plane is copied once into a zero-padded buffer split into `stride x stride` phases
//! (for stride 2: even and odd rows times even and odd columns), so that every tap of every
//! output reads at a fixed distance from it: output `(oh, ow)` is position `oh * width + ow`
//! of a plane whose rows are `width` long, the padded phase's width. The plane is then summed
//! as one flat run, across row ends; the few sums that fall in the `(kernel - 1) / stride`
//! columns past each row's end are dropped when the bias and clamp copy the rows out. Summing
//! row by row instead left most lanes idle on the narrow planes (17 and 9 wide) where most of
//! the accurate model's depthwise work is.
//!
//! The taps are added in flex's order (row by row, left to right, starting from zero, bias
//! last), so the values are flex's followed by the bias and ReLU6: a padded tap adds `0 * w`
//! where flex skips it, which can only change the sign of a zero.

use rayon::prelude::*;

/// Outputs summed side by side: four wasm SIMD vectors, independent additions enough to hide
/// their latency (32 measured the same in the page).
const LANES: usize = 16;

/// The geometry of one depthwise convolution over `[batch, channels, in_h, in_w]`: a square
/// kernel, the same stride both ways (1 or 2), no dilation, and Burn's `Same` padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depthwise {
    in_h: usize,
    in_w: usize,
    kernel: usize,
    stride: usize,
    pub out_h: usize,
    pub out_w: usize,
    pad_top: usize,
    pad_left: usize,
}

/// One task's buffers, reused from plane to plane.
#[derive(Default)]
struct Scratch {
    /// The padded input plane, phase by phase.
    padded: Vec<f32>,
    /// The sums, rows `width` long.
    sums: Vec<f32>,
}

impl Depthwise {
    /// The geometry Burn's `PaddingConfig2d::Same` gives: `ceil(size / stride)` outputs, the
    /// padding split with the odd one at the end.
    pub fn same(in_h: usize, in_w: usize, kernel: usize, stride: usize) -> Self {
        assert!(stride == 1 || stride == 2, "stride {stride}: 1 or 2");
        let (out_h, pad_top) = same_padding(in_h, kernel, stride);
        let (out_w, pad_left) = same_padding(in_w, kernel, stride);
        Self {
            in_h,
            in_w,
            kernel,
            stride,
            out_h,
            out_w,
            pad_top,
            pad_left,
        }
    }

    /// `relu6(depthwise(input) + bias)` for NCHW `input`, one `kernel x kernel` filter per
    /// channel in `weights`; returns the NCHW output, `[batch, channels, out_h, out_w]`.
    pub fn run(&self, input: &[f32], weights: &[f32], bias: &[f32]) -> Vec<f32> {
        let channels = bias.len();
        let in_plane = self.in_h * self.in_w;
        let out_plane = self.out_h * self.out_w;
        let taps = self.kernel * self.kernel;
        assert_eq!(weights.len(), channels * taps, "one filter per channel");
        assert_eq!(input.len() % (channels * in_plane), 0, "whole planes");
        let planes = input.len() / in_plane;
        let offsets = self.tap_offsets();
        let mut output = vec![0.0; planes * out_plane];
        // One task per plane: flex's kernel splits the work the same way.
        output.par_chunks_mut(out_plane).enumerate().for_each_init(
            Scratch::default,
            |scratch, (plane, out)| {
                let channel = plane % channels;
                self.pad(&input[plane * in_plane..][..in_plane], &mut scratch.padded);
                let weights = &weights[channel * taps..][..taps];
                self.sum(&scratch.padded, weights, &offsets, &mut scratch.sums);
                self.finish(&scratch.sums, bias[channel], out);
            },
        );
        output
    }

    /// Rows of each phase: the outputs' height plus the kernel's reach within a phase.
    fn phase_rows(&self) -> usize {
        self.out_h + (self.kernel - 1) / self.stride
    }

    /// Columns of each phase, the row length of the padded phases and of the sums.
    fn width(&self) -> usize {
        self.out_w + (self.kernel - 1) / self.stride
    }

    /// Values in one phase.
    fn phase_size(&self) -> usize {
        self.phase_rows() * self.width()
    }

    /// How far from its output each tap reads in the phase-split plane.
    fn tap_offsets(&self) -> Vec<usize> {
        let (kernel, stride, width) = (self.kernel, self.stride, self.width());
        (0..kernel * kernel)
            .map(|tap| {
                let (kh, kw) = (tap / kernel, tap % kernel);
                let phase = (kh % stride) * stride + kw % stride;
                phase * self.phase_size() + (kh / stride) * width + kw / stride
            })
            .collect()
    }

    /// Copies `input` into `padded`: padded row `r`, column `c` (input row `r - pad_top`,
    /// column `c - pad_left`, zero outside) goes to row `r / stride`, column `c / stride` of
    /// phase `(r % stride, c % stride)`. The border is zeroed when the buffer is made, and
    /// every plane of a convolution writes the same places, so only the input's values are
    /// written: filling each short row's border anew (a call into the browser's `memory.fill`
    /// each) cost more than the copy itself in the page.
    fn pad(&self, input: &[f32], padded: &mut Vec<f32>) {
        let (stride, width, phase_size) = (self.stride, self.width(), self.phase_size());
        // `LANES` to spare: the last run of sums reads past the last phase's end.
        let size = stride * stride * phase_size + LANES;
        if padded.len() != size {
            padded.clear();
            padded.resize(size, 0.0);
        }
        for (ir, input_row) in input.chunks_exact(self.in_w).enumerate() {
            let r = ir + self.pad_top;
            if r / stride >= self.phase_rows() {
                break; // Below every tap's reach (a 1x1 kernel at stride 2 skips the last row).
            }
            let first = (r % stride) * stride * phase_size + (r / stride) * width;
            if stride == 1 {
                padded[first + self.pad_left..][..self.in_w].copy_from_slice(input_row);
            } else {
                let (even, odd) = padded[first..].split_at_mut(phase_size);
                self.pad_row_in_pairs(input_row, &mut even[..width], &mut odd[..width]);
            }
        }
    }

    /// Stride 2: the padded row's even columns into `even_row`, its odd ones into `odd_row`,
    /// two neighbouring input values at a time (which compiles to vector shuffles).
    fn pad_row_in_pairs(&self, input_row: &[f32], even_row: &mut [f32], odd_row: &mut [f32]) {
        // Input column `c` is the padded row's column `c + pad_left`. With an odd `pad_left`
        // the first input value starts an odd column, and pairs start after it.
        let lead = (self.pad_left % 2).min(input_row.len());
        if let (Some(&value), Some(slot)) = (input_row.first(), odd_row.get_mut(self.pad_left / 2))
            && lead == 1
        {
            *slot = value;
        }
        let first = (self.pad_left + lead) / 2;
        let pairs = input_row[lead..].chunks_exact(2);
        let last = pairs.remainder().first().copied();
        let slots = even_row.iter_mut().zip(odd_row.iter_mut()).skip(first);
        for ((even, odd), pair) in slots.zip(pairs) {
            *even = pair[0];
            *odd = pair[1];
        }
        let last_slot = even_row.get_mut(first + (input_row.len() - lead) / 2);
        if let (Some(value), Some(slot)) = (last, last_slot) {
            *slot = value;
        }
    }

    /// Every output's sum over the taps into `sums` (rows `width` long), `LANES` at a time.
    fn sum(&self, padded: &[f32], weights: &[f32], offsets: &[usize], sums: &mut Vec<f32>) {
        let outputs = (self.out_h - 1) * self.width() + self.out_w;
        sums.resize(outputs.div_ceil(LANES) * LANES, 0.0);
        let reach = offsets.iter().max().copied().unwrap_or(0);
        // The furthest read, checked once here rather than at each of the taps' reads.
        assert!(
            sums.len() + reach <= padded.len(),
            "the padded plane covers every tap"
        );
        for (run, sums) in sums.as_chunks_mut::<LANES>().0.iter_mut().enumerate() {
            // SAFETY: `run * LANES + offset + LANES <= sums.len() + reach <= padded.len()`.
            *sums = unsafe { taps(padded, run * LANES, weights, offsets) };
        }
    }

    /// The bias and ReLU6 on the way from `sums` (rows `width` long) to the output plane.
    fn finish(&self, sums: &[f32], bias: f32, out: &mut [f32]) {
        let rows = sums.chunks(self.width());
        for (out_row, sums_row) in out.chunks_exact_mut(self.out_w).zip(rows) {
            for (out, &sum) in out_row.iter_mut().zip(sums_row) {
                *out = (sum + bias).clamp(0.0, 6.0);
            }
        }
    }
}

/// `N` neighbouring outputs summed over every tap, in registers, in flex's order (from zero,
/// tap by tap). Unchecked reads: a checked one per tap cost more than the tap's arithmetic in
/// the page (wasm keeps every bounds check), so the caller checks the furthest read once.
///
/// # Safety
/// `first + offset + N <= padded.len()` for every `offset` in `offsets`.
#[inline(always)]
unsafe fn taps<const N: usize>(
    padded: &[f32],
    first: usize,
    weights: &[f32],
    offsets: &[usize],
) -> [f32; N] {
    let mut sums = [0.0; N];
    for (&weight, &offset) in weights.iter().zip(offsets) {
        debug_assert!(first + offset + N <= padded.len());
        // SAFETY: in bounds by this function's contract.
        let source = unsafe { &*padded.as_ptr().add(first + offset).cast::<[f32; N]>() };
        for (sum, &value) in sums.iter_mut().zip(source) {
            *sum += value * weight;
        }
    }
    sums
}

/// Burn's `Same` padding along one axis: the output size and the padding before the first
/// input (the odd one of an uneven split goes after the last).
fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out.max(1) - 1) * stride + kernel).saturating_sub(size);
    (out, total / 2)
}

#[cfg(test)]
mod tests {
    use super::Depthwise;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::activation::relu6;
    use burn::tensor::{Device, Distribution, Tensor, TensorData};

    /// Burn's own depthwise convolution, bias and ReLU6 on flex, against this kernel: the same
    /// values (the same additions in the same order), for the kernels and strides of the
    /// Lite family, over even and odd sizes, a batch of two, and widths below and above a
    /// whole number of lanes.
    #[test]
    fn same_values_as_burns_depthwise_convolution() {
        let device = Device::flex();
        for (kernel, stride) in [(3, 1), (3, 2), (5, 1), (5, 2), (1, 2), (2, 2)] {
            for (height, width) in [(17, 17), (16, 16), (9, 20), (4, 3), (1, 1)] {
                let channels = 3;
                let conv = Conv2dConfig::new([channels, channels], [kernel, kernel])
                    .with_stride([stride, stride])
                    .with_groups(channels)
                    .with_padding(PaddingConfig2d::Same)
                    .init(&device);
                let input = Tensor::<4>::random(
                    [2, channels, height, width],
                    Distribution::Uniform(-4.0, 8.0),
                    &device,
                );
                let want = relu6(conv.forward(input.clone()));
                let geometry = Depthwise::same(height, width, kernel, stride);
                let got = geometry.run(
                    &f32s(input.into_data()),
                    &f32s(conv.weight.val().into_data()),
                    &f32s(conv.bias.as_ref().expect("a bias").val().into_data()),
                );
                assert_eq!(
                    want.dims(),
                    [2, channels, geometry.out_h, geometry.out_w],
                    "kernel {kernel}, stride {stride}, {height}x{width}"
                );
                let want = f32s(want.into_data());
                assert_eq!(got.len(), want.len());
                for (i, (got, want)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        got == want,
                        "kernel {kernel}, stride {stride}, {height}x{width}, value {i}: \
                         {got}, not {want}"
                    );
                }
            }
        }
    }

    fn f32s(data: TensorData) -> Vec<f32> {
        data.try_to_vec().expect("f32 values")
    }
}

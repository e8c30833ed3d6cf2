//! Host side of `shaders/depthwise.wgsl`: depthwise 3x3 convolution, stride 1 or 2, fused bias
//! and activation.

use std::sync::Arc;

use super::{div_ceil, Activation, Kernel, Slot, Step, Workgroups};
use crate::gpu::GpuContext;

pub const SOURCE: &str = include_str!("../../shaders/depthwise.wgsl");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DwShape {
    pub in_w: u32,
    pub in_h: u32,
    pub channels: u32,
    pub stride: u32,
}

impl DwShape {
    pub fn out_w(&self) -> u32 {
        (self.in_w - 1) / self.stride + 1
    }
    pub fn out_h(&self) -> u32 {
        (self.in_h - 1) / self.stride + 1
    }
    pub fn macs(&self) -> u64 {
        self.out_w() as u64 * self.out_h() as u64 * self.channels as u64 * 9
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    in_w: u32,
    in_h: u32,
    c4: u32,
    out_w: u32,
    out_h: u32,
    stride: u32,
    act: u32,
    w_offset: u32,
    b_offset: u32,
    tiles_x: u32,
    tiles: u32,
    tile_h: u32,
    zero: u32,
    band_y0: u32,
    band_y1: u32,
    src_base: u32,
    dst_base: u32,
    _pad: [u32; 3],
}

/// Output pixels per invocation along x (the shader's tile width).
const TILE_W: u32 = 4;
/// The tallest tile: past it the loads saved per output row are few.
const MAX_TILE_H: u32 = 16;
/// Invocations a layer should keep, over all channel groups, before its tiles grow taller:
/// enough workgroups for every core of a GPU, while a CPU adapter (lavapipe: one thread per
/// core, 8 lanes each) is busy with a few dozen.
fn min_invocations(device: wgpu::DeviceType) -> u32 {
    match device {
        wgpu::DeviceType::Cpu => 2048,
        _ => 65536,
    }
}
/// Invocations per workgroup (the shader's `@workgroup_size`).
const WORKGROUP: u32 = 64;

/// The pipeline; a `banded` one reads windows of tensors larger than a binding (see
/// [`super::band`]).
pub(crate) fn kernel(ctx: &GpuContext, banded: bool) -> Arc<Kernel> {
    let constants: &[(&str, f64)] = if banded { &[("BANDED", 1.0)] } else { &[] };
    Kernel::with_constants(
        ctx,
        "depthwise",
        SOURCE,
        "main",
        &[Slot::Uniform, Slot::Read, Slot::Read, Slot::ReadWrite],
        constants,
    )
}

#[allow(clippy::too_many_arguments)]
fn params(
    ctx: &GpuContext,
    shape: DwShape,
    act: Activation,
    at: super::conv::PackedAt,
    zero: u32,
    (y0, y1): (u32, u32),
    (src_base, dst_base): (u32, u32),
) -> (Params, [u32; 3]) {
    debug_assert!(
        shape.channels.is_multiple_of(4),
        "depthwise channels must be a multiple of 4"
    );
    let tiles_x = div_ceil(shape.out_w(), TILE_W);
    let tile_h = tile_height(shape, ctx.device.adapter_info().device_type);
    let tiles = tiles_x * div_ceil(y1 - y0, tile_h);
    let params = Params {
        in_w: shape.in_w,
        in_h: shape.in_h,
        c4: shape.channels / 4,
        out_w: shape.out_w(),
        out_h: shape.out_h(),
        stride: shape.stride,
        act: act as u32,
        w_offset: (at.weights / 4) as u32,
        b_offset: (at.bias / 4) as u32,
        tiles_x,
        tiles,
        tile_h,
        zero,
        band_y0: y0,
        band_y1: y1,
        src_base,
        dst_base,
        _pad: [0; 3],
    };
    (params, [div_ceil(tiles, WORKGROUP), shape.channels / 4, 1])
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn step(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    label: &str,
    shape: DwShape,
    act: Activation,
    src: super::conv::Source<'_>,
    weights: &wgpu::Buffer,
    at: super::conv::PackedAt,
    dst: &wgpu::Buffer,
) -> Step {
    let (params, workgroups) = params(ctx, shape, act, at, src.zero, (0, shape.out_h()), (0, 0));
    Step::with_uniform(
        ctx,
        kernel,
        label,
        &params,
        &[src.buffer, weights, dst],
        Workgroups::Direct(workgroups),
    )
}

/// The layer as dispatches over bands of output rows through buffer windows (see
/// [`super::band`]); `kernel` is the banded pipeline. `None` when one row does not fit.
#[allow(clippy::too_many_arguments)]
pub(crate) fn banded_steps(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    limits: &super::band::BindLimits,
    label: &str,
    shape: DwShape,
    act: Activation,
    src: &wgpu::Buffer,
    weights: &wgpu::Buffer,
    at: super::conv::PackedAt,
    dst: &wgpu::Buffer,
) -> Option<Vec<Step>> {
    let in_row = shape.in_w as u64 * shape.channels as u64 * 4;
    let out_row = shape.out_w() as u64 * shape.channels as u64 * 4;
    let ranges = |y0: u32, y1: u32| {
        let (a, b) = super::band::input_rows(y0, y1, 3, shape.stride, 1, shape.in_h);
        (
            (a as u64 * in_row, b as u64 * in_row),
            (y0 as u64 * out_row, y1 as u64 * out_row),
        )
    };
    super::band::steps(
        ctx,
        kernel,
        limits,
        label,
        shape.out_h(),
        &[src, weights, dst],
        |y0, y1| {
            let ((a, b), (c, d)) = ranges(y0, y1);
            vec![Some((a, b)), None, Some((c, d))]
        },
        |y0, y1, off| {
            let bases = ((off[0] / 16) as u32, (off[2] / 16) as u32);
            params(ctx, shape, act, at, 0, (y0, y1), bases)
        },
    )
}

/// Rows per tile: as tall as [`MAX_TILE_H`] while the layer keeps enough invocations for
/// `device`, never under 2; `RETINAFACE_DW_TILE_H=N` forces it, for benchmarking.
pub fn tile_height(shape: DwShape, device: wgpu::DeviceType) -> u32 {
    if let Some(h) = std::env::var("RETINAFACE_DW_TILE_H")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        return h.clamp(1, 64);
    }
    let tiles_x = div_ceil(shape.out_w(), TILE_W);
    let mut h = MAX_TILE_H;
    let groups = shape.channels / 4;
    while h > 2 && tiles_x * div_ceil(shape.out_h(), h) * groups < min_invocations(device) {
        h /= 2;
    }
    h
}

/// Repacks PyTorch's `[c][1][3][3]` depthwise weights into the shader's `[ky][kx][c]`.
pub fn pack_weights(w: &[f32], channels: usize) -> Vec<f32> {
    let mut out = vec![0f32; 9 * channels];
    for c in 0..channels {
        for t in 0..9 {
            out[t * channels + c] = w[c * 9 + t];
        }
    }
    out
}

/// CPU reference: HWC in and out, PyTorch-layout weights.
pub fn cpu(shape: DwShape, act: Activation, src: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let (iw, ih, ch, s) = (
        shape.in_w as i64,
        shape.in_h as i64,
        shape.channels as usize,
        shape.stride as i64,
    );
    let (ow, oh) = (shape.out_w() as usize, shape.out_h() as usize);
    let mut out = vec![0f32; ow * oh * ch];
    for oy in 0..oh {
        for ox in 0..ow {
            for c in 0..ch {
                let mut acc = b[c] as f64;
                for ky in 0..3i64 {
                    for kx in 0..3i64 {
                        let (iy, ix) = (oy as i64 * s + ky - 1, ox as i64 * s + kx - 1);
                        if iy < 0 || iy >= ih || ix < 0 || ix >= iw {
                            continue;
                        }
                        acc += src[(iy * iw + ix) as usize * ch + c] as f64
                            * w[c * 9 + (ky * 3 + kx) as usize] as f64;
                    }
                }
                out[(oy * ow + ox) * ch + c] = act.apply(acc as f32);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{download_f32, upload_f32};
    use crate::ops::conv::PackedAt;
    use crate::ops::run_steps;
    use crate::ops::testutil::{assert_close, ctx, Rng};

    fn check(shape: DwShape, act: Activation, seed: u64) {
        let ctx = ctx();
        let mut rng = Rng(seed);
        let ch = shape.channels as usize;
        let mut src = rng.vec((shape.in_w * shape.in_h) as usize * ch);
        let w = rng.vec(ch * 9);
        let b = rng.vec(ch);
        // The zero pixel that the plan allocates after every tensor.
        let real = src.len();
        src.resize(real + ch, 0.0);
        // Offsets in the weight buffer are whole vec4s.
        let mut arena = vec![0f32; 4];
        let wat = arena.len();
        arena.extend(pack_weights(&w, ch));
        let bat = arena.len();
        arena.extend(&b);
        let n = (shape.out_w() * shape.out_h()) as usize * ch;
        let (sb, wb, db) = (
            upload_f32(ctx, "s", &src),
            upload_f32(ctx, "w", &arena),
            upload_f32(ctx, "d", &vec![0.0; n]),
        );
        let at = PackedAt {
            weights: wat,
            bias: bat,
        };
        run_steps(
            ctx,
            &[step(
                ctx,
                &kernel(ctx, false),
                "dw",
                shape,
                act,
                crate::ops::conv::Source::after_image(&sb, shape.in_w, shape.in_h, shape.channels),
                &wb,
                at,
                &db,
            )],
        );
        let gpu = download_f32(ctx, &db, n).unwrap();
        // The same layer in bands of a few rows through windows at 256-byte offsets: the
        // same arithmetic, so the same bits.
        let in_row = (shape.in_w * shape.channels * 4) as u64;
        let limits = crate::ops::band::BindLimits {
            max_buffer: 1 << 30,
            max_binding: 5 * in_row + 2 * (shape.out_w() * shape.channels * 4) as u64 + 512,
            align: 256,
        };
        let bb = upload_f32(ctx, "d", &vec![0.0; n]);
        let steps = banded_steps(
            ctx,
            &kernel(ctx, true),
            &limits,
            "dw",
            shape,
            act,
            &sb,
            &wb,
            at,
            &bb,
        )
        .expect("a row fits");
        assert!(
            steps.len() > 1 || in_row * shape.in_h as u64 <= limits.max_binding,
            "{shape:?}: one band"
        );
        run_steps(ctx, &steps);
        let by_band = download_f32(ctx, &bb, n).unwrap();
        assert!(
            gpu.iter()
                .zip(&by_band)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{shape:?}: banded run differs from the whole one"
        );
        assert_close(
            &gpu,
            &cpu(shape, act, &src[..real], &w, &b),
            1e-5,
            &format!("{shape:?}"),
        );
    }

    #[test]
    fn stride1_odd() {
        check(
            DwShape {
                in_w: 15,
                in_h: 9,
                channels: 12,
                stride: 1,
            },
            Activation::Leaky,
            11,
        );
    }

    #[test]
    fn stride1_narrow_and_single_column() {
        for (w, h) in [(1, 5), (2, 3), (5, 1)] {
            let s = DwShape {
                in_w: w,
                in_h: h,
                channels: 8,
                stride: 1,
            };
            check(s, Activation::None, 14 + w as u64);
        }
    }

    #[test]
    fn many_workgroups_and_ragged_tiles() {
        // 45x41 at stride 1 is 12 x 11 tiles of 4x4 (two workgroups, last row and column
        // ragged); at stride 2, 23x21 outputs.
        for stride in [1, 2] {
            let s = DwShape {
                in_w: 45,
                in_h: 41,
                channels: 12,
                stride,
            };
            check(s, Activation::Leaky, 20 + stride as u64);
        }
    }

    #[test]
    fn stride2_odd() {
        check(
            DwShape {
                in_w: 15,
                in_h: 9,
                channels: 20,
                stride: 2,
            },
            Activation::Leaky,
            12,
        );
        check(
            DwShape {
                in_w: 1,
                in_h: 1,
                channels: 4,
                stride: 2,
            },
            Activation::Relu,
            13,
        );
    }
}

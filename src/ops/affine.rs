//! Host side of `shaders/affine.wgsl`: a standalone batch norm, `x * scale + shift` per
//! channel and an optional ReLU (retina-face's pre-activation units and `bn_data`).

use std::sync::Arc;

use super::{conv::PackedAt, div_ceil, Kernel, Slot, Step, Workgroups};
use crate::gpu::GpuContext;

pub const SOURCE: &str = include_str!("../../shaders/affine.wgsl");

/// Invocations per workgroup; must match the shader's `@workgroup_size`.
const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    c4: u32,
    relu: u32,
    scale_offset: u32,
    shift_offset: u32,
    row: u32,
    _pad: [u32; 2],
}

pub(crate) fn kernel(ctx: &GpuContext) -> Arc<Kernel> {
    Kernel::new(
        ctx,
        "affine",
        SOURCE,
        "main",
        &[Slot::Uniform, Slot::Read, Slot::Read, Slot::ReadWrite],
    )
}

/// `pixels` pixels of `channels` (a multiple of 4) channels; `at.weights` is the scale,
/// `at.bias` the shift, each padded to `channels`.
#[allow(clippy::too_many_arguments)]
fn params(n: u32, channels: u32, relu: bool, at: PackedAt) -> (Params, [u32; 3]) {
    debug_assert!(
        channels.is_multiple_of(4),
        "affine channels must be a multiple of 4"
    );
    let (gx, gy) = super::grid_2d(div_ceil(n, WG));
    let params = Params {
        n,
        c4: channels / 4,
        relu: relu as u32,
        scale_offset: (at.weights / 4) as u32,
        shift_offset: (at.bias / 4) as u32,
        row: gx * WG,
        _pad: [0; 2],
    };
    (params, [gx, gy, 1])
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn step(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    label: &str,
    pixels: u32,
    channels: u32,
    relu: bool,
    src: &wgpu::Buffer,
    weights: &wgpu::Buffer,
    at: PackedAt,
    dst: &wgpu::Buffer,
) -> Step {
    let (params, workgroups) = params(pixels * channels / 4, channels, relu, at);
    Step::with_uniform(
        ctx,
        kernel,
        label,
        &params,
        &[src, weights, dst],
        Workgroups::Direct(workgroups),
    )
}

/// The op over chunks of whole pixels that start on the offset alignment, bound as windows
/// (see [`super::band`]): a window starts on a pixel, so the shader's channel index holds.
#[allow(clippy::too_many_arguments)]
pub(crate) fn banded_steps(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    limits: &super::band::BindLimits,
    label: &str,
    pixels: u32,
    channels: u32,
    relu: bool,
    src: &wgpu::Buffer,
    weights: &wgpu::Buffer,
    at: PackedAt,
    dst: &wgpu::Buffer,
) -> Option<Vec<Step>> {
    // Chunks in vec4s: whole pixels (channels / 4 vec4s) and whole alignment units.
    let unit = super::band::lcm(channels as u64 / 4, limits.align / 16) as u32;
    super::band::chunked_steps(
        ctx,
        kernel,
        limits,
        label,
        (pixels * channels / 4, unit, 16),
        &[src, weights, dst],
        &[true, false, true],
        |len| params(len, channels, relu, at),
    )
}

/// CPU reference: channels-last `src` of `scale.len()` channels.
pub fn cpu(src: &[f32], scale: &[f32], shift: &[f32], relu: bool) -> Vec<f32> {
    let c = scale.len();
    src.iter()
        .enumerate()
        .map(|(i, x)| {
            let v = x * scale[i % c] + shift[i % c];
            if relu {
                v.max(0.0)
            } else {
                v
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{download_f32, upload_f32};
    use crate::ops::run_steps;
    use crate::ops::testutil::{assert_close, ctx, Rng};

    fn check(pixels: usize, channels: usize, relu: bool, seed: u64) {
        let ctx = ctx();
        let mut rng = Rng(seed);
        let src = rng.vec(pixels * channels);
        let (scale, shift) = (rng.vec(channels), rng.vec(channels));
        let mut arena = vec![0f32; 4];
        let at = PackedAt {
            weights: 4,
            bias: 4 + channels,
        };
        arena.extend(&scale);
        arena.extend(&shift);
        // The zero pixel after the image stays untouched.
        let sentinel = vec![9.5f32; (pixels + 1) * channels];
        let (sb, wb, db) = (
            upload_f32(ctx, "src", &src),
            upload_f32(ctx, "w", &arena),
            upload_f32(ctx, "dst", &sentinel),
        );
        let k = kernel(ctx);
        run_steps(
            ctx,
            &[step(
                ctx,
                &k,
                "affine",
                pixels as u32,
                channels as u32,
                relu,
                &sb,
                &wb,
                at,
                &db,
            )],
        );
        let gpu = download_f32(ctx, &db, sentinel.len()).unwrap();
        let want = cpu(&src, &scale, &shift, relu);
        assert_close(
            &gpu[..want.len()],
            &want,
            1e-6,
            &format!("{pixels}x{channels}"),
        );
        assert!(
            gpu[want.len()..].iter().all(|v| *v == 9.5),
            "wrote past the image"
        );
    }

    #[test]
    fn odd_pixel_counts_and_channel_groups() {
        check(13 * 7, 12, true, 1);
        check(1, 4, false, 2);
        check(37 * 23, 20, false, 3);
        check(33 * 25, 256, true, 4);
    }
}

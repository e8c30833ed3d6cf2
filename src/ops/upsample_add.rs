//! Host side of `shaders/upsample_add.wgsl`: the FPN's nearest upsample and add, in place.

use std::sync::Arc;

use super::{div_ceil, Kernel, Slot, Step, Workgroups};
use crate::gpu::GpuContext;

pub const SOURCE: &str = include_str!("../../shaders/upsample_add.wgsl");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpShape {
    pub fine: (u32, u32),
    pub coarse: (u32, u32),
    pub channels: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    fine_w: u32,
    fine_h: u32,
    coarse_w: u32,
    coarse_h: u32,
    channels: u32,
    y0: u32,
    rows: u32,
    fine_base: u32,
    coarse_base: u32,
    _pad: [u32; 3],
}

pub(crate) fn kernel(ctx: &GpuContext) -> Arc<Kernel> {
    Kernel::new(
        ctx,
        "upsample_add",
        SOURCE,
        "main",
        &[Slot::Uniform, Slot::Read, Slot::ReadWrite],
    )
}

fn params(
    s: UpShape,
    (y0, y1): (u32, u32),
    (fine_base, coarse_base): (u32, u32),
) -> (Params, [u32; 3]) {
    let params = Params {
        fine_w: s.fine.0,
        fine_h: s.fine.1,
        coarse_w: s.coarse.0,
        coarse_h: s.coarse.1,
        channels: s.channels,
        y0,
        rows: y1 - y0,
        fine_base,
        coarse_base,
        _pad: [0; 3],
    };
    (
        params,
        [div_ceil(s.channels, 16), div_ceil(s.fine.0, 4), y1 - y0],
    )
}

pub(crate) fn step(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    label: &str,
    s: UpShape,
    coarse: &wgpu::Buffer,
    fine: &wgpu::Buffer,
) -> Step {
    let (params, workgroups) = params(s, (0, s.fine.1), (0, 0));
    Step::with_uniform(
        ctx,
        kernel,
        label,
        &params,
        &[coarse, fine],
        Workgroups::Direct(workgroups),
    )
}

/// The step over bands of fine rows through buffer windows (see [`super::band`]).
pub(crate) fn banded_steps(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    limits: &super::band::BindLimits,
    label: &str,
    s: UpShape,
    coarse: &wgpu::Buffer,
    fine: &wgpu::Buffer,
) -> Option<Vec<Step>> {
    let fine_row = s.fine.0 as u64 * s.channels as u64 * 4;
    let coarse_row = s.coarse.0 as u64 * s.channels as u64 * 4;
    // The shader's nearest row: floor(y * coarse_h / fine_h).
    let src_row = |y: u32| y as u64 * s.coarse.1 as u64 / s.fine.1 as u64;
    super::band::steps(
        ctx,
        kernel,
        limits,
        label,
        s.fine.1,
        &[coarse, fine],
        |y0, y1| {
            vec![
                Some((src_row(y0) * coarse_row, (src_row(y1 - 1) + 1) * coarse_row)),
                Some((y0 as u64 * fine_row, y1 as u64 * fine_row)),
            ]
        },
        |y0, y1, off| params(s, (y0, y1), ((off[1] / 4) as u32, (off[0] / 4) as u32)),
    )
}

/// CPU reference, in place on `fine` (HWC).
pub fn cpu(s: UpShape, coarse: &[f32], fine: &mut [f32]) {
    let ch = s.channels as usize;
    for y in 0..s.fine.1 {
        let sy = y * s.coarse.1 / s.fine.1;
        for x in 0..s.fine.0 {
            let sx = x * s.coarse.0 / s.fine.0;
            for c in 0..ch {
                fine[(y * s.fine.0 + x) as usize * ch + c] +=
                    coarse[(sy * s.coarse.0 + sx) as usize * ch + c];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{download_f32, upload_f32};
    use crate::ops::run_steps;
    use crate::ops::testutil::{assert_close, ctx, Rng};

    #[test]
    fn odd_sizes() {
        let ctx = ctx();
        for (i, s) in [
            UpShape {
                fine: (13, 9),
                coarse: (7, 5),
                channels: 5,
            },
            UpShape {
                fine: (16, 10),
                coarse: (8, 5),
                channels: 17,
            },
            UpShape {
                fine: (1, 1),
                coarse: (1, 1),
                channels: 3,
            },
        ]
        .into_iter()
        .enumerate()
        {
            let mut rng = Rng(20 + i as u64);
            let coarse = rng.vec((s.coarse.0 * s.coarse.1 * s.channels) as usize);
            let mut fine = rng.vec((s.fine.0 * s.fine.1 * s.channels) as usize);
            let (cb, fb) = (upload_f32(ctx, "c", &coarse), upload_f32(ctx, "f", &fine));
            run_steps(ctx, &[step(ctx, &kernel(ctx), "up", s, &cb, &fb)]);
            let gpu = download_f32(ctx, &fb, fine.len()).unwrap();
            cpu(s, &coarse, &mut fine);
            assert_close(&gpu, &fine, 1e-6, &format!("{s:?}"));
        }
    }

    #[test]
    fn matches_torch_nearest_on_odd_ratio() {
        // F.interpolate(size=13) from 7 picks floor(i * 7 / 13): 0 0 1 1 2 2 3 3 4 4 5 5 6.
        let picks: Vec<u32> = (0..13).map(|i| i * 7 / 13).collect();
        assert_eq!(picks, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6]);
    }
}

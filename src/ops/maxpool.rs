//! Host side of `shaders/maxpool.wgsl`: k x k max pooling with stride and padding (ResNet's
//! stem maxpool, 3x3 stride 2 padding 1), channels-last.

use std::sync::Arc;

use super::{div_ceil, Kernel, Slot, Step, Workgroups};
use crate::gpu::GpuContext;

pub const SOURCE: &str = include_str!("../../shaders/maxpool.wgsl");

/// One pooling applied to one input size. `pad < ksize` so every window sees the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    pub in_w: u32,
    pub in_h: u32,
    pub channels: u32,
    pub ksize: u32,
    pub stride: u32,
    pub pad: u32,
}

impl PoolShape {
    /// PyTorch's `floor((in + 2 pad - k) / s) + 1` (ceil_mode off).
    pub fn out_w(&self) -> u32 {
        (self.in_w + 2 * self.pad - self.ksize) / self.stride + 1
    }
    pub fn out_h(&self) -> u32 {
        (self.in_h + 2 * self.pad - self.ksize) / self.stride + 1
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    in_w: u32,
    in_h: u32,
    channels: u32,
    out_w: u32,
    out_h: u32,
    ksize: u32,
    stride: u32,
    pad: u32,
    oy0: u32,
    rows: u32,
    src_base: u32,
    dst_base: u32,
}

pub(crate) fn kernel(ctx: &GpuContext) -> Arc<Kernel> {
    Kernel::new(
        ctx,
        "maxpool",
        SOURCE,
        "main",
        &[Slot::Uniform, Slot::Read, Slot::ReadWrite],
    )
}

fn params(
    s: PoolShape,
    (y0, y1): (u32, u32),
    (src_base, dst_base): (u32, u32),
) -> (Params, [u32; 3]) {
    debug_assert!(s.pad < s.ksize, "a window of padding only has no maximum");
    let params = Params {
        in_w: s.in_w,
        in_h: s.in_h,
        channels: s.channels,
        out_w: s.out_w(),
        out_h: s.out_h(),
        ksize: s.ksize,
        stride: s.stride,
        pad: s.pad,
        oy0: y0,
        rows: y1 - y0,
        src_base,
        dst_base,
    };
    (
        params,
        [div_ceil(s.channels, 16), div_ceil(s.out_w(), 4), y1 - y0],
    )
}

pub(crate) fn step(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    label: &str,
    s: PoolShape,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
) -> Step {
    let (params, workgroups) = params(s, (0, s.out_h()), (0, 0));
    Step::with_uniform(
        ctx,
        kernel,
        label,
        &params,
        &[src, dst],
        Workgroups::Direct(workgroups),
    )
}

/// The pooling over bands of output rows through buffer windows (see [`super::band`]).
pub(crate) fn banded_steps(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    limits: &super::band::BindLimits,
    label: &str,
    s: PoolShape,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
) -> Option<Vec<Step>> {
    let in_row = s.in_w as u64 * s.channels as u64 * 4;
    let out_row = s.out_w() as u64 * s.channels as u64 * 4;
    super::band::steps(
        ctx,
        kernel,
        limits,
        label,
        s.out_h(),
        &[src, dst],
        |y0, y1| {
            let (a, b) = super::band::input_rows(y0, y1, s.ksize, s.stride, s.pad, s.in_h);
            vec![
                Some((a as u64 * in_row, b as u64 * in_row)),
                Some((y0 as u64 * out_row, y1 as u64 * out_row)),
            ]
        },
        |y0, y1, off| params(s, (y0, y1), ((off[0] / 4) as u32, (off[1] / 4) as u32)),
    )
}

/// CPU reference: HWC in and out; taps in the padding are ignored (PyTorch pads with -inf).
pub fn cpu(s: PoolShape, src: &[f32]) -> Vec<f32> {
    let (ow, oh, ch) = (s.out_w() as i64, s.out_h() as i64, s.channels as usize);
    let (iw, ih, k, st, pad) = (
        s.in_w as i64,
        s.in_h as i64,
        s.ksize as i64,
        s.stride as i64,
        s.pad as i64,
    );
    let mut out = vec![f32::NEG_INFINITY; (ow * oh) as usize * ch];
    for oy in 0..oh {
        for ox in 0..ow {
            let o = (oy * ow + ox) as usize * ch;
            for ky in 0..k {
                let iy = oy * st + ky - pad;
                if iy < 0 || iy >= ih {
                    continue;
                }
                for kx in 0..k {
                    let ix = ox * st + kx - pad;
                    if ix < 0 || ix >= iw {
                        continue;
                    }
                    let i = (iy * iw + ix) as usize * ch;
                    for c in 0..ch {
                        out[o + c] = out[o + c].max(src[i + c]);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{download_f32, upload_f32};
    use crate::ops::run_steps;
    use crate::ops::testutil::{ctx, Rng};

    fn check(s: PoolShape, seed: u64) {
        let ctx = ctx();
        // Negative inputs only: a pooling that let a zero of the padding win would show.
        let mut rng = Rng(seed);
        let src: Vec<f32> = rng
            .vec((s.in_w * s.in_h * s.channels) as usize)
            .into_iter()
            .map(|v| v - 1.5)
            .collect();
        let n = (s.out_w() * s.out_h() * s.channels) as usize;
        let (sb, db) = (
            upload_f32(ctx, "s", &src),
            upload_f32(ctx, "d", &vec![9.0; n + 4]),
        );
        run_steps(ctx, &[step(ctx, &kernel(ctx), "maxpool", s, &sb, &db)]);
        let gpu = download_f32(ctx, &db, n + 4).unwrap();
        let cpu = cpu(s, &src);
        // A max is exact: GPU and CPU pick the same float.
        assert_eq!(&gpu[..n], &cpu[..], "{s:?}");
        assert!(cpu.iter().all(|v| *v < -0.4), "{s:?}: padding won");
        assert_eq!(&gpu[n..], &[9.0; 4], "{s:?}: wrote past the output");
    }

    #[test]
    fn resnet_stem_pool_on_odd_sizes() {
        for (i, (w, h, c)) in [(17, 11, 5), (16, 9, 64), (1, 1, 3), (2, 3, 7)]
            .into_iter()
            .enumerate()
        {
            let s = PoolShape {
                in_w: w,
                in_h: h,
                channels: c,
                ksize: 3,
                stride: 2,
                pad: 1,
            };
            // ceil(in / 2), the size the stride-2 convolutions produce too.
            assert_eq!((s.out_w(), s.out_h()), (w.div_ceil(2), h.div_ceil(2)));
            check(s, 40 + i as u64);
        }
    }

    #[test]
    fn other_windows() {
        check(
            PoolShape {
                in_w: 13,
                in_h: 7,
                channels: 6,
                ksize: 2,
                stride: 2,
                pad: 0,
            },
            50,
        );
        check(
            PoolShape {
                in_w: 9,
                in_h: 10,
                channels: 3,
                ksize: 5,
                stride: 1,
                pad: 2,
            },
            51,
        );
    }

    #[test]
    fn cpu_reference_by_hand() {
        // 3x3 image, one channel, 3x3/2 pad 1: windows centred on (0,0), (2,0), (0,2), (2,2).
        let src = [1.0, 5.0, 2.0, 4.0, 3.0, 9.0, 0.0, 8.0, 7.0];
        let s = PoolShape {
            in_w: 3,
            in_h: 3,
            channels: 1,
            ksize: 3,
            stride: 2,
            pad: 1,
        };
        assert_eq!(cpu(s, &src), [5.0, 9.0, 8.0, 9.0]);
    }
}

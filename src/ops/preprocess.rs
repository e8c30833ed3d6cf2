//! Host side of `shaders/preprocess.wgsl`: RGBA8 pixels to the BGR, mean-subtracted,
//! channels-last network input, resized bilinearly.

use std::sync::Arc;

use super::{div_ceil, Kernel, Slot, Step, Workgroups};
use crate::gpu::{uniform_buffer, GpuContext};

pub const SOURCE: &str = include_str!("../../shaders/preprocess.wgsl");

pub const MEAN_BGR: [f32; 3] = [104.0, 117.0, 123.0];

/// What the network expects as input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum InputFormat {
    /// Pytorch_Retinaface: B, G, R minus (104, 117, 123).
    #[default]
    BgrMinusMean,
    /// retina-face's net3: R, G, B, raw 0..255; a resized image is rounded to integers, as
    /// OpenCV's uint8 resize leaves it (its normalisation is inside the network).
    RgbRaw,
}

/// Source and destination sizes, the sampling step (source pixels per output pixel) and the
/// network's input format.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resample {
    pub src_w: u32,
    pub src_h: u32,
    pub dst_w: u32,
    pub dst_h: u32,
    pub scale_x: f32,
    pub scale_y: f32,
    pub format: InputFormat,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    src_w: u32,
    src_h: u32,
    dst_w: u32,
    dst_h: u32,
    scale_x: f32,
    scale_y: f32,
    format: u32,
    y0: u32,
    rows: u32,
    src_base: u32,
    dst_base: u32,
    _pad: u32,
}

pub(crate) fn kernel(ctx: &GpuContext) -> Arc<Kernel> {
    Kernel::new(
        ctx,
        "preprocess",
        SOURCE,
        "main",
        &[Slot::Uniform, Slot::Read, Slot::ReadWrite],
    )
}

/// The entry point that reads a texture instead of a pixel buffer.
pub(crate) fn texture_kernel(ctx: &GpuContext) -> Arc<Kernel> {
    Kernel::new(
        ctx,
        "preprocess",
        SOURCE,
        "from_texture",
        &[Slot::Uniform, Slot::Skip, Slot::ReadWrite, Slot::Texture],
    )
}

/// Preprocesses straight from `texture` (RGBA8 or BGRA8 unorm, `TEXTURE_BINDING` usage);
/// built per frame since the texture changes. An output larger than one binding is written
/// in bands through windows (see [`super::band`]).
pub(crate) fn texture_steps(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    limits: &super::band::BindLimits,
    r: Resample,
    texture: &wgpu::TextureView,
    dst: &wgpu::Buffer,
) -> Vec<Step> {
    let row = r.dst_w as u64 * 16;
    // One row of the network input always fits: the network's own bands, already built for
    // this input, are wider.
    let bands = super::band::split(r.dst_h, |y0, y1| {
        limits.fits(dst.size(), y0 as u64 * row, y1 as u64 * row)
    })
    .unwrap_or_else(|| (0..r.dst_h).map(|y| (y, y + 1)).collect());
    let steps = bands.into_iter().map(|(y0, y1)| {
        let (window, offset) = limits.window(dst, y0 as u64 * row, y1 as u64 * row);
        let (params, workgroups) = params(r, (y0, y1), (0, (offset / 16) as u32));
        let uniform = uniform_buffer(ctx, "preprocess", &params);
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("preprocess texture"),
            layout: &kernel.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::Buffer(window),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::TextureView(texture),
                },
            ],
        });
        Step {
            label: "preprocess".into(),
            kernel: kernel.clone(),
            bind_group,
            workgroups: Workgroups::Direct(workgroups),
        }
    });
    steps.collect()
}

fn params(
    r: Resample,
    (y0, y1): (u32, u32),
    (src_base, dst_base): (u32, u32),
) -> (Params, [u32; 3]) {
    let params = Params {
        src_w: r.src_w,
        src_h: r.src_h,
        dst_w: r.dst_w,
        dst_h: r.dst_h,
        scale_x: r.scale_x,
        scale_y: r.scale_y,
        format: r.format as u32,
        y0,
        rows: y1 - y0,
        src_base,
        dst_base,
        _pad: 0,
    };
    (params, [div_ceil(r.dst_w, 16), div_ceil(y1 - y0, 16), 1])
}

pub(crate) fn step(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    r: Resample,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
) -> Step {
    let (params, workgroups) = params(r, (0, r.dst_h), (0, 0));
    Step::with_uniform(
        ctx,
        kernel,
        "preprocess",
        &params,
        &[src, dst],
        Workgroups::Direct(workgroups),
    )
}

/// The source rows output rows `y0..y1` sample, with a row of margin either side for the
/// shader's f32 rounding of the sample position.
fn source_rows(r: &Resample, y0: u32, y1: u32) -> (u32, u32) {
    let at = |d: u32| ((d as f64 + 0.5) * r.scale_y as f64 - 0.5).floor();
    let first = (at(y0) - 1.0).max(0.0) as u32;
    let last = ((at(y1 - 1) + 3.0).max(1.0) as u32).min(r.src_h);
    (first.min(last.saturating_sub(1)), last)
}

/// Preprocessing over bands of output rows, reading only the source rows each band samples
/// and writing only its rows, through buffer windows (see [`super::band`]).
pub(crate) fn banded_steps(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    limits: &super::band::BindLimits,
    r: Resample,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
) -> Option<Vec<Step>> {
    let (src_row, dst_row) = (r.src_w as u64 * 4, r.dst_w as u64 * 16);
    super::band::steps(
        ctx,
        kernel,
        limits,
        "preprocess",
        r.dst_h,
        &[src, dst],
        |y0, y1| {
            let (a, b) = source_rows(&r, y0, y1);
            vec![
                Some((a as u64 * src_row, b as u64 * src_row)),
                Some((y0 as u64 * dst_row, y1 as u64 * dst_row)),
            ]
        },
        |y0, y1, off| params(r, (y0, y1), ((off[0] / 4) as u32, (off[1] / 16) as u32)),
    )
}

fn taps(d: u32, scale: f32, size: u32) -> (usize, usize, f32) {
    let f = (d as f32 + 0.5) * scale - 0.5;
    let mut i = f.floor();
    let mut t = f - i;
    if i < 0.0 {
        i = 0.0;
        t = 0.0;
    }
    let last = (size - 1) as f32;
    if i >= last {
        i = last;
        t = 0.0;
    }
    (i as usize, (i + 1.0).min(last) as usize, t)
}

/// CPU reference: RGBA8 bytes in, HWC out (B, G, R minus mean, 0, or R, G, B rounded, 0).
pub fn cpu(r: Resample, rgba: &[u8]) -> Vec<f32> {
    let px = |x: usize, y: usize, c: usize| rgba[(y * r.src_w as usize + x) * 4 + (2 - c)] as f32;
    let mut out = Vec::with_capacity((r.dst_w * r.dst_h * 4) as usize);
    for y in 0..r.dst_h {
        let (y0, y1, ty) = taps(y, r.scale_y, r.src_h);
        for x in 0..r.dst_w {
            let (x0, x1, tx) = taps(x, r.scale_x, r.src_w);
            let bgr: Vec<f32> = (0..3)
                .map(|c| {
                    let top = px(x0, y0, c) + (px(x1, y0, c) - px(x0, y0, c)) * tx;
                    let bottom = px(x0, y1, c) + (px(x1, y1, c) - px(x0, y1, c)) * tx;
                    top + (bottom - top) * ty
                })
                .collect();
            match r.format {
                InputFormat::BgrMinusMean => {
                    out.extend(bgr.iter().zip(MEAN_BGR).map(|(v, m)| v - m));
                }
                // WGSL's round() is half to even, as Rust's round_ties_even.
                InputFormat::RgbRaw => out.extend(bgr.iter().rev().map(|v| v.round_ties_even())),
            }
            out.push(0.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::download_f32;
    use crate::ops::run_steps;
    use crate::ops::testutil::{assert_close, ctx, Rng};
    use wgpu::util::DeviceExt;

    fn check(r: Resample, seed: u64) -> Vec<f32> {
        let ctx = ctx();
        let mut rng = Rng(seed);
        let rgba: Vec<u8> = (0..r.src_w * r.src_h * 4)
            .map(|_| ((rng.next_f32() + 1.0) * 127.9) as u8)
            .collect();
        let src = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: &rgba,
                usage: wgpu::BufferUsages::STORAGE,
            });
        let n = (r.dst_w * r.dst_h * 4) as usize;
        let dst = crate::gpu::upload_f32(ctx, "dst", &vec![0.0; n]);
        run_steps(ctx, &[step(ctx, &kernel(ctx), r, &src, &dst)]);
        let gpu = download_f32(ctx, &dst, n).unwrap();
        let cpu = cpu(r, &rgba);
        // Values are 0..255 minus the mean: an absolute 1e-3 grey level is the contract here.
        assert_close(&gpu, &cpu, 1e-5, &format!("{r:?}"));
        gpu
    }

    #[test]
    fn identity_is_exact() {
        let r = Resample {
            src_w: 13,
            src_h: 9,
            dst_w: 13,
            dst_h: 9,
            scale_x: 1.0,
            scale_y: 1.0,
            format: InputFormat::BgrMinusMean,
        };
        let gpu = check(r, 5);
        let ctx_rgba = {
            let mut rng = Rng(5);
            (0..13 * 9 * 4)
                .map(|_| ((rng.next_f32() + 1.0) * 127.9) as u8)
                .collect::<Vec<u8>>()
        };
        // Pixel (0,0): B channel of the first pixel, minus 104, bit-exact.
        assert_eq!(gpu[0], ctx_rgba[2] as f32 - 104.0);
        assert_eq!(gpu[2], ctx_rgba[0] as f32 - 123.0);
    }

    #[test]
    fn downscale_odd() {
        let r = Resample {
            src_w: 37,
            src_h: 23,
            dst_w: 10,
            dst_h: 6,
            scale_x: 37.0 / 10.0,
            scale_y: 23.0 / 6.0,
            format: InputFormat::BgrMinusMean,
        };
        check(r, 6);
    }

    #[test]
    fn package_format_is_rgb_raw_and_rounded() {
        let r = Resample {
            src_w: 17,
            src_h: 11,
            dst_w: 7,
            dst_h: 5,
            scale_x: 17.0 / 7.0,
            scale_y: 11.0 / 5.0,
            format: InputFormat::RgbRaw,
        };
        let gpu = check(r, 8);
        assert!(gpu
            .iter()
            .all(|v| v.fract() == 0.0 && (0.0..=255.0).contains(v)));
        let same = Resample {
            dst_w: 17,
            dst_h: 11,
            scale_x: 1.0,
            scale_y: 1.0,
            ..r
        };
        let gpu = check(same, 9);
        let mut rng = Rng(9);
        let rgba: Vec<u8> = (0..17 * 11 * 4)
            .map(|_| ((rng.next_f32() + 1.0) * 127.9) as u8)
            .collect();
        // R, G, B of the first pixel, untouched.
        assert_eq!(
            &gpu[..4],
            &[rgba[0] as f32, rgba[1] as f32, rgba[2] as f32, 0.0]
        );
    }

    #[test]
    fn upscale_clamps_borders() {
        let r = Resample {
            src_w: 5,
            src_h: 3,
            dst_w: 17,
            dst_h: 11,
            scale_x: 5.0 / 17.0,
            scale_y: 3.0 / 11.0,
            format: InputFormat::BgrMinusMean,
        };
        check(r, 7);
    }
}

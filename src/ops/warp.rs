//! Host side of `shaders/warp.wgsl`: affine crops of one RGBA8 image, every crop in one
//! dispatch, sampled bilinearly with clamp-to-edge (see the shader for the conventions).

#[cfg(feature = "native")]
use {
    super::{div_ceil, Kernel, Slot, Step, Workgroups},
    crate::gpu::{uniform_buffer, GpuContext},
    std::sync::Arc,
};

pub const SOURCE: &str = include_str!("../../shaders/warp.wgsl");

/// Most taps per axis when a crop shrinks the source (8 x 8 = 64 bilinear taps per pixel).
pub const MAX_SAMPLES: u32 = 8;

/// One crop: its size, where in it the image shows, and the affine map from its pixels to the
/// source's (pixel indices, centres at integers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropSpec {
    /// Output pixel (x, y) samples the source at
    /// `(m[0][0] x + m[0][1] y + m[0][2], m[1][0] x + m[1][1] y + m[1][2])`.
    pub matrix: [[f32; 3]; 2],
    pub width: u32,
    pub height: u32,
    /// `[x0, y0, x1, y1)`: pixels outside this rectangle are black (letterbox bands).
    pub inner: [u32; 4],
}

impl CropSpec {
    /// Taps per axis: enough that taps are at most one source pixel apart, capped.
    pub fn samples(&self) -> u32 {
        let m = &self.matrix;
        // Source pixels per output pixel along each output axis.
        let sx = m[0][0].hypot(m[1][0]);
        let sy = m[0][1].hypot(m[1][1]);
        (sx.max(sy).ceil() as u32).clamp(1, MAX_SAMPLES)
    }

    pub fn pixels(&self) -> u64 {
        self.width as u64 * self.height as u64
    }
}

/// Output layout of a dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutFormat {
    /// One u32 per pixel: R, G, B in the low three bytes, alpha 255.
    Rgba8,
    /// Three f32 per pixel, R, G, B in [0, 1].
    RgbF32,
}

impl OutFormat {
    /// u32 words per output pixel.
    pub fn words(self) -> u64 {
        match self {
            OutFormat::Rgba8 => 1,
            OutFormat::RgbF32 => 3,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    src_w: u32,
    src_h: u32,
    float_out: u32,
    n_crops: u32,
}

/// The shader's `Crop`: 64 bytes, the array stride of a 16-byte-aligned struct.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GpuCrop {
    m0: [f32; 4],
    m1: [f32; 4],
    size: [u32; 2],
    inner_lo: [u32; 2],
    inner_hi: [u32; 2],
    offset: u32,
    samples: u32,
}

// Crops are read back with a blocking wait: built only where that is possible.
#[cfg(feature = "native")]
pub(crate) fn kernel(ctx: &GpuContext) -> Arc<Kernel> {
    Kernel::new(
        ctx,
        "warp",
        SOURCE,
        "main",
        &[Slot::Uniform, Slot::Read, Slot::Read, Slot::ReadWrite],
    )
}

/// Where each crop starts in the output buffer (in u32 words), and the total.
pub fn offsets(crops: &[CropSpec], format: OutFormat) -> (Vec<u64>, u64) {
    let mut at = 0;
    let offsets = crops
        .iter()
        .map(|c| {
            let o = at;
            at += c.pixels() * format.words();
            o
        })
        .collect();
    (offsets, at)
}

/// One dispatch producing every crop of `crops` from the `src_w x src_h` packed RGBA8 image in
/// `src` into `dst` (laid out as [`offsets`] says).
#[cfg(feature = "native")]
pub(crate) fn step(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    (src_w, src_h): (u32, u32),
    crops: &[CropSpec],
    format: OutFormat,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
) -> Step {
    let (offsets, _) = offsets(crops, format);
    let gpu: Vec<GpuCrop> = crops
        .iter()
        .zip(&offsets)
        .map(|(c, &offset)| GpuCrop {
            m0: [c.matrix[0][0], c.matrix[0][1], c.matrix[0][2], 0.0],
            m1: [c.matrix[1][0], c.matrix[1][1], c.matrix[1][2], 0.0],
            size: [c.width, c.height],
            inner_lo: [c.inner[0], c.inner[1]],
            inner_hi: [c.inner[2], c.inner[3]],
            offset: offset as u32,
            samples: c.samples(),
        })
        .collect();
    let params = Params {
        src_w,
        src_h,
        float_out: (format == OutFormat::RgbF32) as u32,
        n_crops: crops.len() as u32,
    };
    let uniform = uniform_buffer(ctx, "warp", &params);
    let crop_buffer = wgpu::util::DeviceExt::create_buffer_init(
        &ctx.device,
        &wgpu::util::BufferInitDescriptor {
            label: Some("warp crops"),
            contents: bytemuck::cast_slice(&gpu),
            usage: wgpu::BufferUsages::STORAGE,
        },
    );
    // One grid sized for the largest crop, one layer per crop.
    let max_w = crops.iter().map(|c| c.width).max().unwrap_or(1);
    let max_h = crops.iter().map(|c| c.height).max().unwrap_or(1);
    Step {
        label: "warp".into(),
        kernel: kernel.clone(),
        bind_group: kernel.bind(ctx, &[&uniform, &crop_buffer, src, dst]),
        workgroups: Workgroups::Direct([
            div_ceil(max_w, 16),
            div_ceil(max_h, 16),
            crops.len() as u32,
        ]),
    }
}

/// Packs RGBA8 bytes into the shader's u32 words (R in the low byte): a no-op on the bytes.
pub fn pack_rgba(rgba: &[u8]) -> Vec<u32> {
    rgba.chunks_exact(4)
        .map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]))
        .collect()
}

fn texel(rgba: &[u8], w: u32, h: u32, x: i64, y: i64) -> [f32; 3] {
    let cx = x.clamp(0, w as i64 - 1) as usize;
    let cy = y.clamp(0, h as i64 - 1) as usize;
    let i = (cy * w as usize + cx) * 4;
    [rgba[i] as f32, rgba[i + 1] as f32, rgba[i + 2] as f32]
}

/// CPU reference of the shader's bilinear, clamp-to-edge sample (0..255 per channel).
pub fn bilinear(rgba: &[u8], w: u32, h: u32, x: f32, y: f32) -> [f32; 3] {
    let x = x.clamp(-1.0, w as f32);
    let y = y.clamp(-1.0, h as f32);
    let (fx, fy) = (x.floor(), y.floor());
    let (tx, ty) = (x - fx, y - fy);
    let (x0, y0) = (fx as i64, fy as i64);
    let mut out = [0f32; 3];
    let a = texel(rgba, w, h, x0, y0);
    let b = texel(rgba, w, h, x0 + 1, y0);
    let c = texel(rgba, w, h, x0, y0 + 1);
    let d = texel(rgba, w, h, x0 + 1, y0 + 1);
    for k in 0..3 {
        let top = a[k] + (b[k] - a[k]) * tx;
        let bottom = c[k] + (d[k] - c[k]) * tx;
        out[k] = top + (bottom - top) * ty;
    }
    out
}

/// CPU reference of one crop: RGB values in 0..255 (not rounded), row by row.
pub fn cpu(rgba: &[u8], w: u32, h: u32, crop: &CropSpec) -> Vec<[f32; 3]> {
    let m = &crop.matrix;
    let n = crop.samples();
    let mut out = Vec::with_capacity(crop.pixels() as usize);
    for oy in 0..crop.height {
        for ox in 0..crop.width {
            let inside = ox >= crop.inner[0]
                && oy >= crop.inner[1]
                && ox < crop.inner[2]
                && oy < crop.inner[3];
            let mut v = [0f32; 3];
            if inside {
                for j in 0..n {
                    for i in 0..n {
                        let x = ox as f32 + (i as f32 + 0.5) / n as f32 - 0.5;
                        let y = oy as f32 + (j as f32 + 0.5) / n as f32 - 0.5;
                        let s = bilinear(
                            rgba,
                            w,
                            h,
                            m[0][0] * x + m[0][1] * y + m[0][2],
                            m[1][0] * x + m[1][1] * y + m[1][2],
                        );
                        for k in 0..3 {
                            v[k] += s[k];
                        }
                    }
                }
                let nn = (n * n) as f32;
                v = v.map(|c| c / nn);
            }
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::read_buffer;
    use crate::ops::run_steps;
    use crate::ops::testutil::{ctx, Rng};
    use wgpu::util::DeviceExt;

    /// Runs `crops` on the GPU over a random `w x h` image and compares every crop with the
    /// CPU reference: RGBA8 within one grey level (rounding), f32 within 1e-4.
    fn check(w: u32, h: u32, crops: &[CropSpec], seed: u64) {
        let ctx = ctx();
        let mut rng = Rng(seed);
        let rgba: Vec<u8> = (0..w * h * 4)
            .map(|_| ((rng.next_f32() + 1.0) * 127.9) as u8)
            .collect();
        let src = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: &rgba,
                usage: wgpu::BufferUsages::STORAGE,
            });
        let kernel = kernel(ctx);
        for format in [OutFormat::Rgba8, OutFormat::RgbF32] {
            let (offsets, words) = offsets(crops, format);
            let dst = crate::gpu::storage_buffer(ctx, "dst", words * 4);
            run_steps(
                ctx,
                &[step(ctx, &kernel, (w, h), crops, format, &src, &dst)],
            );
            let bytes = read_buffer(ctx, &dst, words * 4).unwrap();
            let gpu: &[u32] = bytemuck::cast_slice(&bytes);
            for (ci, (crop, &off)) in crops.iter().zip(&offsets).enumerate() {
                let cpu = cpu(&rgba, w, h, crop);
                for (i, want) in cpu.iter().enumerate() {
                    for k in 0..3 {
                        let (got, tol, want) = match format {
                            OutFormat::Rgba8 => {
                                let word = gpu[off as usize + i];
                                let got = ((word >> (8 * k)) & 255) as f32;
                                assert_eq!(word >> 24, 255, "alpha");
                                (got, 1.0, want[k])
                            }
                            OutFormat::RgbF32 => {
                                let got = f32::from_bits(gpu[off as usize + i * 3 + k]);
                                (got, 1e-4, want[k] / 255.0)
                            }
                        };
                        assert!(
                            (got - want).abs() <= tol,
                            "{format:?} crop {ci} pixel {i} channel {k}: gpu {got} cpu {want}"
                        );
                    }
                }
            }
        }
    }

    fn rotation(angle: f32, scale: f32, centre: [f32; 2], w: u32, h: u32) -> [[f32; 3]; 2] {
        let (s, c) = angle.sin_cos();
        let (a, b) = (c * scale, s * scale);
        // Output centre maps to `centre`.
        let (ox, oy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
        [
            [a, -b, centre[0] - a * ox + b * oy],
            [b, a, centre[1] - b * ox - a * oy],
        ]
    }

    #[test]
    fn identity_copies_exactly() {
        let crop = CropSpec {
            matrix: [[1.0, 0.0, 3.0], [0.0, 1.0, 2.0]],
            width: 9,
            height: 7,
            inner: [0, 0, 9, 7],
        };
        check(17, 13, &[crop], 1);
        // And the reference itself is a plain copy.
        let rgba: Vec<u8> = (0..17 * 13 * 4).map(|i| (i % 251) as u8).collect();
        let out = cpu(&rgba, 17, 13, &crop);
        let src = ((2 * 17 + 3) * 4) as usize;
        assert_eq!(
            out[0],
            [rgba[src] as f32, rgba[src + 1] as f32, rgba[src + 2] as f32]
        );
    }

    #[test]
    fn rotated_scaled_letterboxed_and_off_image_crops_in_one_dispatch() {
        let (w, h) = (61, 45);
        let crops = [
            // Rotated by 37 degrees, half-pixel scale, inside the image.
            CropSpec {
                matrix: rotation(0.65, 0.5, [30.3, 22.7], 23, 19),
                width: 23,
                height: 19,
                inner: [0, 0, 23, 19],
            },
            // Shrinks by 2.6 (3 x 3 taps), letterboxed left and right.
            CropSpec {
                matrix: rotation(-0.3, 2.6, [28.0, 20.0], 15, 11),
                width: 15,
                height: 11,
                inner: [3, 0, 12, 11],
            },
            // Mostly off the image: clamp to edge.
            CropSpec {
                matrix: rotation(1.9, 1.3, [58.0, -4.0], 13, 29),
                width: 13,
                height: 29,
                inner: [0, 2, 13, 27],
            },
        ];
        assert_eq!(crops[1].samples(), 3);
        check(w, h, &crops, 2);
    }

    #[test]
    fn letterbox_bands_are_black() {
        let crop = CropSpec {
            matrix: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
            width: 8,
            height: 6,
            inner: [2, 1, 6, 5],
        };
        let rgba = vec![200u8; 10 * 10 * 4];
        let out = cpu(&rgba, 10, 10, &crop);
        assert_eq!(out[0], [0.0; 3]);
        assert_eq!(out[8 + 2], [200.0; 3]);
        check(10, 10, &[crop], 3);
    }
}

//! Where the tests find the shared weights and golden data, and a detector shared by the tests
//! of one binary (opening lavapipe and compiling pipelines is the slow part).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use retinaface::model::weights::Weights;
use retinaface::{Detector, GpuContext, KernelPath};

/// `RETINAFACE_TESTDATA`, else `../shared/testdata` beside the checkout.
pub fn testdata() -> PathBuf {
    std::env::var_os("RETINAFACE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata"))
        })
}

/// `RETINAFACE_WEIGHTS`, else `../shared/weights/retinaface_mnet025.safetensors`.
pub fn weights_path() -> PathBuf {
    std::env::var_os("RETINAFACE_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../shared/weights/retinaface_mnet025.safetensors"
            ))
        })
}

pub fn detector() -> &'static Detector {
    static D: OnceLock<Detector> = OnceLock::new();
    D.get_or_init(|| {
        let w = Weights::load(&weights_path()).expect("shared weights");
        let ctx = GpuContext::new().expect("tests need a wgpu adapter (lavapipe on CI)");
        Detector::with_context(ctx, &w).expect("the weights fit the device")
    })
}

/// A detector on the portable kernels (no subgroups), so CI's adapter, which has subgroups,
/// tests the family that WebGPU-without-subgroups and GL users run too.
pub fn portable_detector() -> &'static Detector {
    static D: OnceLock<Detector> = OnceLock::new();
    D.get_or_init(|| {
        let w = Weights::load(&weights_path()).expect("shared weights");
        let ctx = GpuContext::new().expect("tests need a wgpu adapter (lavapipe on CI)");
        Detector::with_kernel_path(ctx, &w, KernelPath::Portable).unwrap()
    })
}

/// The default detector and, where it is not already portable, the portable one.
pub fn both_families() -> Vec<&'static Detector> {
    let best = detector();
    if best.kernel_path() == KernelPath::Portable {
        // Only where the adapter lacks subgroups; lavapipe (CI) has them.
        vec![best]
    } else {
        vec![best, portable_detector()]
    }
}

/// Reads a float32 tensor from a safetensors file: (shape, data).
pub fn read_tensor(path: &std::path::Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let data = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), data)
}

/// NCHW (batch 1) to HWC.
pub fn nchw_to_hwc(data: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0f32; data.len()];
    for ci in 0..c {
        for y in 0..h {
            for x in 0..w {
                out[(y * w + x) * c + ci] = data[(ci * h + y) * w + x];
            }
        }
    }
    out
}

/// Largest |a - b| divided by the largest |b|: the error relative to the output's magnitude
/// (element-wise relative error is meaningless for values near zero after long sums).
pub fn scaled_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// `img` in a new texture of `format` (RGBA8 or BGRA8 unorm) on `ctx`'s device, as a frame
/// already on the GPU would be.
pub fn upload_texture(
    ctx: &GpuContext,
    img: &image::RgbaImage,
    format: wgpu::TextureFormat,
) -> wgpu::Texture {
    let (w, h) = img.dimensions();
    let tex = ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("frame"),
        size: wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    let mut bytes = img.as_raw().clone();
    if format == wgpu::TextureFormat::Bgra8Unorm {
        bytes.chunks_exact_mut(4).for_each(|p| p.swap(0, 2));
    }
    ctx.queue.write_texture(
        tex.as_image_copy(),
        &bytes,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(4 * w),
            rows_per_image: Some(h),
        },
        wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
    );
    tex
}

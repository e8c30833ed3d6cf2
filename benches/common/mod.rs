//! What the soak and thread benchmarks share: arguments, the detector, the photos, RSS.
#![allow(dead_code)]

use std::path::PathBuf;

use retinaface::model::weights::Weights;
use retinaface::{DetectOptions, Detector, Face, GpuContext, Resize};

/// The value after `--name`, parsed; `default` when absent. A value that does not parse
/// stops the run with a message rather than silently using the default.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        None => default,
        Some(i) => match args.get(i + 1).map(|v| v.parse()) {
            Some(Ok(v)) => v,
            _ => {
                eprintln!("{name} needs a number");
                std::process::exit(2);
            }
        },
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default adapter and the shared MobileNet0.25 weights (`RETINAFACE_WEIGHTS` overrides).
pub fn detector() -> Detector {
    let weights = std::env::var_os("RETINAFACE_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/weights/retinaface_mnet025.safetensors"));
    let ctx = GpuContext::new().expect("a wgpu adapter");
    if let Some(info) = &ctx.adapter_info {
        println!(
            "adapter: {} ({:?}, {:?}), kernels {:?}",
            info.name,
            info.device_type,
            info.backend,
            ctx.kernel_path()
        );
    }
    Detector::with_context(ctx, &Weights::load(&weights).expect("weights")).expect("detector")
}

/// Threshold 0.5 (more faces to compare than the default 0.9) at the image's own size.
pub fn opts() -> DetectOptions {
    DetectOptions {
        threshold: 0.5,
        resize: Resize::Original,
        ..Default::default()
    }
}

/// Test photo `name` resized to `w x h` (Triangle filter).
pub fn photo(name: &str, w: u32, h: u32) -> image::RgbaImage {
    let img = retinaface::image_io::load_path(&root().join("../shared/testdata/images").join(name))
        .expect("test photo");
    image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle)
}

/// Each image's faces, detected one at a time: what every other way of running must give.
pub fn sequential(d: &Detector, imgs: &[image::RgbaImage]) -> Vec<Vec<Face>> {
    imgs.iter()
        .map(|i| d.detect_with(i, &opts()).expect("detect"))
        .collect()
}

/// This process's resident memory in MiB (on lavapipe it includes the "GPU" buffers).
pub fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

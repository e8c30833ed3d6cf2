//! End-to-end detection speed:
//! `cargo bench --bench detect [-- --runs N --image PATH --sizes 640x640,1920x1080 --layers]`.
//!
//! For each network input size: wall time and process CPU time per detect after warm-up
//! (single image, one submit each), then one detect with a GPU timestamp around every
//! dispatch, summed per shader. Weights: `RETINAFACE_WEIGHTS` or `../shared/weights`.

use std::path::PathBuf;
use std::time::Instant;

use retinaface::model::weights::Weights;
use retinaface::profile::process_cpu_ms;
use retinaface::{DetectOptions, Detector, GpuContext, Resize};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let runs: u32 = arg("--runs").and_then(|r| r.parse().ok()).unwrap_or(10);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let image = arg("--image")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/testdata/images/worlds_largest_selfie.jpg"));
    let weights = std::env::var_os("RETINAFACE_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/weights/retinaface_mnet025.safetensors"));
    let sizes = arg("--sizes").unwrap_or_else(|| "640x640,1920x1080".into());
    let layers = std::env::args().any(|a| a == "--layers");

    let ctx = GpuContext::new().expect("a wgpu adapter");
    if let Some(info) = &ctx.adapter_info {
        println!(
            "adapter: {} ({:?}, {:?})",
            info.name, info.device_type, info.backend
        );
    }
    let detector =
        Detector::with_context(ctx, &Weights::load(&weights).expect("weights")).expect("detector");
    println!(
        "kernels: {:?} (RETINAFACE_KERNELS=portable for the portable family)",
        detector.kernel_path()
    );
    let photo = retinaface::image_io::load_path(&image).expect("image");
    let opts = DetectOptions {
        resize: Resize::Original,
        ..Default::default()
    };
    for size in sizes.split(',') {
        let (w, h) = size.split_once('x').expect("WxH");
        let (w, h): (u32, u32) = (w.parse().unwrap(), h.parse().unwrap());
        let img = image::imageops::resize(&photo, w, h, image::imageops::FilterType::Triangle);
        // Warm-up: the plan is built and lavapipe compiles each pipeline at its first dispatch.
        for _ in 0..2 {
            detector.detect_with(&img, &opts).unwrap();
        }
        let cpu0 = process_cpu_ms();
        let t0 = Instant::now();
        for _ in 0..runs {
            detector.detect_with(&img, &opts).unwrap();
        }
        let wall = t0.elapsed().as_secs_f64() * 1e3 / runs as f64;
        let cpu = cpu0.and_then(|c0| process_cpu_ms().map(|c1| (c1 - c0) / runs as f64));
        let (faces, profile) = detector.detect_profiled(&img, &opts).unwrap();
        let cpu = cpu.map_or("n/a".into(), |c| format!("{c:.1}"));
        println!("\n{w}x{h}: {} faces; wall {wall:.2} ms/detect, process CPU {cpu} ms/detect ({runs} runs)", faces.len());
        let gpu = profile.total_ms();
        println!(
            "GPU timestamps (each dispatch in its own pass): {gpu:.2} ms; wall / GPU = {:.2}",
            wall / gpu.max(1e-9)
        );
        println!("{profile}");
        if layers {
            let mut steps = profile.steps.clone();
            steps.sort_by(|a, b| b.ms.total_cmp(&a.ms));
            for s in steps
                .iter()
                .take(arg("--top").and_then(|t| t.parse().ok()).unwrap_or(15))
            {
                println!("  {:<28} {:<12} {:>8.3} ms", s.label, s.shader, s.ms);
            }
        }
    }
}

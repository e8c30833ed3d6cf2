//! Streaming: `cargo bench --bench stream [-- --frames N --size WxH --soak N]`.
//!
//! 1. Throughput at one size: frames decoded from JPEG bytes and detected one at a time
//!    (decode, upload, compute, read back, in turn) against a stream with 3 frames in flight,
//!    where decoding frame n+1 overlaps the GPU's work on frame n.
//! 2. Soak: `--soak` frames (default 2000) cycling through 8 sizes, streamed; the process's
//!    resident memory (which on a software adapter also holds the "GPU" buffers) and the
//!    number of cached plans are printed every 250 frames: both must stay flat.

use std::path::PathBuf;
use std::time::Instant;

use retinaface::model::weights::Weights;
use retinaface::{DetectOptions, Detector, GpuContext, Resize};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn jpeg(img: &image::RgbaImage) -> Vec<u8> {
    let rgb = image::DynamicImage::ImageRgba8(img.clone()).to_rgb8();
    let mut out = std::io::Cursor::new(Vec::new());
    rgb.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn main() {
    let frames: usize = arg("--frames").and_then(|v| v.parse().ok()).unwrap_or(20);
    let soak: usize = arg("--soak").and_then(|v| v.parse().ok()).unwrap_or(2000);
    let (w, h) = arg("--size")
        .and_then(|s| {
            s.split_once('x')
                .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))
        })
        .unwrap_or((640u32, 640u32));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let weights = std::env::var_os("RETINAFACE_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/weights/retinaface_mnet025.safetensors"));
    let ctx = GpuContext::new().expect("a wgpu adapter");
    if let Some(info) = &ctx.adapter_info {
        println!(
            "adapter: {} ({:?}, {:?})",
            info.name, info.device_type, info.backend
        );
    }
    let detector =
        Detector::with_context(ctx, &Weights::load(&weights).expect("weights")).expect("detector");
    let photo = retinaface::image_io::load_path(
        &root.join("../shared/testdata/images/worlds_largest_selfie.jpg"),
    )
    .unwrap();
    let opts = DetectOptions {
        resize: Resize::Original,
        ..Default::default()
    };

    let frame = jpeg(&image::imageops::resize(
        &photo,
        w,
        h,
        image::imageops::FilterType::Triangle,
    ));
    let decode = || retinaface::image_io::load_bytes(&frame, None).unwrap();
    detector.detect_with(&decode(), &opts).unwrap();
    let t0 = Instant::now();
    for _ in 0..frames {
        detector.detect_with(&decode(), &opts).unwrap();
    }
    let single = frames as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let mut stream = detector.stream(&opts, 3);
    let mut done = 0;
    for _ in 0..frames {
        done += stream.push(&decode()).unwrap().is_some() as usize;
    }
    done += stream.finish().len();
    let streamed = done as f64 / t0.elapsed().as_secs_f64();
    println!("{w}x{h}, {frames} frames decoded from JPEG each: one at a time {single:.2} images/s, stream (3 in flight) {streamed:.2} images/s, ratio {:.2}", streamed / single);

    let sizes: Vec<image::RgbaImage> = (0..8u32)
        .map(|i| {
            image::imageops::resize(
                &photo,
                160 + 40 * i,
                120 + 24 * i,
                image::imageops::FilterType::Triangle,
            )
        })
        .collect();
    let mut stream = detector.stream(&opts, 3);
    let t0 = Instant::now();
    println!("soak: {soak} frames cycling through 8 sizes (160x120 .. 440x288), 3 in flight");
    for i in 0..soak {
        let _ = stream.push(&sizes[i % sizes.len()]).unwrap();
        if i % 250 == 0 || i + 1 == soak {
            println!(
                "  frame {i:>5}: RSS {:.1} MiB, cached plans {}, {:.1} s",
                rss_mib(),
                detector.cached_plans(),
                t0.elapsed().as_secs_f64()
            );
        }
    }
    stream.finish();
}

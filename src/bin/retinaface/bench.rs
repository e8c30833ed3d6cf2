//! `retinaface bench`: wall and GPU time per detection, and `--tune`'s kernel choices.

use std::path::PathBuf;

use clap::Args;

use crate::console::outln;
use retinaface::{DetectOptions, Detector, Resize};

use crate::fatal::Fatal;

/// `retinaface bench --help`'s closing text.
pub const AFTER_HELP: &str = "Example:\n  retinaface bench --runs 20 --resize original photo.jpg";

#[derive(Args)]
pub struct BenchArgs {
    image: PathBuf,
    /// Timed detections after two warm-up runs.
    #[arg(long, default_value_t = 10)]
    runs: u32,
    #[arg(long, default_value = "default")]
    resize: String,
    /// Resize the decoded image to exactly WxH on the CPU first (e.g. 1920x1080), then run
    /// at that size: benchmarks a given network input size with a real photo.
    #[arg(long, value_parser = parse_size)]
    size: Option<(u32, u32)>,
    #[arg(long)]
    weights: Option<PathBuf>,
    /// mnet025, resnet50 or retinaface: whose file to look for in ./weights and the cache
    /// (and, for retinaface, where deepface keeps retinaface.h5).
    #[arg(long, default_value = "mnet025")]
    model: retinaface::Model,
    /// First time every conv kernel variant on every layer shape of this network input size
    /// on this GPU, keep the fastest and save the choices for this adapter in the per-user
    /// cache (tuning.json), where every later run on the adapter finds them.
    #[arg(long)]
    tune: bool,
    /// With --tune: stop measuring new layer shapes after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    tune_budget: f64,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or("expected WxH, e.g. 1920x1080")?;
    let n = |v: &str| v.parse::<u32>().ok().filter(|n| (16..=16384).contains(n));
    Ok((n(w).ok_or("bad width")?, n(h).ok_or("bad height")?))
}

pub fn run(args: BenchArgs) -> Result<bool, Fatal> {
    let mut options = DetectOptions {
        resize: args.resize.parse::<Resize>()?,
        ..Default::default()
    };
    let detector = Detector::for_model(args.model, args.weights.as_deref())?;
    let mut image = retinaface::image_io::load_path(&args.image)?;
    if let Some((w, h)) = args.size {
        image = image::imageops::resize(&image, w, h, image::imageops::FilterType::Triangle);
        options.resize = Resize::Original;
    }
    if let Some(info) = &detector.context().adapter_info {
        eprintln!(
            "adapter: {} ({:?}, {:?}); {:?} kernels",
            info.name,
            info.device_type,
            info.backend,
            detector.kernel_path()
        );
    }
    if args.tune {
        tune(&detector, &options, &image, args.tune_budget)?;
    }
    // The first runs compile shaders (lavapipe compiles at first dispatch) and build the plan.
    for _ in 0..2 {
        detector.detect_with(&image, &options)?;
    }
    let start = std::time::Instant::now();
    let mut faces = 0;
    for _ in 0..args.runs.max(1) {
        faces = detector.detect_with(&image, &options)?.len();
    }
    let wall = start.elapsed().as_secs_f64() * 1e3 / args.runs.max(1) as f64;
    let s = options.scaling(image.width(), image.height());
    outln!(
        "image {}x{}, network input {}x{}, {faces} faces",
        image.width(),
        image.height(),
        s.net_w,
        s.net_h
    );
    outln!(
        "wall time per detect: {wall:.2} ms ({} runs)",
        args.runs.max(1)
    );
    let (shared, own) = detector.activation_bytes(s.net_w, s.net_h);
    outln!(
        "activation buffers: {:.1} MiB ({:.1} MiB if every tensor had its own)",
        shared as f64 / (1 << 20) as f64,
        own as f64 / (1 << 20) as f64
    );
    let (_, profile) = detector.detect_profiled(&image, &options)?;
    if profile.steps.is_empty() {
        outln!("no GPU timestamps on this adapter");
    } else {
        outln!("GPU time per shader (one detect, each dispatch in its own timestamped pass):\n{profile}");
    }
    Ok(true)
}

/// `bench --tune`: measures, prints each layer shape's candidates, saves the choices.
fn tune(
    detector: &Detector,
    options: &DetectOptions,
    image: &image::RgbaImage,
    budget_s: f64,
) -> Result<(), Fatal> {
    let s = options.scaling(image.width(), image.height());
    let budget = std::time::Duration::from_secs_f64(budget_s.max(0.0));
    let t0 = std::time::Instant::now();
    let report = detector.tune(s.net_w, s.net_h, budget)?;
    outln!(
        "tuned {} conv shapes at {}x{} in {:.1} s (ms per dispatch; * = chosen, r = the rule table's)",
        report.len(),
        s.net_w,
        s.net_h,
        t0.elapsed().as_secs_f64()
    );
    for m in &report {
        let cells: Vec<String> = m
            .candidates
            .iter()
            .map(|(v, ms)| {
                let mark = match (*v == m.chosen, *v == m.rule) {
                    (true, true) => "*r",
                    (true, false) => "*",
                    (false, true) => "r",
                    _ => "",
                };
                format!("{}{mark} {ms:.3}", v.name())
            })
            .collect();
        outln!(
            "  {:<22} {:>4}x{:<4} {:>4}->{:<4} k{} s{}  {}",
            m.layer,
            m.shape.in_w,
            m.shape.in_h,
            m.shape.in_c,
            m.shape.out_c,
            m.shape.ksize,
            m.shape.stride,
            cells.join("  ")
        );
    }
    match retinaface::tuning::Tuning::default_file() {
        Some(file) => {
            detector.tuning().save(&file, &detector.tuning_key())?;
            outln!(
                "saved for {:?} in {}",
                detector.tuning_key(),
                file.display()
            );
        }
        None => eprintln!("no per-user cache directory (set RETINAFACE_CACHE_DIR): not saved"),
    }
    Ok(())
}

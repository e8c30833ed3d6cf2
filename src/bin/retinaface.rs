//! `retinaface`: detect faces from the command line, printing `retina-face`-style JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use retinaface::{DetectOptions, Detector, Face, Resize};
use serde_json::{json, Map, Value};

#[derive(Parser)]
#[command(
    name = "retinaface",
    version,
    about = "RetinaFace face detection on the GPU (WGSL compute shaders via wgpu)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Detect faces and print them as JSON (one image) or JSON lines (several images).
    #[command(
        after_help = "Examples:\n  retinaface detect photo.jpg\n  retinaface detect --threshold 0.5 --resize original a.jpg b.png"
    )]
    Detect(DetectArgs),
    /// Time detection on one image: wall time per detect after warm-up, and GPU time per shader.
    #[command(after_help = "Example:\n  retinaface bench --runs 20 --resize original photo.jpg")]
    Bench(BenchArgs),
    /// Convert a PyTorch checkpoint (.pth, legacy or zip) to safetensors, without Python.
    #[command(
        after_help = "Example:\n  retinaface convert mobilenet0.25_Final.pth retinaface_mnet025.safetensors\n\nOnly a state dict's tensors are read: a checkpoint that refers to any other Python\nglobal is refused, so converting never runs code. Prints the model and the content hash.\n\nExit codes: 0 converted, 2 unreadable, unsafe or not a RetinaFace state dict."
    )]
    Convert(ConvertArgs),
    /// Download the published weights, verify them, convert and install them in the cache.
    #[command(
        after_help = "Examples:\n  retinaface fetch-weights            (mnet025, 1.7 MB)\n  retinaface fetch-weights resnet50   (105 MB)\n\nInstalls MODEL's .safetensors into the per-user cache (RETINAFACE_CACHE_DIR, --cache-dir),\nwhere `detect --model MODEL` finds it. A truncated or wrong download installs nothing.\n\nExit codes: 0 installed (or already installed), 2 download or verification failed."
    )]
    FetchWeights(FetchWeightsArgs),
}

#[derive(Args)]
struct BenchArgs {
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
    /// mnet025 or resnet50: whose file to look for in ./weights and the cache.
    #[arg(long, default_value = "mnet025")]
    model: retinaface::Model,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or("expected WxH, e.g. 1920x1080")?;
    let n = |v: &str| v.parse::<u32>().ok().filter(|n| (16..=16384).contains(n));
    Ok((n(w).ok_or("bad width")?, n(h).ok_or("bad height")?))
}

#[derive(Args)]
struct DetectArgs {
    /// Image files (JPEG or PNG).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Keep faces scoring above this.
    #[arg(long, default_value_t = 0.9)]
    threshold: f32,
    /// IoU above which overlapping boxes are suppressed.
    #[arg(long = "nms", default_value_t = 0.4)]
    nms_threshold: f32,
    /// `default` (short side 1024, long side at most 1980), `original`, or `max:N`.
    #[arg(long, default_value = "default")]
    resize: String,
    /// With the default resize, never enlarge small images.
    #[arg(long)]
    no_upscale: bool,
    /// The weights file (.safetensors); else RETINAFACE_WEIGHTS, ./weights, the user cache.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Whose file to look for in ./weights and the cache: mnet025 or resnet50 (the file's
    /// tensors decide the network).
    #[arg(long, default_value = "mnet025")]
    model: retinaface::Model,
}

/// The `retina-face` package's output: `{"face_1": {"score", "facial_area", "landmarks"}}`,
/// boxes as integers (truncated, as its `astype(int)`), landmarks as floats.
fn faces_json(faces: &[Face]) -> Value {
    let mut map = Map::new();
    for (i, f) in faces.iter().enumerate() {
        let l = &f.landmarks;
        map.insert(
            format!("face_{}", i + 1),
            json!({
                "score": f.score,
                "facial_area": f.facial_area.map(|v| v as i64),
                "landmarks": {
                    "right_eye": l.right_eye,
                    "left_eye": l.left_eye,
                    "nose": l.nose,
                    "mouth_right": l.mouth_right,
                    "mouth_left": l.mouth_left,
                },
            }),
        );
    }
    Value::Object(map)
}

fn detect(args: DetectArgs) -> Result<bool, retinaface::Error> {
    let options = DetectOptions {
        threshold: args.threshold,
        nms_threshold: args.nms_threshold,
        resize: args.resize.parse::<Resize>()?,
        allow_upscaling: !args.no_upscale,
    };
    options.validate()?;
    let detector =
        Detector::for_model(args.model, args.weights.as_deref())?.with_options(options)?;
    let single = args.images.len() == 1;
    let mut all_ok = true;
    for path in &args.images {
        match detector.detect_path(path) {
            Ok(faces) if single => println!(
                "{}",
                serde_json::to_string_pretty(&faces_json(&faces)).unwrap_or_default()
            ),
            Ok(faces) => println!("{}", json!({ "image": path, "faces": faces_json(&faces) })),
            Err(e) => {
                eprintln!("retinaface: {}: {e}", path.display());
                all_ok = false;
            }
        }
    }
    Ok(all_ok)
}

fn bench(args: BenchArgs) -> Result<bool, retinaface::Error> {
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
            "adapter: {} ({:?}, {:?})",
            info.name, info.device_type, info.backend
        );
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
    println!(
        "image {}x{}, network input {}x{}, {faces} faces",
        image.width(),
        image.height(),
        s.net_w,
        s.net_h
    );
    println!(
        "wall time per detect: {wall:.2} ms ({} runs)",
        args.runs.max(1)
    );
    let (_, profile) = detector.detect_profiled(&image, &options)?;
    if profile.steps.is_empty() {
        println!("no GPU timestamps on this adapter");
    } else {
        println!("GPU time per shader (one detect, each dispatch in its own timestamped pass):\n{profile}");
    }
    Ok(true)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Detect(args) => detect(args),
        Command::Bench(args) => bench(args),
        Command::Convert(args) => convert(args),
        Command::FetchWeights(args) => fetch_weights(args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        // Some images failed; each was reported on stderr.
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("retinaface: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(Args)]
struct ConvertArgs {
    /// A PyTorch checkpoint holding a RetinaFace state dict (float32).
    input: PathBuf,
    /// The safetensors file to write (replaced atomically).
    output: PathBuf,
}

#[derive(Args)]
struct FetchWeightsArgs {
    /// mnet025 (MobileNet0.25) or resnet50 (ResNet50).
    #[arg(default_value = "mnet025")]
    model: retinaface::Model,
    /// Install into this directory instead of the per-user cache (or set RETINAFACE_CACHE_DIR).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Download from this URL, e.g. a mirror (or set RETINAFACE_WEIGHTS_URL).
    #[arg(long)]
    url: Option<String>,
    /// Download again even if verified weights are installed.
    #[arg(long)]
    force: bool,
}

/// What a content hash says about the weights, for the convert and fetch-weights reports.
fn hash_note(model: retinaface::Model, hash: &str) -> String {
    match retinaface::fetch::expected_content_hash(model) {
        Some(h) if h == hash => format!("the published {model} weights"),
        Some(_) => format!("not the published {model} weights (fine-tuned or other weights)"),
        None => format!(
            "no published {model} hash to compare with: every tensor was checked for presence, shape and finite values"
        ),
    }
}

fn convert<E: From<retinaface::Error>>(args: ConvertArgs) -> Result<bool, E> {
    let c = retinaface::model::pth::convert_file(&args.input, &args.output)?;
    println!(
        "{} -> {}: {} ({}), {} tensors",
        args.input.display(),
        args.output.display(),
        c.model,
        c.model.description(),
        c.tensors
    );
    println!(
        "content hash {} ({})",
        c.content_hash,
        hash_note(c.model, &c.content_hash)
    );
    Ok(true)
}

fn fetch_weights<E: From<retinaface::Error>>(args: FetchWeightsArgs) -> Result<bool, E> {
    use retinaface::fetch::{fetch_weights, resolve_url, FetchOptions};
    let opts = FetchOptions {
        url: args.url,
        cache_dir: args.cache_dir,
        progress: true,
        force: args.force,
    };
    eprintln!(
        "fetching {} weights from {}",
        args.model,
        resolve_url(args.model, &opts)
    );
    let f = fetch_weights(args.model, &opts)?;
    if f.downloaded == 0 {
        println!("already installed: {}", f.path.display());
    } else {
        println!(
            "installed {} ({} bytes downloaded)",
            f.path.display(),
            f.downloaded
        );
    }
    println!(
        "content hash {} ({})",
        f.content_hash,
        hash_note(f.model, &f.content_hash)
    );
    Ok(true)
}

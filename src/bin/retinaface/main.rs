//! `retinaface`: detect faces from the command line (`retina-face`-style JSON, JSON lines or
//! CSV), crop them aligned (`extract`), draw them (`annotate`), and show the GPU and weights in
//! use (`info`).
//!
//! Each subcommand is a module holding its `Args` struct, its `AFTER_HELP` text and a `run`
//! function returning `Result<bool, Fatal>`: `Ok(true)` every image done (exit 0), `Ok(false)`
//! some image failed and was reported (exit 1), `Err` nothing sensible can run (exit 2). A new
//! subcommand adds its module, a variant to `Command` and one line in `main`. The modules
//! without a command hold what several commands share.

mod console;
mod detection_args;
mod fatal;
mod formats;
mod inputs;
mod out_files;

mod annotate;
mod bench;
mod convert;
mod detect;
mod detect_video;
mod eval;
mod extract;
mod fetch_weights;
mod info;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const AFTER_HELP: &str = "\
Examples:
  retinaface detect photo.jpg                           faces as retina-face's JSON object
  retinaface detect clip.mp4                            one JSON line per video frame (ffmpeg)
  retinaface detect --output csv a.jpg b.png > f.csv    one CSV row per face
  cat photo.jpg | retinaface detect -                   the image from stdin
  retinaface annotate photo.jpg --out annotated.png     boxes, landmarks and scores drawn
  retinaface extract photo.jpg --out crops/             eyes-level face crops as PNG
  retinaface extract --arcface photo.jpg --out crops/   112x112 crops for ArcFace models
  retinaface info                                       adapter, backend, limits, weights
  retinaface eval widerface --images DIR --gt DIR       WIDER FACE val AP easy/medium/hard

Weights: --weights PATH, else $RETINAFACE_WEIGHTS, else ./weights/retinaface_mnet025.safetensors,
else the per-user cache (~/.cache/retinaface-wgpu/). See weights/README.md.

Exit codes:
  0  every image was processed
  1  some image failed (each failure is reported on stderr; the others are still processed)
  2  usage or setup error (bad option, weights not found, no GPU adapter, output not writable)";

#[derive(Parser)]
#[command(
    name = "retinaface",
    version,
    about = "RetinaFace face detection on the GPU (WGSL compute shaders via wgpu)",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Detect faces and print them as JSON, JSON lines or CSV.
    #[command(after_help = detect::AFTER_HELP)]
    Detect(detect::DetectArgs),
    /// Crop every face, rotated so the eyes are level (retina-face's extract_faces), as PNGs.
    #[command(after_help = extract::AFTER_HELP)]
    Extract(extract::ExtractArgs),
    /// Draw boxes, landmarks and scores onto the image and save it as PNG.
    #[command(after_help = annotate::AFTER_HELP)]
    Annotate(annotate::AnnotateArgs),
    /// Show the GPU adapter, backend, limits and the weights file that would be used.
    #[command(after_help = info::AFTER_HELP)]
    Info(info::InfoArgs),
    /// Time detection on one image: wall time per detect after warm-up, and GPU time per shader.
    #[command(after_help = bench::AFTER_HELP)]
    Bench(bench::BenchArgs),
    /// Convert a PyTorch checkpoint (.pth, legacy or zip) to safetensors, without Python.
    #[command(after_help = convert::AFTER_HELP)]
    Convert(convert::ConvertArgs),
    /// Download the published weights, verify them, convert and install them in the cache.
    #[command(after_help = fetch_weights::AFTER_HELP)]
    FetchWeights(fetch_weights::FetchWeightsArgs),
    /// Measure accuracy on a benchmark: WIDER FACE val APs, as its official evaluation does.
    Eval(eval::EvalArgs),
}

/// Gives the process a private runtime directory when it has none (containers, CI, ssh
/// sessions without a login manager), before any thread starts: Mesa's software driver
/// otherwise prints "XDG_RUNTIME_DIR is invalid or not set" on every run.
#[cfg(unix)]
fn ensure_runtime_dir() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let usable = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .is_some_and(|d| d.is_dir());
    if usable {
        return;
    }
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("retinaface-runtime-{uid}"));
    let made = std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)));
    if made.is_ok() {
        // Single-threaded here: nothing reads the environment concurrently.
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}

#[cfg(not(unix))]
fn ensure_runtime_dir() {}

fn main() -> ExitCode {
    ensure_runtime_dir();
    // Usage errors (unknown flag, missing argument) exit with 2 from here.
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Detect(args) => detect::run(args),
        Command::Extract(args) => extract::run(args),
        Command::Annotate(args) => annotate::run(args),
        Command::Info(args) => info::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Convert(args) => convert::run(args),
        Command::FetchWeights(args) => fetch_weights::run(args),
        Command::Eval(args) => eval::run(args),
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

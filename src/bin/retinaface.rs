//! `retinaface`: detect faces from the command line (`retina-face`-style JSON, JSON lines or
//! CSV), crop them aligned (`extract`), draw them (`annotate`), and show the GPU and weights in
//! use (`info`).
//!
//! Each subcommand is an `Args` struct and a function returning `Result<bool, Fatal>`:
//! `Ok(true)` every image done (exit 0), `Ok(false)` some image failed and was reported
//! (exit 1), `Err` nothing sensible can run (exit 2). A new subcommand adds a variant to
//! `Command`, its struct and its function, and one line in `main`.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use image::{Rgb, RgbImage, RgbaImage};
use retinaface::model::weights::{self, Weights};
use retinaface::{DetectOptions, Detector, ExtractOptions, Face, FaceCrop, GpuContext, Resize};
use serde_json::{json, Value};

const AFTER_HELP: &str = "\
Examples:
  retinaface detect photo.jpg                           faces as retina-face's JSON object
  retinaface detect --output csv a.jpg b.png > f.csv    one CSV row per face
  cat photo.jpg | retinaface detect -                   the image from stdin
  retinaface annotate photo.jpg --out annotated.png     boxes, landmarks and scores drawn
  retinaface extract photo.jpg --out crops/             eyes-level face crops as PNG
  retinaface extract --arcface photo.jpg --out crops/   112x112 crops for ArcFace models
  retinaface info                                       adapter, backend, limits, weights

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
    #[command(
        after_help = "Examples:\n  retinaface detect photo.jpg\n  retinaface detect --threshold 0.5 --resize original a.jpg b.png\n  retinaface detect --output jsonl --annotate out/ *.jpg\n  curl -s https://example.org/p.jpg | retinaface detect -\n\nExit codes: 0 all images done, 1 some image failed, 2 usage or setup error."
    )]
    Detect(DetectArgs),
    /// Crop every face, rotated so the eyes are level (retina-face's extract_faces), as PNGs.
    #[command(
        after_help = "Examples:\n  retinaface extract photo.jpg --out crops/\n  retinaface extract --expand-face-area 20 --target-size 224x224 photo.jpg --out crops/\n  retinaface extract --arcface a.jpg b.jpg --out crops/ --strip crops/all.png\n\nFiles are named STEM_faceN.png (N from 1, by descending score). One JSON line per image\non stdout lists them.\n\nExit codes: 0 all images done, 1 some image failed, 2 usage or setup error."
    )]
    Extract(ExtractArgs),
    /// Draw boxes, landmarks and scores onto the image and save it as PNG.
    #[command(
        after_help = "Examples:\n  retinaface annotate photo.jpg --out annotated.png\n  retinaface annotate a.jpg b.jpg --out annotated/   (writes STEM_annotated.png)\n  retinaface annotate --max-side 800 big.jpg --out small.png\n\nExit codes: 0 all images done, 1 some image failed, 2 usage or setup error."
    )]
    Annotate(AnnotateArgs),
    /// Show the GPU adapter, backend, limits and the weights file that would be used.
    #[command(after_help = "Exit codes: 0 adapter and weights found, 2 either is missing.")]
    Info(InfoArgs),
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

/// Detection settings shared by the subcommands that detect.
#[derive(Args)]
struct DetectionArgs {
    /// Keep faces scoring above this.
    #[arg(long, default_value_t = 0.9)]
    threshold: f32,
    /// IoU above which overlapping boxes are suppressed.
    #[arg(long = "nms", default_value_t = 0.4)]
    nms_threshold: f32,
    /// `default` (short side 1024, long side at most 1980), `original`, or `max:N`.
    #[arg(long, default_value = "default")]
    resize: String,
    /// With the default resize, never enlarge small images (retina-face's allow_upscaling=False).
    #[arg(long)]
    no_upscale: bool,
    /// The weights file (.safetensors); else RETINAFACE_WEIGHTS, ./weights, the user cache.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Whose file to look for in ./weights and the cache: mnet025, resnet50 or retinaface
    /// (retina-face's own network; also where deepface keeps retinaface.h5). The file's
    /// tensors decide the network.
    #[arg(long, default_value = "mnet025")]
    model: retinaface::Model,
}

impl DetectionArgs {
    fn options(&self) -> Result<DetectOptions, Fatal> {
        let options = DetectOptions {
            threshold: self.threshold,
            nms_threshold: self.nms_threshold,
            resize: self.resize.parse::<Resize>()?,
            allow_upscaling: !self.no_upscale,
        };
        options.validate()?;
        Ok(options)
    }

    /// Options first: a bad option is reported before the slow GPU and weights setup.
    fn detector(&self) -> Result<(Detector, DetectOptions), Fatal> {
        let options = self.options()?;
        let detector =
            Detector::for_model(self.model, self.weights.as_deref())?.with_options(options)?;
        Ok((detector, options))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// One image: retina-face's `{"face_1": ...}` object, pretty-printed. Several: JSON lines.
    Json,
    /// One line per image: `{"image": PATH, "faces": {...}}`.
    Jsonl,
    /// A header, then one row per face: image, face, score, box, the five landmarks.
    Csv,
}

#[derive(Args)]
struct DetectArgs {
    /// Image files (JPEG or PNG) or directories of them; `-` reads one image from stdin.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    #[command(flatten)]
    detection: DetectionArgs,
    #[arg(long, value_enum, default_value = "json")]
    output: Output,
    /// Also save an annotated picture: a .png file for one image, else a directory
    /// (created if missing) receiving STEM_annotated.png per image.
    #[arg(long, value_name = "OUT")]
    annotate: Option<PathBuf>,
    /// Print the GPU time of every shader for each image on stderr (timestamp queries).
    #[arg(long)]
    profile: bool,
}

#[derive(Args)]
struct ExtractArgs {
    /// Image files (JPEG or PNG); `-` reads one image from stdin.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Directory for the crops (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    detection: DetectionArgs,
    /// Keep each box upright instead of rotating the eyes level (retina-face's align=False).
    #[arg(long)]
    no_align: bool,
    /// Align to the first detection's landmarks, as retina-face does, instead of finding them
    /// again on an upright view of each face (faster; a few degrees off on rolled heads).
    #[arg(long)]
    no_refine: bool,
    /// Grow each box by this percentage of its width and height, centred, clamped to the image.
    #[arg(long, alias = "expand", value_name = "PERCENT", default_value_t = 0.0)]
    expand_face_area: f32,
    /// Scale each crop to fit WxH, keep its aspect ratio, pad centred with black (e.g. 224x224).
    #[arg(long, value_name = "WxH", value_parser = parse_target_size)]
    target_size: Option<(u32, u32)>,
    /// 112x112 crops warped onto the ArcFace template by a 5-point similarity transform.
    #[arg(long, conflicts_with_all = ["no_align", "expand_face_area", "target_size"])]
    arcface: bool,
    /// Also write every crop side by side into this one PNG.
    #[arg(long, value_name = "PNG")]
    strip: Option<PathBuf>,
    /// `ours` (default): the rotation found on upright views of each face, whole face kept.
    /// `package`: retina-face 0.0.19's extract_faces, pixel for pixel (whole image rotated
    /// about its centre, box moved, sliced; crops can come out empty, which are listed with
    /// width 0 and no file).
    #[arg(long, value_enum, default_value = "ours", conflicts_with_all = ["target_size", "arcface"])]
    align: AlignMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum AlignMode {
    Ours,
    Package,
}

#[derive(Args)]
struct AnnotateArgs {
    /// Image files (JPEG or PNG); `-` reads one image from stdin.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// A .png file for one image, else a directory (created if missing) receiving
    /// STEM_annotated.png per image.
    #[arg(long, value_name = "OUT")]
    out: PathBuf,
    /// Shrink the picture so its longer side is at most N pixels before drawing.
    #[arg(long, value_name = "N")]
    max_side: Option<u32>,
    #[command(flatten)]
    detection: DetectionArgs,
}

#[derive(Args)]
struct InfoArgs {
    #[arg(long)]
    weights: Option<PathBuf>,
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

fn parse_target_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or("expected WxH, e.g. 224x224")?;
    let max = retinaface::align::MAX_TARGET_SIDE;
    let n = |v: &str| v.parse::<u32>().ok().filter(|n| (1..=max).contains(n));
    let bad = format!("each side must be a number in 1..={max}");
    Ok((n(w).ok_or(bad.clone())?, n(h).ok_or(bad)?))
}

/// An error that stops the whole run (exit 2).
#[derive(Debug)]
struct Fatal(String);

impl From<retinaface::Error> for Fatal {
    fn from(e: retinaface::Error) -> Self {
        Fatal(e.to_string())
    }
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Refuses more than one `-`: stdin holds one image.
fn check_stdin(images: &[PathBuf]) -> Result<(), Fatal> {
    if images.iter().filter(|p| is_stdin(p)).count() > 1 {
        return Err(Fatal("`-` (stdin) can be given only once".into()));
    }
    Ok(())
}

fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

fn load(path: &Path) -> retinaface::Result<RgbaImage> {
    if is_stdin(path) {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(|e| retinaface::Error::ImageRead {
                path: "<stdin>".into(),
                reason: e.to_string(),
            })?;
        retinaface::image_io::load_bytes(&bytes, Some(Path::new("<stdin>")))
    } else {
        retinaface::image_io::load_path(path)
    }
}

/// The name output files are derived from: the file stem, `stdin` for `-`.
fn stem(path: &Path) -> String {
    if is_stdin(path) {
        return "stdin".into();
    }
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into())
}

/// Stems made unique within a run: `a/x.jpg` and `b/x.jpg` write `x_*` and `x-2_*`.
#[derive(Default)]
struct Stems(HashSet<String>);

impl Stems {
    fn unique(&mut self, path: &Path) -> String {
        let base = stem(path);
        let mut name = base.clone();
        let mut k = 2;
        while !self.0.insert(name.clone()) {
            name = format!("{base}-{k}");
            k += 1;
        }
        name
    }
}

/// Where pictures go: one named file, or a directory of `STEM_suffix.png`.
enum OutTarget {
    File(PathBuf),
    Dir(PathBuf),
}

impl OutTarget {
    /// A file when there is one image and `out` is not an existing directory (nor ends in
    /// `/`); a directory otherwise, created if missing.
    fn new(out: &Path, images: usize) -> Result<Self, Fatal> {
        let dir_like = out.is_dir() || out.as_os_str().to_string_lossy().ends_with('/');
        if images == 1 && !dir_like {
            check_png(out)?;
            return Ok(OutTarget::File(out.to_path_buf()));
        }
        if !dir_like && out.extension().is_some() {
            return Err(Fatal(format!(
                "{}: with several images the output must be a directory",
                out.display()
            )));
        }
        create_dir(out)?;
        Ok(OutTarget::Dir(out.to_path_buf()))
    }

    fn path(&self, stem: &str, suffix: &str) -> PathBuf {
        match self {
            OutTarget::File(p) => p.clone(),
            OutTarget::Dir(d) => d.join(format!("{stem}_{suffix}.png")),
        }
    }
}

fn check_png(path: &Path) -> Result<(), Fatal> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    if ext.as_deref() != Some("png") {
        return Err(Fatal(format!(
            "{}: output pictures are PNG; name the file *.png",
            path.display()
        )));
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), Fatal> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Fatal(format!("cannot create directory {}: {e}", dir.display())))
}

/// PNG at the encoder's default level (the image crate's own default is its fastest, which
/// makes photos a third larger).
fn save_png(image: &RgbImage, path: &Path) -> Result<(), String> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let write = || -> Result<(), Box<dyn std::error::Error>> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        let encoder =
            PngEncoder::new_with_quality(file, CompressionType::Default, FilterType::Adaptive);
        image.write_with_encoder(encoder)?;
        Ok(())
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The `retina-face` package's output: `{"face_1": {"score", "facial_area", "landmarks"}}`,
/// boxes as integers (truncated, as its `astype(int)`), landmarks as floats.
fn faces_json(faces: &[Face]) -> Value {
    retinaface::face::package_dict(faces)
}

fn face_json(f: &Face) -> Value {
    f.to_package_json()
}

/// `faces_json` with each face's unrounded box (`"box"`, floats) beside the package's integer
/// `facial_area`: for tracking and evaluation, where the truncation costs accuracy.
fn faces_json_with_boxes(faces: &[Face]) -> Value {
    let mut v = faces_json(faces);
    if let Some(map) = v.as_object_mut() {
        for (f, face) in map.values_mut().zip(faces) {
            if let Some(o) = f.as_object_mut() {
                o.insert("box".into(), json!(face.facial_area));
            }
        }
    }
    v
}

const CSV_HEADER: &str = "image,face,score,x1,y1,x2,y2,right_eye_x,right_eye_y,left_eye_x,left_eye_y,nose_x,nose_y,mouth_right_x,mouth_right_y,mouth_left_x,mouth_left_y,box_x1,box_y1,box_x2,box_y2";

/// RFC 4180 quoting, only where needed.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_rows(image: &Path, faces: &[Face]) -> String {
    let name = csv_field(&image.display().to_string());
    let mut out = String::new();
    for (i, f) in faces.iter().enumerate() {
        let mut row = vec![name.clone(), (i + 1).to_string(), f.score.to_string()];
        row.extend(f.facial_area.iter().map(|v| (*v as i64).to_string()));
        row.extend(f.landmarks.points().iter().flatten().map(|v| v.to_string()));
        // The unrounded box last, so the package-like columns keep their places.
        row.extend(f.facial_area.iter().map(|v| v.to_string()));
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

fn print(s: &str) -> Result<(), Fatal> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(s.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| Fatal(format!("cannot write to stdout: {e}")))
}

fn report(path: &Path, e: impl std::fmt::Display) {
    eprintln!("retinaface: {}: {e}", path.display());
}

/// The images named on the command line, with each directory replaced by its JPEG and PNG
/// files in name order.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Fatal> {
    let mut out = Vec::new();
    for p in paths {
        if !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        let entries =
            std::fs::read_dir(p).map_err(|e| Fatal(format!("cannot list {}: {e}", p.display())))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| {
                let ext = f
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                f.is_file() && matches!(ext.as_str(), "jpg" | "jpeg" | "png")
            })
            .collect();
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

/// Where `detect` writes each image's result.
struct DetectSink<'a> {
    args: &'a DetectArgs,
    pictures: Option<OutTarget>,
    stems: Stems,
    pretty: bool,
    all_ok: bool,
}

impl DetectSink<'_> {
    fn emit(
        &mut self,
        path: &Path,
        img: &RgbaImage,
        faces: retinaface::Result<Vec<Face>>,
    ) -> Result<(), Fatal> {
        let faces = match faces {
            Ok(f) => f,
            Err(e) => {
                report(path, e);
                self.all_ok = false;
                return Ok(());
            }
        };
        let text = match self.args.output {
            Output::Csv => csv_rows(path, &faces),
            _ if self.pretty => format!(
                "{}\n",
                serde_json::to_string_pretty(&faces_json(&faces)).unwrap_or_default()
            ),
            _ => format!(
                "{}\n",
                json!({ "image": path, "faces": faces_json_with_boxes(&faces) })
            ),
        };
        print(&text)?;
        if let Some(target) = &self.pictures {
            let file = target.path(&self.stems.unique(path), "annotated");
            let picture = retinaface::annotate::annotate(img, &faces);
            if let Err(e) = save_png(&picture, &file) {
                report(path, e);
                self.all_ok = false;
            }
        }
        Ok(())
    }
}

fn detect(args: DetectArgs) -> Result<bool, Fatal> {
    check_stdin(&args.images)?;
    let paths = expand(&args.images)?;
    let (detector, options) = args.detection.detector()?;
    let pictures = match &args.annotate {
        Some(out) => Some(OutTarget::new(out, paths.len())?),
        None => None,
    };
    let mut sink = DetectSink {
        args: &args,
        pictures,
        stems: Stems::default(),
        pretty: args.output == Output::Json && paths.len() == 1 && !args.images[0].is_dir(),
        all_ok: true,
    };
    if args.output == Output::Csv {
        print(&format!("{CSV_HEADER}\n"))?;
    }
    // Many images: a progress bar on stderr (hidden when stderr is not a terminal).
    let bar = if paths.len() > 1 {
        let bar = indicatif::ProgressBar::new(paths.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} images, {per_sec}, eta {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    // Up to 3 images on the GPU at once: decoding the next overlaps the GPU's work.
    let mut stream = detector.stream(&options, 3);
    let mut in_flight: std::collections::VecDeque<(PathBuf, RgbaImage)> = Default::default();
    for path in &paths {
        let img = match load(path) {
            Ok(img) => img,
            Err(e) => {
                bar.suspend(|| report(path, e));
                sink.all_ok = false;
                bar.inc(1);
                continue;
            }
        };
        if args.profile {
            let result = detector.detect_profiled(&img, &options);
            if let Ok((_, profile)) = &result {
                bar.suspend(|| {
                    eprintln!(
                        "{}: GPU time per shader (each dispatch timed in its own pass):\n{profile}",
                        path.display()
                    )
                });
            }
            bar.suspend(|| sink.emit(path, &img, result.map(|(faces, _)| faces)))?;
            bar.inc(1);
            continue;
        }
        match stream.push(&img) {
            Err(e) => {
                bar.suspend(|| report(path, e));
                sink.all_ok = false;
                bar.inc(1);
            }
            Ok(done) => {
                in_flight.push_back((path.clone(), img));
                if let Some(faces) = done {
                    if let Some((p, i)) = in_flight.pop_front() {
                        bar.suspend(|| sink.emit(&p, &i, faces))?;
                        bar.inc(1);
                    }
                }
            }
        }
    }
    while let Some(faces) = stream.pop() {
        if let Some((p, i)) = in_flight.pop_front() {
            bar.suspend(|| sink.emit(&p, &i, faces))?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(sink.all_ok)
}

fn annotate(args: AnnotateArgs) -> Result<bool, Fatal> {
    check_stdin(&args.images)?;
    let (detector, options) = args.detection.detector()?;
    let target = OutTarget::new(&args.out, args.images.len())?;
    let mut stems = Stems::default();
    let mut all_ok = true;
    for path in &args.images {
        let result = load(path).and_then(|img| {
            let faces = detector.detect_with(&img, &options)?;
            Ok(retinaface::annotate::annotate_fit(
                &img,
                &faces,
                args.max_side.unwrap_or(0),
            ))
        });
        let file = target.path(&stems.unique(path), "annotated");
        match result
            .map_err(|e| e.to_string())
            .and_then(|picture| save_png(&picture, &file))
        {
            Ok(()) => print(&format!("{}\n", file.display()))?,
            Err(e) => {
                report(path, e);
                all_ok = false;
            }
        }
    }
    Ok(all_ok)
}

fn extract(args: ExtractArgs) -> Result<bool, Fatal> {
    check_stdin(&args.images)?;
    let opts = ExtractOptions {
        detect: args.detection.options()?,
        align: !args.no_align,
        refine: !args.no_refine,
        expand_face_area: args.expand_face_area,
        target_size: args.target_size,
        arcface: args.arcface,
        float: false,
    };
    opts.validate()?;
    if let Some(strip) = &args.strip {
        check_png(strip)?;
    }
    let (detector, _) = args.detection.detector()?;
    create_dir(&args.out)?;
    let mut stems = Stems::default();
    let mut all_ok = true;
    let mut strip = Vec::new();
    if args.align == AlignMode::Package {
        return extract_package(&args, &detector, &opts.detect);
    }
    for path in &args.images {
        let crops = match load(path).and_then(|img| detector.extract_faces(&img, &opts)) {
            Ok(c) => c,
            Err(e) => {
                report(path, e);
                all_ok = false;
                continue;
            }
        };
        let stem = stems.unique(path);
        let mut listed = Vec::new();
        for (i, crop) in crops.iter().enumerate() {
            let file = args.out.join(format!("{stem}_face{}.png", i + 1));
            if let Err(e) = save_png(&crop.image, &file) {
                report(path, e);
                all_ok = false;
                continue;
            }
            listed.push(crop_json(i, crop, &file));
        }
        print(&format!("{}\n", json!({ "image": path, "crops": listed })))?;
        if args.strip.is_some() {
            strip.extend(crops.into_iter().map(|c| c.image));
        }
    }
    if let Some(file) = &args.strip {
        if let Err(e) = save_png(&side_by_side(&strip), file) {
            eprintln!("retinaface: {e}");
            all_ok = false;
        }
    }
    Ok(all_ok)
}

/// `extract --align package`: retina-face's own crops ([`retinaface::align_package`]).
fn extract_package(
    args: &ExtractArgs,
    detector: &Detector,
    opts: &DetectOptions,
) -> Result<bool, Fatal> {
    let mut stems = Stems::default();
    let mut all_ok = true;
    let mut strip = Vec::new();
    for path in &args.images {
        let result = load(path).and_then(|img| {
            let faces = detector.detect_with(&img, opts)?;
            let (w, h) = img.dimensions();
            let crops = retinaface::align_package::extract(
                img.as_raw(),
                w as usize,
                h as usize,
                &faces,
                args.expand_face_area.max(0.0) as u32,
                !args.no_align,
            );
            Ok((faces, crops))
        });
        let (faces, crops) = match result {
            Ok(c) => c,
            Err(e) => {
                report(path, e);
                all_ok = false;
                continue;
            }
        };
        let stem = stems.unique(path);
        let mut listed = Vec::new();
        for (i, (face, crop)) in faces.iter().zip(&crops).enumerate() {
            let mut v = face_json(face);
            let o = v.as_object_mut().expect("face_json is an object");
            o.insert("face".into(), json!(format!("face_{}", i + 1)));
            o.insert("width".into(), json!(crop.width));
            o.insert("height".into(), json!(crop.height));
            o.insert("angle".into(), json!(crop.angle));
            let image = RgbImage::from_raw(crop.width as u32, crop.height as u32, crop.rgb.clone());
            match image.filter(|_| crop.width > 0 && crop.height > 0) {
                Some(image) => {
                    let file = args.out.join(format!("{stem}_face{}.png", i + 1));
                    if let Err(e) = save_png(&image, &file) {
                        report(path, e);
                        all_ok = false;
                    }
                    o.insert("file".into(), json!(file));
                    strip.push(image);
                }
                None => {
                    o.insert("file".into(), Value::Null);
                }
            }
            listed.push(v);
        }
        print(&format!("{}\n", json!({ "image": path, "crops": listed })))?;
    }
    if let Some(file) = &args.strip {
        if let Err(e) = save_png(&side_by_side(&strip), file) {
            eprintln!("retinaface: {e}");
            all_ok = false;
        }
    }
    Ok(all_ok)
}

fn crop_json(i: usize, crop: &FaceCrop, file: &Path) -> Value {
    let mut v = face_json(&crop.face);
    let o = v.as_object_mut().expect("face_json is an object");
    o.insert("face".into(), json!(format!("face_{}", i + 1)));
    o.insert("file".into(), json!(file));
    o.insert("width".into(), json!(crop.image.width()));
    o.insert("height".into(), json!(crop.image.height()));
    o.insert("angle".into(), json!(crop.angle));
    v
}

/// Crops left to right, centred vertically, 4 px of white between them.
fn side_by_side(images: &[RgbImage]) -> RgbImage {
    const GAP: u32 = 4;
    let h = images.iter().map(|i| i.height()).max().unwrap_or(1);
    let w = images
        .iter()
        .map(|i| i.width() + GAP)
        .sum::<u32>()
        .max(GAP + 1)
        - GAP;
    let mut out = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let mut x = 0;
    for img in images {
        image::imageops::replace(&mut out, img, x as i64, ((h - img.height()) / 2) as i64);
        x += img.width() + GAP;
    }
    out
}

fn info(args: InfoArgs) -> Result<bool, Fatal> {
    let mut ok = true;
    let mut text = format!("retinaface {}\n", env!("CARGO_PKG_VERSION"));
    match GpuContext::new() {
        Ok(ctx) => {
            if let Some(a) = &ctx.adapter_info {
                text += &format!("adapter:    {} ({:?})\n", a.name, a.device_type);
                text += &format!("backend:    {:?}\n", a.backend);
                text += &format!("driver:     {} {}\n", a.driver, a.driver_info);
            }
            let timestamps = ctx
                .device
                .features()
                .contains(retinaface::wgpu::Features::TIMESTAMP_QUERY);
            text += &format!(
                "timestamps: {}\n",
                if timestamps {
                    "yes (bench shows GPU time per shader)"
                } else {
                    "no"
                }
            );
            let path = ctx.kernel_path();
            let sub = ctx.device.adapter_info();
            text += &format!(
                "kernels:    {} (subgroups: {}, {}..{} lanes; RETINAFACE_KERNELS=portable forces the portable ones)\n",
                match path {
                    retinaface::KernelPath::Subgroup => "subgroup",
                    retinaface::KernelPath::Portable => "portable",
                },
                if ctx.device.features().contains(retinaface::wgpu::Features::SUBGROUP) {
                    "yes"
                } else {
                    "no"
                },
                sub.subgroup_min_size,
                sub.subgroup_max_size,
            );
            let l = ctx.limits();
            text += "limits:\n";
            let rows: [(&str, u64); 7] = [
                ("max_buffer_size", l.max_buffer_size),
                (
                    "max_storage_buffer_binding_size",
                    l.max_storage_buffer_binding_size,
                ),
                (
                    "max_storage_buffers_per_shader_stage",
                    l.max_storage_buffers_per_shader_stage as u64,
                ),
                (
                    "max_compute_workgroup_storage_size",
                    l.max_compute_workgroup_storage_size as u64,
                ),
                (
                    "max_compute_invocations_per_workgroup",
                    l.max_compute_invocations_per_workgroup as u64,
                ),
                (
                    "max_compute_workgroups_per_dimension",
                    l.max_compute_workgroups_per_dimension as u64,
                ),
                ("max_bind_groups", l.max_bind_groups as u64),
            ];
            for (name, v) in rows {
                text += &format!("  {name:<40} {v}{}\n", mib(v));
            }
        }
        Err(e) => {
            text += &format!("adapter:    none: {e}\n");
            ok = false;
        }
    }
    let loaded = weights::resolve(args.weights.as_deref())
        .and_then(|path| Weights::load(&path).map(|w| (path, w)));
    match loaded {
        Ok((path, w)) => {
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let packed = w.pack();
            text += &format!(
                "weights:    {} ({bytes} bytes; {} convolutions, {} parameters after batch-norm folding)\n",
                path.display(),
                w.convs.len() + 3 * w.heads.len(),
                packed.data.len()
            );
        }
        Err(e) => {
            text += &format!("weights:    not usable: {e}\n");
            ok = false;
        }
    }
    print(&text)?;
    if ok {
        Ok(true)
    } else {
        Err(Fatal("setup incomplete (see above)".into()))
    }
}

fn mib(v: u64) -> String {
    if v >= 1 << 20 {
        format!(" ({} MiB)", v >> 20)
    } else {
        String::new()
    }
}

fn bench(args: BenchArgs) -> Result<bool, Fatal> {
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
    let (shared, own) = detector.activation_bytes(s.net_w, s.net_h);
    println!(
        "activation buffers: {:.1} MiB ({:.1} MiB if every tensor had its own)",
        shared as f64 / (1 << 20) as f64,
        own as f64 / (1 << 20) as f64
    );
    let (_, profile) = detector.detect_profiled(&image, &options)?;
    if profile.steps.is_empty() {
        println!("no GPU timestamps on this adapter");
    } else {
        println!("GPU time per shader (one detect, each dispatch in its own timestamped pass):\n{profile}");
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
    println!(
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
        println!(
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
            println!(
                "saved for {:?} in {}",
                detector.tuning_key(),
                file.display()
            );
        }
        None => eprintln!("no per-user cache directory (set RETINAFACE_CACHE_DIR): not saved"),
    }
    Ok(())
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
        Command::Detect(args) => detect(args),
        Command::Extract(args) => extract(args),
        Command::Annotate(args) => annotate(args),
        Command::Info(args) => info(args),
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
    /// A PyTorch checkpoint holding a RetinaFace state dict (float32), or retina-face's
    /// Keras weights (`retinaface.h5`).
    input: PathBuf,
    /// The safetensors file to write (replaced atomically).
    output: PathBuf,
}

#[derive(Args)]
struct FetchWeightsArgs {
    /// mnet025 (MobileNet0.25), resnet50 (ResNet50) or retinaface (retina-face's own
    /// network, its retinaface.h5).
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
        backup_url: None,
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

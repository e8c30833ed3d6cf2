//! `retinaface detect`: faces as JSON, JSON lines or CSV, optionally annotated pictures.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use image::RgbaImage;
use indicatif::{ProgressBar, ProgressStyle};
use retinaface::Face;
use serde_json::json;

use crate::console::{print, report};
use crate::detection_args::DetectionArgs;
use crate::fatal::Fatal;
use crate::formats::{csv_rows, display_name, faces_json, faces_json_with_boxes, CSV_HEADER};
use crate::inputs::{check_stdin, load, Walk};
use crate::out_files::{save_png, OutTarget, Stems};

/// `retinaface detect --help`'s closing text.
pub const AFTER_HELP: &str = "Examples:\n  retinaface detect photo.jpg\n  retinaface detect --threshold 0.5 --resize original a.jpg b.png\n  retinaface detect --output jsonl --annotate out/ *.jpg\n  curl -s https://example.org/p.jpg | retinaface detect -\n\nExit codes: 0 all images done, 1 some image failed, 2 usage or setup error.";

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
pub struct DetectArgs {
    /// Image files (JPEG or PNG) or directories, walked recursively for *.jpg, *.jpeg and
    /// *.png in name order (symlinks followed; loops and unreadable directories are reported
    /// and skipped); `-` reads one image from stdin.
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

/// Where `detect` writes each image's result.
struct DetectSink<'a> {
    args: &'a DetectArgs,
    pictures: Option<OutTarget>,
    stems: Stems,
    pretty: bool,
    all_ok: bool,
}

impl DetectSink<'_> {
    /// `img` is the decoded image when pictures are wanted.
    fn emit(
        &mut self,
        path: &Path,
        img: Option<&RgbaImage>,
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
                json!({ "image": display_name(path), "faces": faces_json_with_boxes(&faces) })
            ),
        };
        print(&text)?;
        if let (Some(target), Some(img)) = (&self.pictures, img) {
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

pub fn run(args: DetectArgs) -> Result<bool, Fatal> {
    check_stdin(&args.images)?;
    // One file argument is "one image" (a pretty JSON object, --annotate names a file);
    // anything else streams JSON lines, however many images it turns out to hold.
    let single = args.images.len() == 1 && !args.images[0].is_dir();
    let (detector, options) = args.detection.detector()?;
    let pictures = match &args.annotate {
        Some(out) => Some(OutTarget::new(out, single)?),
        None => None,
    };
    let mut sink = DetectSink {
        args: &args,
        pictures,
        stems: Stems::default(),
        pretty: args.output == Output::Json && single,
        all_ok: true,
    };
    if args.output == Output::Csv {
        print(&format!("{CSV_HEADER}\n"))?;
    }
    let bar = progress_bar(&args.images);
    // Up to 3 images on the GPU at once: decoding the next overlaps the GPU's work, and at
    // most 3 decoded images (kept only for --annotate) wait beside the stream.
    let mut stream = detector.stream(&options, 3);
    let mut in_flight: VecDeque<(PathBuf, Option<RgbaImage>)> = VecDeque::new();
    for path in Walk::new(args.images.clone()) {
        let path = match path {
            Ok(p) => p,
            Err((p, e)) => {
                bar.suspend(|| report(&p, e));
                sink.all_ok = false;
                continue;
            }
        };
        let img = match load(&path) {
            Ok(img) => img,
            Err(e) => {
                bar.suspend(|| report(&path, e));
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
            bar.suspend(|| sink.emit(&path, Some(&img), result.map(|(faces, _)| faces)))?;
            bar.inc(1);
            continue;
        }
        match stream.push(&img) {
            Err(e) => {
                bar.suspend(|| report(&path, e));
                sink.all_ok = false;
                bar.inc(1);
            }
            Ok(done) => {
                let keep = sink.pictures.is_some().then_some(img);
                in_flight.push_back((path, keep));
                if let Some(faces) = done {
                    if let Some((p, i)) = in_flight.pop_front() {
                        bar.suspend(|| sink.emit(&p, i.as_ref(), faces))?;
                        bar.inc(1);
                    }
                }
            }
        }
    }
    while let Some(faces) = stream.pop() {
        if let Some((p, i)) = in_flight.pop_front() {
            bar.suspend(|| sink.emit(&p, i.as_ref(), faces))?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(sink.all_ok)
}

/// Several images: a progress bar on stderr (indicatif hides it when stderr is not a
/// terminal). Directories are walked as they are read, so with one the total is unknown
/// and the bar counts up.
fn progress_bar(args: &[PathBuf]) -> ProgressBar {
    let (bar, template) = if args.iter().any(|a| a.is_dir()) {
        (
            ProgressBar::no_length(),
            "{spinner} {pos} images, {per_sec}",
        )
    } else if args.len() > 1 {
        (
            ProgressBar::new(args.len() as u64),
            "{bar:40} {pos}/{len} images, {per_sec}, eta {eta}",
        )
    } else {
        return ProgressBar::hidden();
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

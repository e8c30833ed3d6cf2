//! `retinaface detect`: faces as JSON, JSON lines or CSV, optionally annotated pictures;
//! videos go to [`crate::detect_video`].

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use image::RgbaImage;
use indicatif::{ProgressBar, ProgressStyle};
use retinaface::detector::Stream;
use retinaface::video::{is_video, FrameSelect, VIDEO_EXTENSIONS};
use retinaface::Face;
use serde_json::json;

use crate::console::{print, report};
use crate::detect_video::{detect_video, VideoJob};
use crate::detection_args::DetectionArgs;
use crate::fatal::Fatal;
use crate::formats::{csv_rows, display_name, faces_json, faces_json_with_boxes, CSV_HEADER};
use crate::inputs::{check_stdin, load, Walk};
use crate::out_files::{save_png, OutTarget, Stems};

/// `retinaface detect --help`'s closing text.
pub const AFTER_HELP: &str = "\
Examples:
  retinaface detect photo.jpg
  retinaface detect --threshold 0.5 --resize original a.jpg b.png
  retinaface detect --output jsonl --annotate out/ *.jpg
  curl -s https://example.org/p.jpg | retinaface detect -
  retinaface detect clip.mp4                          one JSON line per frame
  retinaface detect --fps 2 --annotate boxes.mp4 clip.mkv
  retinaface detect --every 5 /dev/video0             a webcam, through ffmpeg's v4l2 input

Video: an argument is a video when it is /dev/video*, when its name ends in .mp4 .m4v .mov
.mkv .webm .avi .mpg .mpeg .ts .m2ts .mts .wmv .flv .3gp .ogv .gif .y4m .nut or .mxf, or,
named otherwise (not .jpg/.jpeg/.png), when its first bytes are a video container's
(Matroska/WebM, MP4/MOV, AVI, Ogg, FLV, GIF, Y4M, MPEG-PS/TS); --input-format makes every
argument one. Frames are decoded by the `ffmpeg` program (install it: apt-get install ffmpeg,
brew install ffmpeg, ...), and each detected frame prints
{\"frame\": N, \"time\": SECONDS, \"faces\": {...}} (with \"video\": PATH when several inputs
are named). --annotate OUT.mp4 writes the detected frames with their faces drawn, at the
rate that keeps the video's speed, without audio. Directories are walked for images only.

Exit codes: 0 all inputs done, 1 some image or video failed (a corrupt or truncated video
after printing the frames it had), 2 usage or setup error (no ffmpeg for a video).";

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
    /// Image files (JPEG or PNG), videos (see below) or directories, walked recursively for
    /// *.jpg, *.jpeg and *.png in name order (symlinks followed; loops and unreadable
    /// directories are reported and skipped); `-` reads one image from stdin.
    #[arg(required = true, value_name = "INPUTS")]
    images: Vec<PathBuf>,
    #[command(flatten)]
    detection: DetectionArgs,
    #[arg(long, value_enum, default_value = "json")]
    output: Output,
    /// Also save an annotated picture: a .png file for one image, a video file (.mp4, .mkv,
    /// ...) for one video, else a directory (created if missing) receiving
    /// STEM_annotated.png per image and STEM_annotated.mp4 per video.
    #[arg(long, value_name = "OUT")]
    annotate: Option<PathBuf>,
    /// Print the GPU time of every shader for each image on stderr (timestamp queries;
    /// images only).
    #[arg(long)]
    profile: bool,
    /// Videos: detect on frames 0, N, 2N, ... only.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    every: Option<u64>,
    /// Videos: detect on at most F frames per second of video time (the first frame at or
    /// after each 1/F s).
    #[arg(long, value_name = "F", value_parser = parse_fps, conflicts_with = "every")]
    fps: Option<f64>,
    /// Videos: ffmpeg's input format for every argument (`-f`), e.g. v4l2, avfoundation,
    /// dshow; /dev/video* gets v4l2 without it.
    #[arg(long, value_name = "FMT")]
    input_format: Option<String>,
}

fn parse_fps(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && *f > 0.0)
        .ok_or_else(|| "expected a positive number of frames per second, e.g. 2 or 0.5".into())
}

impl DetectArgs {
    fn is_video(&self, path: &Path) -> bool {
        self.input_format.is_some() || is_video(path)
    }

    fn frame_select(&self) -> FrameSelect {
        match (self.every, self.fps) {
            (Some(n), _) => FrameSelect::Every(n),
            (None, Some(f)) => FrameSelect::Fps(f),
            (None, None) => FrameSelect::All,
        }
    }
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
    let single_video = single && args.is_video(&args.images[0]);
    if args.output == Output::Csv {
        if let Some(v) = args.images.iter().find(|p| args.is_video(p)) {
            return Err(Fatal(format!(
                "{}: video results are JSON lines; use --output json or jsonl for videos",
                v.display()
            )));
        }
    }
    let pictures = match &args.annotate {
        Some(out) if single_video => Some(video_file(out)?),
        Some(out) => Some(OutTarget::new(out, single)?),
        None => None,
    };
    let (detector, options) = args.detection.detector()?;
    let video = VideoJob {
        detector: &detector,
        options: &options,
        select: args.frame_select(),
        format: args.input_format.as_deref(),
        name_lines: !single,
    };
    let mut sink = DetectSink {
        args: &args,
        pictures,
        stems: Stems::default(),
        pretty: args.output == Output::Json && single && !single_video,
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
        if args.is_video(&path) {
            // Results stay in input order: the images before it come out first.
            drain(&mut stream, &mut in_flight, &mut sink, &bar)?;
            let annotate = sink.pictures.as_ref().map(|t| match t {
                OutTarget::File(f) => f.clone(),
                OutTarget::Dir(d) => {
                    let mut name = sink.stems.unique(&path);
                    name.push("_annotated.mp4");
                    d.join(name)
                }
            });
            sink.all_ok &= bar.suspend(|| detect_video(&path, &video, annotate))?;
            bar.inc(1);
            continue;
        }
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
    drain(&mut stream, &mut in_flight, &mut sink, &bar)?;
    bar.finish_and_clear();
    Ok(sink.all_ok)
}

/// Emits every image still in flight, oldest first.
fn drain(
    stream: &mut Stream,
    in_flight: &mut VecDeque<(PathBuf, Option<RgbaImage>)>,
    sink: &mut DetectSink,
    bar: &ProgressBar,
) -> Result<(), Fatal> {
    while let Some(faces) = stream.pop() {
        if let Some((p, i)) = in_flight.pop_front() {
            bar.suspend(|| sink.emit(&p, i.as_ref(), faces))?;
            bar.inc(1);
        }
    }
    Ok(())
}

/// `--annotate` for one video: a file whose name tells ffmpeg the container.
fn video_file(out: &Path) -> Result<OutTarget, Fatal> {
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext {
        Some(e) if VIDEO_EXTENSIONS.contains(&e.as_str()) => Ok(OutTarget::File(out.to_path_buf())),
        _ if out.is_dir() => Ok(OutTarget::Dir(out.to_path_buf())),
        _ => Err(Fatal(format!(
            "{}: the annotated video needs a video file name (e.g. out.mp4 or out.mkv) or an existing directory",
            out.display()
        ))),
    }
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

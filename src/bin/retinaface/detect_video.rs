//! `retinaface detect` on a video or capture device: frames from an ffmpeg child process
//! through the detector's stream, one JSON line per detected frame, optionally an annotated
//! video through a second ffmpeg.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use image::RgbaImage;
use indicatif::{ProgressBar, ProgressStyle};
use retinaface::video::{FrameSampler, FrameSelect, VideoReader, VideoWriter};
use retinaface::{DetectOptions, Detector, Face};
use serde_json::{json, Value};

use crate::console::{print, report};
use crate::fatal::Fatal;
use crate::formats::{display_name, faces_json_with_boxes};

/// How every video of one `detect` run is handled.
pub struct VideoJob<'a> {
    pub detector: &'a Detector,
    pub options: &'a DetectOptions,
    pub select: FrameSelect,
    /// ffmpeg's input format (`-f`), when the user forces one.
    pub format: Option<&'a str>,
    /// Several inputs: each line also names its video.
    pub name_lines: bool,
}

/// A frame submitted to the stream: its place in the video, and its pixels while an
/// annotated video wants them.
type Pending = (u64, f64, Option<RgbaImage>);

/// Detects faces in every selected frame of `path`, writing the annotated video to
/// `annotate` if given. `Ok(false)`: a failure was reported (a corrupt or truncated video
/// after the frames it had, a frame the detector refused, an unwritable output); `Err`: the
/// run cannot go on (no ffmpeg, stdout unwritable).
pub fn detect_video(path: &Path, job: &VideoJob, annotate: Option<PathBuf>) -> Result<bool, Fatal> {
    let mut reader = match VideoReader::open(path, job.format) {
        Ok(r) => r,
        Err(e @ retinaface::Error::ToolNotFound { .. }) => return Err(e.into()),
        Err(e) => {
            report(path, e);
            return Ok(false);
        }
    };
    let bar = ProgressBar::no_length();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix}: {pos} frames, {per_sec}") {
        bar.set_style(style);
    }
    bar.set_prefix(display_name(path));
    let mut out = VideoOut {
        path,
        job,
        bar: &bar,
        annotate,
        writer: None,
        ok: true,
    };
    let mut sampler = FrameSampler::new(job.select);
    // Three frames on the GPU while ffmpeg decodes the next: the pipe and the stream bound
    // the frames held to a handful, however long the video.
    let mut stream = job.detector.stream(job.options, 3);
    let mut in_flight: VecDeque<Pending> = VecDeque::new();
    while let Some(frame) = reader.next() {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                bar.suspend(|| report(path, e));
                out.ok = false;
                break;
            }
        };
        if !sampler.keep(frame.index, frame.time) {
            continue;
        }
        match stream.push(&frame.image) {
            Err(e) => {
                bar.suspend(|| report(path, format!("frame {}: {e}", frame.index)));
                out.ok = false;
            }
            Ok(done) => {
                let keep = out.annotate.is_some().then_some(frame.image);
                in_flight.push_back((frame.index, frame.time, keep));
                if let Some(faces) = done {
                    if let Some(pending) = in_flight.pop_front() {
                        out.emit(pending, faces, &sampler, reader.frame_rate())?;
                    }
                }
            }
        }
    }
    while let Some(faces) = stream.pop() {
        if let Some(pending) = in_flight.pop_front() {
            out.emit(pending, faces, &sampler, reader.frame_rate())?;
        }
    }
    bar.finish_and_clear();
    if let Some(writer) = out.writer.take() {
        if let Err(e) = writer.finish() {
            report(path, e);
            out.ok = false;
        }
    }
    Ok(out.ok)
}

/// Where one video's results go.
struct VideoOut<'a> {
    path: &'a Path,
    job: &'a VideoJob<'a>,
    bar: &'a ProgressBar,
    /// The annotated video's file, until writing it fails.
    annotate: Option<PathBuf>,
    /// Started on the first frame, when its size is known.
    writer: Option<VideoWriter>,
    ok: bool,
}

impl VideoOut<'_> {
    fn emit(
        &mut self,
        (index, time, image): Pending,
        faces: retinaface::Result<Vec<Face>>,
        sampler: &FrameSampler,
        rate: Option<(u32, u32)>,
    ) -> Result<(), Fatal> {
        self.bar.inc(1);
        let faces = match faces {
            Ok(f) => f,
            Err(e) => {
                self.bar
                    .suspend(|| report(self.path, format!("frame {index}: {e}")));
                self.ok = false;
                return Ok(());
            }
        };
        let mut line = serde_json::Map::new();
        if self.job.name_lines {
            line.insert("video".into(), json!(display_name(self.path)));
        }
        line.insert("frame".into(), json!(index));
        line.insert("time".into(), json!(time));
        line.insert("faces".into(), faces_json_with_boxes(&faces));
        self.bar
            .suspend(|| print(&format!("{}\n", Value::Object(line))))?;
        if let (Some(file), Some(image)) = (&self.annotate, image) {
            let picture = retinaface::annotate::annotate(&image, &faces);
            let written = match &mut self.writer {
                Some(w) => w.write(&picture),
                None => VideoWriter::create(
                    file,
                    picture.width(),
                    picture.height(),
                    &sampler.output_rate(rate),
                )
                .and_then(|mut w| {
                    let r = w.write(&picture);
                    self.writer = Some(w);
                    r
                }),
            };
            if let Err(e) = written {
                // No ffmpeg at all stops the run; anything else stops only the annotating.
                if let retinaface::Error::ToolNotFound { .. } = e {
                    return Err(e.into());
                }
                self.bar.suspend(|| report(self.path, e));
                self.ok = false;
                self.annotate = None;
                self.writer = None;
            }
        }
        Ok(())
    }
}

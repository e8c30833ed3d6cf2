//! Video in and out through the system's `ffmpeg` program, as a child process: frames come
//! out of it as raw RGBA on a pipe and annotated frames go into a second one as raw RGB, so
//! any container, codec or capture device that ffmpeg reads works and nothing of libav is
//! linked (no build-time dependency, no licence question, the user's ffmpeg updates apart).
//!
//! ```no_run
//! use retinaface::video::VideoReader;
//! let detector = retinaface::Detector::new(None)?;
//! for frame in VideoReader::open("clip.mp4".as_ref(), None)? {
//!     let frame = frame?;
//!     let faces = detector.detect(&frame.image)?;
//!     println!("frame {} at {:.3} s: {} faces", frame.index, frame.time, faces.len());
//! }
//! # Ok::<(), retinaface::Error>(())
//! ```

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use image::{RgbImage, RgbaImage};

use crate::error::{Error, Result};

/// File name extensions taken as video (lower case). Others are sniffed by [`is_video`].
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "mpg", "mpeg", "ts", "m2ts", "mts", "wmv", "flv",
    "3gp", "ogv", "gif", "y4m", "nut", "mxf",
];

/// Whether `path` names a video rather than a still image: a capture device (`/dev/video*`),
/// a name ending in one of [`VIDEO_EXTENSIONS`], or, for a name ending in neither those nor
/// .jpg/.jpeg/.png, a file whose first bytes are a video container's signature (Matroska or
/// WebM, MP4 or QuickTime, AVI, Ogg, FLV, GIF, Y4M, MPEG program or transport stream).
pub fn is_video(path: &Path) -> bool {
    if is_capture_device(path) {
        return true;
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some(e) if VIDEO_EXTENSIONS.contains(&e) => true,
        Some("jpg" | "jpeg" | "png") => false,
        _ => sniff(path),
    }
}

/// Linux capture devices, read through ffmpeg's v4l2 input.
fn is_capture_device(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with("/dev/video"))
}

fn sniff(path: &Path) -> bool {
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path)
        .and_then(|mut f| {
            let mut n = 0;
            while n < head.len() {
                match f.read(&mut head[n..])? {
                    0 => break,
                    k => n += k,
                }
            }
            Ok(n)
        })
        .unwrap_or(0);
    let h = &head[..n];
    h.starts_with(b"\x1a\x45\xdf\xa3") // EBML: Matroska, WebM
        || (h.len() >= 12 && &h[4..8] == b"ftyp") // ISO base media: MP4, MOV, 3GP
        || (h.starts_with(b"RIFF") && h.len() >= 12 && &h[8..12] == b"AVI ")
        || h.starts_with(b"OggS")
        || h.starts_with(b"FLV")
        || h.starts_with(b"GIF8")
        || h.starts_with(b"YUV4MPEG2")
        || h.starts_with(b"\x00\x00\x01\xba") // MPEG program stream
        || (h.first() == Some(&0x47) && is_transport_stream(path))
}

/// MPEG-TS has only a sync byte every 188 bytes; one byte alone says too little.
fn is_transport_stream(path: &Path) -> bool {
    let mut buf = vec![0u8; 188 * 3 + 1];
    let ok = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut buf));
    ok.is_ok() && (0..4).all(|k| buf[k * 188] == 0x47)
}

/// One decoded frame.
pub struct VideoFrame {
    /// Position in the stream, from 0, counting every decoded frame (also those a caller
    /// skips).
    pub index: u64,
    /// Presentation time in seconds, as the container gives it (else `index / frame rate`).
    pub time: f64,
    pub image: RgbaImage,
}

/// What the thread reading ffmpeg's log learns.
enum LogEvent {
    /// The stream's nominal frame rate, `num/den`.
    Rate(u32, u32),
    /// A frame is about to come out of the pipe.
    Frame {
        time: Option<f64>,
        width: u32,
        height: u32,
    },
}

/// Decodes a video (or capture device) with an `ffmpeg` child process; an iterator of
/// frames. Frames are read from the pipe as they are asked for, so a slow consumer holds
/// ffmpeg back instead of piling frames up in memory.
///
/// Sizes and timestamps come from ffmpeg's own `showinfo` filter on its log (a single process
/// also suits capture devices, which cannot be opened twice for probing). When ffmpeg ends
/// with an error status or logged an error (a truncated file ends with "File ended
/// prematurely" and status 0), the iterator's last item is [`Error::Video`] with the number
/// of frames decoded.
pub struct VideoReader {
    path: PathBuf,
    child: Child,
    stdout: ChildStdout,
    events: mpsc::Receiver<LogEvent>,
    log: Option<JoinHandle<Vec<String>>>,
    size: Option<(u32, u32)>,
    rate: Option<(u32, u32)>,
    decoded: u64,
    done: bool,
}

impl VideoReader {
    /// Starts ffmpeg on `path`. `format` forces ffmpeg's input format (`-f`, e.g. `v4l2`,
    /// `avfoundation`); `/dev/video*` gets `v4l2` without it.
    pub fn open(path: &Path, format: Option<&str>) -> Result<Self> {
        let format = format.or(is_capture_device(path).then_some("v4l2"));
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-nostdin", "-nostats"])
            // Every log line tagged with its level: errors are told from showinfo's lines.
            .args(["-loglevel", "level+info"]);
        if let Some(f) = format {
            cmd.args(["-f", f]);
        }
        cmd.arg("-i")
            .arg(path)
            .args(["-map", "0:v:0", "-an", "-sn", "-dn", "-vf", "showinfo"])
            // One output frame per decoded frame: rawvideo's default (constant rate) would
            // duplicate or drop frames of a variable-rate stream.
            .args(["-vsync", "passthrough"])
            .args(["-f", "rawvideo", "-pix_fmt", "rgba", "pipe:1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn(cmd, "ffmpeg")?;
        let (stdout, stderr) = match (child.stdout.take(), child.stderr.take()) {
            (Some(o), Some(e)) => (o, e),
            _ => {
                return Err(Error::Video {
                    path: path.to_path_buf(),
                    frames: 0,
                    reason: "ffmpeg started without its pipes".into(),
                })
            }
        };
        let (tx, events) = mpsc::channel();
        let log = std::thread::spawn(move || read_decoder_log(stderr, tx));
        Ok(VideoReader {
            path: path.to_path_buf(),
            child,
            stdout,
            events,
            log: Some(log),
            size: None,
            rate: None,
            decoded: 0,
            done: false,
        })
    }

    /// The stream's nominal frame rate as `(num, den)`, once the first frame is out (`None`
    /// for streams that declare none).
    pub fn frame_rate(&self) -> Option<(u32, u32)> {
        self.rate
    }

    /// Frames handed out so far.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    fn error(&self, reason: String) -> Error {
        Error::Video {
            path: self.path.clone(),
            frames: self.decoded,
            reason,
        }
    }

    /// ffmpeg has no more frames: its verdict, from its status and log.
    fn finish(&mut self) -> Option<Result<VideoFrame>> {
        self.done = true;
        let (status, errors) = wait_for(&mut self.child, &mut self.log);
        let reason = match status {
            Err(e) => Some(format!("cannot wait for ffmpeg: {e}")),
            Ok(_) if !errors.is_empty() => Some(format!("ffmpeg: {}", errors.join("; "))),
            Ok(s) if !s.success() => Some(format!("ffmpeg exited with {s}")),
            Ok(_) => None,
        };
        reason.map(|r| Err(self.error(r)))
    }
}

impl Iterator for VideoReader {
    type Item = Result<VideoFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let (time, width, height) = loop {
            match self.events.recv() {
                Ok(LogEvent::Rate(num, den)) => self.rate = Some((num, den)),
                Ok(LogEvent::Frame {
                    time,
                    width,
                    height,
                }) => break (time, width, height),
                // The log closed: ffmpeg has exited.
                Err(_) => return self.finish(),
            }
        };
        // ffmpeg scales later frames to the first one's size if the stream changes size.
        let (w, h) = *self.size.get_or_insert((width, height));
        let mut rgba = vec![0u8; w as usize * h as usize * 4];
        if let Err(e) = self.stdout.read_exact(&mut rgba) {
            let _ = self.child.kill();
            let tail = self.finish();
            let reason = format!(
                "frame {} was cut short on ffmpeg's pipe ({e})",
                self.decoded
            );
            return Some(match tail {
                Some(Err(Error::Video { reason: r, .. })) => {
                    Err(self.error(format!("{r}; {reason}")))
                }
                _ => Err(self.error(reason)),
            });
        }
        let image = match RgbaImage::from_raw(w, h, rgba) {
            Some(i) => i,
            None => {
                self.done = true;
                return Some(Err(self.error(format!("frame size {w}x{h} does not fit"))));
            }
        };
        let index = self.decoded;
        self.decoded += 1;
        let time = time.unwrap_or_else(|| match self.rate {
            Some((num, den)) if num > 0 => index as f64 * den as f64 / num as f64,
            _ => index as f64,
        });
        Some(Ok(VideoFrame { index, time, image }))
    }
}

impl Drop for VideoReader {
    fn drop(&mut self) {
        // A consumer that stops early (an error, a closed stdout) must not leave ffmpeg
        // blocked on a full pipe.
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `cmd`; a missing program is the user's setup to fix, not a video's fault.
/// ffmpeg's exit status once it has ended, and the error lines its log thread collected.
fn wait_for(
    child: &mut Child,
    log: &mut Option<JoinHandle<Vec<String>>>,
) -> (std::io::Result<std::process::ExitStatus>, Vec<String>) {
    let status = child.wait();
    let errors = log.take().and_then(|h| h.join().ok()).unwrap_or_default();
    (status, errors)
}

fn spawn(mut cmd: Command, program: &str) -> Result<Child> {
    cmd.spawn().map_err(|e| match e.kind() {
        ErrorKind::NotFound => Error::ToolNotFound {
            program: program.into(),
        },
        _ => Error::Video {
            path: PathBuf::from(program),
            frames: 0,
            reason: format!("cannot start {program}: {e}"),
        },
    })
}

/// Reads ffmpeg's stderr to its end: showinfo's lines become events, error lines are kept
/// (the first few) for the verdict.
fn read_decoder_log(stderr: impl Read, events: mpsc::Sender<LogEvent>) -> Vec<String> {
    let mut errors = Vec::new();
    for line in log_lines(stderr) {
        if let Some(event) = parse_showinfo(&line) {
            // The reader may have stopped listening; the log is still drained.
            let _ = events.send(event);
        } else if let Some(message) = error_message(&line) {
            if errors.len() < 4 {
                errors.push(message);
            }
        }
    }
    errors
}

/// Log lines, split at `\n` or `\r`, invalid UTF-8 replaced.
fn log_lines(stderr: impl Read) -> impl Iterator<Item = String> {
    let mut reader = BufReader::new(stderr);
    std::iter::from_fn(move || {
        let mut buf = Vec::new();
        loop {
            let available = match reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => &[],
            };
            if available.is_empty() {
                return (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned());
            }
            match available.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(i) => {
                    buf.extend_from_slice(&available[..i]);
                    reader.consume(i + 1);
                    return Some(String::from_utf8_lossy(&buf).into_owned());
                }
                None => {
                    let n = available.len();
                    buf.extend_from_slice(available);
                    reader.consume(n);
                }
            }
        }
    })
}

/// `[Parsed_showinfo_0 @ 0x..] [info] n:   3 pts:    600 pts_time:0.6  ... s:500x375 ...`
/// and `... config in time_base: 1/1000, frame_rate: 5/1`.
fn parse_showinfo(line: &str) -> Option<LogEvent> {
    if !line.contains("Parsed_showinfo") {
        return None;
    }
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_string)
    };
    if line.contains("config in") {
        let (_, rate) = line.split_once("frame_rate:")?;
        let (num, den) = rate.trim().split_once('/')?;
        let (num, den) = (num.parse().ok()?, den.trim().parse().ok()?);
        return (num > 0 && den > 0).then_some(LogEvent::Rate(num, den));
    }
    // " n:" with its space: "n:" alone would also match inside "pts_time:" and others.
    if !line.contains(" n:") {
        return None;
    }
    let (w, h) = field("s:")?
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))?;
    // "NOPTS" where the container has no timestamp.
    let time = field("pts_time:").and_then(|t| t.parse::<f64>().ok());
    Some(LogEvent::Frame {
        time,
        width: w,
        height: h,
    })
}

/// The message of an `[error]` or `[fatal]` line, without its level and context tags.
fn error_message(line: &str) -> Option<String> {
    let (_, rest) = line
        .split_once("[error] ")
        .or_else(|| line.split_once("[fatal] "))
        .or_else(|| line.split_once("[panic] "))?;
    let rest = rest.trim();
    (!rest.is_empty()).then(|| rest.to_string())
}

/// Encodes frames into a video file with an `ffmpeg` child process reading raw RGB from a
/// pipe; no audio. ffmpeg picks the codec from the file name (`.mp4`: H.264 where it has
/// libx264); MP4 and QuickTime files get yuv420p, padded to even sides, so that common
/// players open them.
pub struct VideoWriter {
    path: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    log: Option<JoinHandle<Vec<String>>>,
    size: (u32, u32),
    written: u64,
}

impl VideoWriter {
    /// `rate` is the frame rate as ffmpeg takes it: `"30000/1001"`, `"25"`, `"2.5"`.
    pub fn create(path: &Path, width: u32, height: u32, rate: &str) -> Result<Self> {
        let mut cmd = Command::new("ffmpeg");
        cmd.args([
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-loglevel",
            "level+error",
        ])
        .args(["-y", "-f", "rawvideo", "-pix_fmt", "rgb24"])
        .args(["-s", &format!("{width}x{height}"), "-framerate", rate])
        .args(["-i", "pipe:0", "-an"]);
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if matches!(ext.as_deref(), Some("mp4" | "m4v" | "mov")) {
            cmd.args([
                "-vf",
                "pad=ceil(iw/2)*2:ceil(ih/2)*2",
                "-pix_fmt",
                "yuv420p",
            ]);
        }
        cmd.arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn(cmd, "ffmpeg")?;
        let stdin = child.stdin.take();
        let log = child.stderr.take().map(|stderr| {
            std::thread::spawn(move || {
                log_lines(stderr)
                    .filter_map(|l| error_message(&l))
                    .take(4)
                    .collect()
            })
        });
        Ok(VideoWriter {
            path: path.to_path_buf(),
            child,
            stdin,
            log,
            size: (width, height),
            written: 0,
        })
    }

    /// Appends a frame; it must have the size the writer was created with.
    pub fn write(&mut self, frame: &RgbImage) -> Result<()> {
        if frame.dimensions() != self.size {
            return Err(self.write_error(format!(
                "frame {} is {}x{}, the video is {}x{}",
                self.written,
                frame.width(),
                frame.height(),
                self.size.0,
                self.size.1
            )));
        }
        let result = match &mut self.stdin {
            Some(stdin) => stdin.write_all(frame.as_raw()),
            None => Err(ErrorKind::BrokenPipe.into()),
        };
        match result {
            Ok(()) => {
                self.written += 1;
                Ok(())
            }
            // ffmpeg has gone: its own log says why.
            Err(e) => {
                self.stdin = None;
                let (_, errors) = wait_for(&mut self.child, &mut self.log);
                Err(self.write_error(if errors.is_empty() {
                    format!("ffmpeg stopped taking frames ({e})")
                } else {
                    format!("ffmpeg: {}", errors.join("; "))
                }))
            }
        }
    }

    /// Ends the stream and waits for ffmpeg to finish the file; returns the frames written.
    pub fn finish(mut self) -> Result<u64> {
        // Closing the pipe is ffmpeg's end of input.
        self.stdin = None;
        let (status, errors) = wait_for(&mut self.child, &mut self.log);
        match status {
            Ok(s) if s.success() && errors.is_empty() => Ok(self.written),
            Ok(s) => Err(self.write_error(if errors.is_empty() {
                format!("ffmpeg exited with {s}")
            } else {
                format!("ffmpeg: {}", errors.join("; "))
            })),
            Err(e) => Err(self.write_error(format!("cannot wait for ffmpeg: {e}"))),
        }
    }

    fn write_error(&self, reason: String) -> Error {
        Error::WriteFile {
            path: self.path.clone(),
            reason,
        }
    }
}

impl Drop for VideoWriter {
    fn drop(&mut self) {
        // Not finished (an error elsewhere): end ffmpeg's input so it exits, and reap it.
        self.stdin = None;
        let _ = self.child.wait();
    }
}

/// Which decoded frames to run detection on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FrameSelect {
    /// Every frame.
    All,
    /// Frames 0, n, 2n, ...
    Every(u64),
    /// At most this many frames per second of video time: the first frame at or after each
    /// multiple of 1/fps seconds.
    Fps(f64),
}

/// Applies a [`FrameSelect`] to frames in stream order.
pub struct FrameSampler {
    select: FrameSelect,
    /// With `Fps`: the video time the next kept frame must reach.
    next_time: f64,
}

impl FrameSampler {
    pub fn new(select: FrameSelect) -> Self {
        FrameSampler {
            select,
            next_time: f64::NEG_INFINITY,
        }
    }

    /// Whether to keep the frame with this index and time.
    pub fn keep(&mut self, index: u64, time: f64) -> bool {
        // Timestamps like 0.2 arrive as 0.19999..; a microsecond's slack keeps them on time.
        const SLACK: f64 = 1e-6;
        match self.select {
            FrameSelect::All => true,
            FrameSelect::Every(n) => index.is_multiple_of(n.max(1)),
            FrameSelect::Fps(fps) => {
                if time + SLACK < self.next_time {
                    return false;
                }
                self.next_time = (((time + SLACK) * fps).floor() + 1.0) / fps;
                true
            }
        }
    }

    /// The frame rate of the kept frames, for a video of them that plays at the source's
    /// speed, given the source's rate (`None`: unknown, 25 assumed).
    pub fn output_rate(&self, source: Option<(u32, u32)>) -> String {
        let (num, den) = source.unwrap_or((25, 1));
        match self.select {
            FrameSelect::All => format!("{num}/{den}"),
            FrameSelect::Every(n) => format!("{num}/{}", den as u64 * n.max(1)),
            FrameSelect::Fps(fps) => format!("{fps}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn showinfo_lines_give_size_time_and_rate() {
        let frame = "[Parsed_showinfo_0 @ 0x5593e1a49580] [info] n:   1 pts:    200 pts_time:0.2     pos:   192974 fmt:rgba sar:1/1 s:500x375 i:P iskey:0 type:I checksum:A4B0B44F";
        match parse_showinfo(frame) {
            Some(LogEvent::Frame {
                time,
                width,
                height,
            }) => assert_eq!((time, width, height), (Some(0.2), 500, 375)),
            _ => panic!("frame line not parsed"),
        }
        let nopts = frame.replace("pts_time:0.2", "pts_time:NOPTS");
        assert!(matches!(
            parse_showinfo(&nopts),
            Some(LogEvent::Frame { time: None, .. })
        ));
        let config =
            "[Parsed_showinfo_0 @ 0x55] [info] config in time_base: 1/1000, frame_rate: 30000/1001";
        assert!(matches!(
            parse_showinfo(config),
            Some(LogEvent::Rate(30000, 1001))
        ));
        let unknown = config.replace("30000/1001", "0/0");
        assert!(parse_showinfo(&unknown).is_none());
        let side =
            "[Parsed_showinfo_0 @ 0x55] [info]   side data - unknown side data type 15 (524 bytes)";
        assert!(parse_showinfo(side).is_none());
    }

    #[test]
    fn error_lines_are_told_from_the_rest() {
        assert_eq!(
            error_message("[matroska,webm @ 0x55] [error] File ended prematurely").as_deref(),
            Some("File ended prematurely")
        );
        assert_eq!(
            error_message("[fatal] clip.mp4: Invalid data found when processing input").as_deref(),
            Some("clip.mp4: Invalid data found when processing input")
        );
        assert!(error_message("[info] Stream mapping:").is_none());
        assert!(error_message("[warning] -vsync is deprecated").is_none());
    }

    #[test]
    fn log_lines_split_at_newlines_and_carriage_returns() {
        let lines: Vec<String> = log_lines(&b"a\nb\rc\r\nd"[..]).collect();
        assert_eq!(lines, ["a", "b", "c", "", "d"]);
    }

    #[test]
    fn every_n_keeps_multiples_of_n() {
        let mut s = FrameSampler::new(FrameSelect::Every(3));
        let kept: Vec<u64> = (0..10).filter(|&i| s.keep(i, i as f64 / 25.0)).collect();
        assert_eq!(kept, [0, 3, 6, 9]);
        assert_eq!(s.output_rate(Some((25, 1))), "25/3");
    }

    #[test]
    fn fps_keeps_the_first_frame_of_each_period() {
        // 25 fps down to 5: every fifth frame, 0.2 s apart, despite 0.04 * 5 != 0.2 in f64.
        let mut s = FrameSampler::new(FrameSelect::Fps(5.0));
        let kept: Vec<u64> = (0..26).filter(|&i| s.keep(i, i as f64 * 0.04)).collect();
        assert_eq!(kept, [0, 5, 10, 15, 20, 25]);
        // Irregular timestamps: the first frame at or after each 0.5 s mark.
        let mut s = FrameSampler::new(FrameSelect::Fps(2.0));
        let times = [0.0, 0.3, 0.49, 0.51, 0.9, 1.7, 1.8, 2.0];
        let kept: Vec<f64> = times
            .iter()
            .enumerate()
            .filter(|(i, &t)| s.keep(*i as u64, t))
            .map(|(_, &t)| t)
            .collect();
        assert_eq!(kept, [0.0, 0.51, 1.7, 2.0]);
    }

    #[test]
    fn names_and_signatures_say_video() {
        assert!(is_video(Path::new("clip.MP4")));
        assert!(is_video(Path::new("/dev/video0")));
        assert!(!is_video(Path::new("photo.jpg")));
        let dir =
            std::env::temp_dir().join(format!("retinaface-video-sniff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mkv = dir.join("clip.bin");
        std::fs::write(&mkv, b"\x1a\x45\xdf\xa3\x01\x00\x00\x00\x00\x00\x00\x23").unwrap();
        assert!(is_video(&mkv));
        let mp4 = dir.join("clip");
        std::fs::write(&mp4, b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00").unwrap();
        assert!(is_video(&mp4));
        let jpeg = dir.join("photo");
        std::fs::write(&jpeg, b"\xff\xd8\xff\xe0\x00\x10JFIF\x00").unwrap();
        assert!(!is_video(&jpeg));
        // A .png name is an image whatever its bytes: the decoder then says what is wrong.
        let png = dir.join("odd.png");
        std::fs::write(&png, b"\x1a\x45\xdf\xa3").unwrap();
        assert!(!is_video(&png));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

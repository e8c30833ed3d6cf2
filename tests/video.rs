//! `retinaface detect` on videos, through the system's ffmpeg (CI installs it). The clips are
//! made here from the test photos: lossless (FFV1 in Matroska) where frames must equal the
//! still images pixel for pixel, MP4 where only counts and timestamps are checked.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use image::RgbaImage;
use serde_json::Value;

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_retinaface"));
    c.env("RETINAFACE_WEIGHTS", weights_path());
    c
}

/// A fresh directory for one test's files.
fn out_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("retinaface-video-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// small_group.jpg (three faces) decoded as the CLI decodes stills, its mirror image, a grey
/// frame without faces, and the photo again: frames that differ, all 500x375.
fn frames() -> Vec<RgbaImage> {
    let photo = retinaface::image_io::load_path(&testdata().join("images/small_group.jpg"))
        .expect("test photo");
    let mirrored = image::imageops::flip_horizontal(&photo);
    let grey = RgbaImage::from_pixel(photo.width(), photo.height(), image::Rgba([128; 4]));
    vec![photo.clone(), mirrored, grey, photo]
}

/// Encodes `frames` at `rate` frames per second into `path` with ffmpeg, raw RGBA in on a
/// pipe; `codec` are ffmpeg's output options.
fn make_clip(frames: &[RgbaImage], rate: u32, path: &Path, codec: &[&str]) {
    let (w, h) = frames[0].dimensions();
    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgba"])
        .args(["-s", &format!("{w}x{h}"), "-framerate", &rate.to_string()])
        .args(["-i", "pipe:0"])
        .args(codec)
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("these tests need ffmpeg on PATH (apt-get install ffmpeg)");
    let mut stdin = ffmpeg.stdin.take().unwrap();
    for f in frames {
        stdin.write_all(f.as_raw()).unwrap();
    }
    drop(stdin);
    assert!(ffmpeg.wait().unwrap().success(), "ffmpeg made {path:?}");
}

/// Lossless and RGB: the decoder gives back exactly the pixels put in.
const LOSSLESS: &[&str] = &["-c:v", "ffv1", "-pix_fmt", "bgr0"];

fn lines(out: &std::process::Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const OPTIONS: &[&str] = &["--threshold", "0.5", "--resize", "original"];

fn frame_numbers(lines: &[Value]) -> Vec<u64> {
    lines.iter().map(|l| l["frame"].as_u64().unwrap()).collect()
}

/// ffprobe's count of decoded frames, size and frame rate of the first video stream.
fn probe(path: &Path) -> (u64, u32, u32, String) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,width,height,r_frame_rate",
        ])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    (
        s["nb_read_frames"].as_str().unwrap().parse().unwrap(),
        s["width"].as_u64().unwrap() as u32,
        s["height"].as_u64().unwrap() as u32,
        s["r_frame_rate"].as_str().unwrap().to_string(),
    )
}

#[test]
fn lossless_frames_give_the_still_images_faces_at_their_timestamps() {
    let dir = out_dir("lossless");
    let frames = frames();
    let clip = dir.join("clip.mkv");
    make_clip(&frames, 5, &clip, LOSSLESS);
    // The same pixels as stills, detected as a directory of PNGs would be.
    let stills: Vec<PathBuf> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let p = dir.join(format!("frame{i}.png"));
            f.save(&p).unwrap();
            p
        })
        .collect();
    let still = lines(
        &cli()
            .args(["detect", "--output", "jsonl"])
            .args(OPTIONS)
            .args(&stills)
            .output()
            .unwrap(),
    );
    let video = lines(
        &cli()
            .arg("detect")
            .args(OPTIONS)
            .arg(&clip)
            .output()
            .unwrap(),
    );
    assert_eq!(frame_numbers(&video), [0, 1, 2, 3]);
    for (i, (v, s)) in video.iter().zip(&still).enumerate() {
        assert!(
            (v["time"].as_f64().unwrap() - i as f64 * 0.2).abs() < 1e-9,
            "frame {i} at 5 fps: {v}"
        );
        assert_eq!(v["faces"], s["faces"], "frame {i}: the still image's faces");
        assert!(
            v.get("video").is_none(),
            "one input: lines do not repeat its name"
        );
    }
    let faces: Vec<usize> = video
        .iter()
        .map(|v| v["faces"].as_object().unwrap().len())
        .collect();
    assert_eq!(faces, [3, 3, 0, 3]);

    // Named without an extension, the clip is still told from an image by its first bytes.
    let unnamed = dir.join("recording");
    std::fs::copy(&clip, &unnamed).unwrap();
    let sniffed = lines(
        &cli()
            .arg("detect")
            .args(OPTIONS)
            .arg(&unnamed)
            .output()
            .unwrap(),
    );
    assert_eq!(sniffed, video);
}

#[test]
fn every_and_fps_pick_frames_by_number_and_by_time() {
    let dir = out_dir("subsample");
    let mut frames = frames();
    frames.extend(frames.clone());
    let clip = dir.join("clip.mkv");
    // 8 frames at 10 fps: 0.0, 0.1, ... 0.7 s.
    make_clip(&frames, 10, &clip, LOSSLESS);
    let run = |extra: &[&str]| {
        lines(
            &cli()
                .arg("detect")
                .args(OPTIONS)
                .args(extra)
                .arg(&clip)
                .output()
                .unwrap(),
        )
    };
    let all = run(&[]);
    assert_eq!(all.len(), 8);
    let every3 = run(&["--every", "3"]);
    assert_eq!(frame_numbers(&every3), [0, 3, 6]);
    let fps4 = run(&["--fps", "4"]);
    // The first frame at or after 0, 0.25, 0.5 and 0.75 s (there is none after 0.7).
    assert_eq!(frame_numbers(&fps4), [0, 3, 5]);
    for line in every3.iter().chain(&fps4) {
        let n = line["frame"].as_u64().unwrap() as usize;
        assert_eq!(line, &all[n], "a sampled frame is the same frame");
    }
    let bad = cli()
        .args(["detect", "--every", "0"])
        .arg(&clip)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn annotate_writes_the_detected_frames_at_the_sources_size_and_speed() {
    let dir = out_dir("annotate");
    let mut frames = frames();
    frames.extend(frames.clone());
    let clip = dir.join("clip.mkv");
    make_clip(&frames, 10, &clip, LOSSLESS);
    let out = dir.join("boxes.mkv");
    let listed = lines(
        &cli()
            .args(["detect", "--every", "2", "--annotate"])
            .arg(&out)
            .args(OPTIONS)
            .arg(&clip)
            .output()
            .unwrap(),
    );
    assert_eq!(listed.len(), 4);
    // 4 of the 8 frames, at half the rate: the same 0.8 s.
    assert_eq!(probe(&out), (4, 500, 375, "5/1".into()));

    // MP4 gets yuv420p, whose chroma needs even sides: 500x375 is padded to 500x376.
    let mp4 = dir.join("boxes.mp4");
    let listed = lines(
        &cli()
            .args(["detect", "--annotate"])
            .arg(&mp4)
            .args(OPTIONS)
            .arg(&clip)
            .output()
            .unwrap(),
    );
    assert_eq!(listed.len(), 8);
    assert_eq!(probe(&mp4), (8, 500, 376, "10/1".into()));

    // The faces are drawn where the JSON puts them: on the pixels that drawing changes, the
    // (lossy) annotated frame is nearer the frame drawn here than the undrawn one.
    let decoded = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&out)
        .args([
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "pipe:1",
        ])
        .output()
        .unwrap();
    let seen = image::RgbImage::from_raw(500, 375, decoded.stdout).expect("one 500x375 frame");
    let faces = faces_of(&listed[0]);
    assert_eq!(faces.len(), 3);
    let drawn = retinaface::annotate::annotate(&frames[0], &faces);
    let plain = retinaface::annotate::annotate(&frames[0], &[]);
    let (mut to_drawn, mut to_plain, mut changed) = (0u64, 0u64, 0u64);
    for ((d, p), s) in drawn.pixels().zip(plain.pixels()).zip(seen.pixels()) {
        if d != p {
            changed += 1;
            for c in 0..3 {
                to_drawn += (d[c] as i64 - s[c] as i64).unsigned_abs();
                to_plain += (p[c] as i64 - s[c] as i64).unsigned_abs();
            }
        }
    }
    assert!(
        changed > 500,
        "boxes, landmarks and labels change {changed} pixels"
    );
    assert!(
        to_drawn * 3 < to_plain,
        "annotated frame is {to_drawn} from the drawing, {to_plain} from the photo"
    );
}

/// The faces of a JSON line, back as the library's type (the unrounded `box`).
fn faces_of(line: &Value) -> Vec<retinaface::Face> {
    let f32s = |v: &Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    line["faces"]
        .as_object()
        .unwrap()
        .values()
        .map(|f| {
            let b = f32s(&f["box"]);
            let l = &f["landmarks"];
            let point = |k: &str| {
                let p = f32s(&l[k]);
                [p[0], p[1]]
            };
            retinaface::Face {
                score: f["score"].as_f64().unwrap() as f32,
                facial_area: [b[0], b[1], b[2], b[3]],
                landmarks: retinaface::Landmarks::from_points([
                    point("right_eye"),
                    point("left_eye"),
                    point("nose"),
                    point("mouth_right"),
                    point("mouth_left"),
                ]),
            }
        })
        .collect()
}

#[test]
fn an_mp4_gives_every_frame_with_its_timestamp() {
    let dir = out_dir("mp4");
    let frames: Vec<RgbaImage> = frames()
        .into_iter()
        .map(|f| image::imageops::crop_imm(&f, 0, 0, 500, 374).to_image())
        .collect();
    let clip = dir.join("clip.mp4");
    // ffmpeg's default MP4 encoder (H.264 where it has libx264), in the common pixel format.
    make_clip(&frames, 25, &clip, &["-pix_fmt", "yuv420p"]);
    let video = lines(
        &cli()
            .arg("detect")
            .args(OPTIONS)
            .arg(&clip)
            .output()
            .unwrap(),
    );
    assert_eq!(frame_numbers(&video), [0, 1, 2, 3]);
    for (i, v) in video.iter().enumerate() {
        assert!(
            (v["time"].as_f64().unwrap() - i as f64 * 0.04).abs() < 1e-6,
            "{v}"
        );
    }
    // Lossy, so faces are not compared number for number; the grey frame has none.
    let faces: Vec<usize> = video
        .iter()
        .map(|v| v["faces"].as_object().unwrap().len())
        .collect();
    assert_eq!(faces, [3, 3, 0, 3]);
}

#[test]
fn a_truncated_video_prints_what_it_decoded_and_exits_1() {
    let dir = out_dir("truncated");
    let mut frames = frames();
    frames.extend(frames.clone());
    let clip = dir.join("clip.mkv");
    make_clip(&frames, 5, &clip, LOSSLESS);
    let bytes = std::fs::read(&clip).unwrap();
    let cut = dir.join("cut.mkv");
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let out = cli()
        .arg("detect")
        .args(OPTIONS)
        .arg(&cut)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let decoded = stdout.lines().count();
    assert!((1..8).contains(&decoded), "some frames, not all: {stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{decoded} frames were decoded")),
        "{stderr}"
    );
    assert!(stderr.contains("cut.mkv"), "{stderr}");
}

#[test]
fn without_ffmpeg_a_video_is_a_setup_error_saying_how_to_install_it() {
    let dir = out_dir("no-ffmpeg");
    let clip = dir.join("clip.mkv");
    make_clip(&frames()[..1], 5, &clip, LOSSLESS);
    let empty = dir.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let out = cli()
        .env("PATH", &empty)
        .arg("detect")
        .args(OPTIONS)
        .arg(&clip)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`ffmpeg` was not found") && stderr.contains("apt-get install ffmpeg"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn csv_output_refuses_a_video_before_any_work() {
    let dir = out_dir("csv");
    let clip = dir.join("clip.mkv");
    make_clip(&frames()[..1], 5, &clip, LOSSLESS);
    let out = cli()
        .args(["detect", "--output", "csv"])
        .arg(&clip)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--output json or jsonl"));
}

#[test]
fn images_and_videos_mixed_come_out_in_argument_order_with_their_names() {
    let dir = out_dir("mixed");
    let frames = frames();
    let clip = dir.join("clip.mkv");
    make_clip(&frames[..2], 5, &clip, LOSSLESS);
    let photo = testdata().join("images/small_group.jpg");
    let listed = lines(
        &cli()
            .arg("detect")
            .args(OPTIONS)
            .arg(&photo)
            .arg(&clip)
            .arg(&photo)
            .output()
            .unwrap(),
    );
    let kinds: Vec<String> = listed
        .iter()
        .map(|l| match (l.get("image"), l.get("video")) {
            (Some(_), None) => "image".to_string(),
            (None, Some(v)) => format!(
                "{}#{}",
                Path::new(v.as_str().unwrap()).display(),
                l["frame"]
            ),
            _ => panic!("{l}"),
        })
        .collect();
    let c = clip.display();
    assert_eq!(
        kinds,
        [
            "image".to_string(),
            format!("{c}#0"),
            format!("{c}#1"),
            "image".into()
        ]
    );
    assert_eq!(
        listed[1]["faces"], listed[0]["faces"],
        "frame 0 is the photo"
    );
}

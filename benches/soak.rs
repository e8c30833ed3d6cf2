//! Soak: `cargo bench --bench soak [-- --frames 10000 --every 500 --depth 3]`.
//!
//! Streams `--frames` frames cycling through six photos at six small sizes (three aspect
//! ratios, so each size has a plan of its own) through one `Stream`, `--depth` frames in
//! flight. Every `--every` frames it prints the process's resident memory (on a software
//! adapter that includes the "GPU" buffers), the cached plans and the rate; each frame's
//! faces are compared with the same photo's one-at-a-time detection. After warm-up (the first
//! sample, once every size has its plan) RSS must stay flat: a leak of a buffer per frame
//! would show as steady growth.

mod common;

use std::collections::VecDeque;
use std::time::Instant;

use common::*;
use retinaface::{Face, Result};

const SIZES: [(&str, u32, u32); 6] = [
    ("small_group.jpg", 320, 240),
    ("worlds_largest_selfie.jpg", 320, 195),
    ("portrait_frontal.jpg", 192, 240),
    ("tilted_head.png", 180, 200),
    ("profile_face.jpg", 160, 205),
    ("no_face.jpg", 240, 160),
];

fn main() {
    let frames: usize = arg("--frames", 10_000);
    let every: usize = arg("--every", 500).max(1);
    let depth: usize = arg("--depth", 3);
    let d = detector();
    let imgs: Vec<image::RgbaImage> = SIZES.iter().map(|&(n, w, h)| photo(n, w, h)).collect();
    let expected = sequential(&d, &imgs);
    let faces: Vec<usize> = expected.iter().map(Vec::len).collect();
    println!(
        "soak: {frames} frames cycling through {} sizes (faces per photo {faces:?}), {depth} in flight, RSS every {every}",
        SIZES.len()
    );
    println!(
        "RSS before the stream (weights, pipelines, a plan per size): {:.1} MiB",
        rss_mib()
    );
    println!("| frame | RSS MiB | vs first sample | cached plans | frames/s since last | wrong or failed |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");

    let mut stream = d.stream(&opts(), depth);
    let mut queued = VecDeque::new();
    let (mut done, mut wrong) = (0usize, 0usize);
    let check = |done: &mut usize, wrong: &mut usize, i: usize, got: Result<Vec<Face>>| {
        *done += 1;
        if got.as_ref().ok() != Some(&expected[i]) {
            *wrong += 1;
            if *wrong <= 5 {
                eprintln!("frame of {}: {got:?}", SIZES[i].0);
            }
        }
    };
    let t0 = Instant::now();
    let (mut last_t, mut last_n) = (0.0, 0usize);
    let mut samples: Vec<f64> = Vec::new();
    for n in 0..frames {
        let i = n % imgs.len();
        queued.push_back(i);
        match stream.push(&imgs[i]) {
            Ok(Some(got)) => check(&mut done, &mut wrong, queued.pop_front().unwrap_or(i), got),
            Ok(None) => {}
            Err(e) => {
                queued.pop_back();
                check(&mut done, &mut wrong, i, Err(e));
            }
        }
        if (n + 1) % every == 0 || n + 1 == frames {
            let (t, rss) = (t0.elapsed().as_secs_f64(), rss_mib());
            let rate = (n + 1 - last_n) as f64 / (t - last_t);
            samples.push(rss);
            println!(
                "| {} | {rss:.1} | {:+.1} | {} | {rate:.1} | {wrong} |",
                n + 1,
                rss - samples[0],
                d.cached_plans()
            );
            (last_t, last_n) = (t, n + 1);
        }
    }
    for got in stream.finish() {
        check(&mut done, &mut wrong, queued.pop_front().unwrap_or(0), got);
    }
    let secs = t0.elapsed().as_secs_f64();
    let after = &samples[1.min(samples.len() - 1)..];
    let (lo, hi) = after
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    println!(
        "{done} frames in {secs:.1} s ({:.1} frames/s), {wrong} wrong or failed; RSS after the first sample {lo:.1}..{hi:.1} MiB (spread {:.1} MiB)",
        done as f64 / secs,
        hi - lo
    );
    if wrong > 0 || done != frames {
        std::process::exit(1);
    }
}

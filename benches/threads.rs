//! Threads: `cargo bench --bench threads [-- --threads 8 --per-thread 1000]`.
//!
//! `--threads` threads share one `Detector` and each runs `--per-thread` detections, cycling
//! through four photos at four small sizes (each thread starting at a different one, so sizes
//! and plans are mixed at every moment). Every result must equal that photo's sequential
//! detection. Prints the sequential rate (one thread, the same number of detections as one
//! thread of the threaded run) against the threaded rate, and the memory left afterwards.

mod common;

use std::time::Instant;

use common::*;

const SIZES: [(&str, u32, u32); 4] = [
    ("small_group.jpg", 320, 240),
    ("portrait_astronaut.png", 256, 256),
    ("tilted_head.png", 180, 200),
    ("no_face.jpg", 240, 160),
];

fn main() {
    let threads: usize = arg("--threads", 8).max(1);
    let per: usize = arg("--per-thread", 1000).max(1);
    let d = detector();
    let imgs: Vec<image::RgbaImage> = SIZES.iter().map(|&(n, w, h)| photo(n, w, h)).collect();
    let expected = sequential(&d, &imgs);
    println!(
        "{threads} threads x {per} detections on one Detector, {} sizes (faces per photo {:?})",
        SIZES.len(),
        expected.iter().map(Vec::len).collect::<Vec<_>>()
    );

    let t0 = Instant::now();
    let mut wrong_seq = 0;
    for n in 0..per {
        let i = n % imgs.len();
        wrong_seq +=
            (d.detect_with(&imgs[i], &opts()).ok().as_ref() != Some(&expected[i])) as usize;
    }
    let seq = per as f64 / t0.elapsed().as_secs_f64();
    println!("sequential: {per} detections, {seq:.1} detections/s, {wrong_seq} differ from the first pass");

    let t0 = Instant::now();
    let per_thread: Vec<(usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (d, imgs, expected) = (&d, &imgs, &expected);
                s.spawn(move || {
                    let (mut wrong, mut failed) = (0, 0);
                    for n in 0..per {
                        let i = (n + t) % imgs.len();
                        match d.detect_with(&imgs[i], &opts()) {
                            Ok(faces) => wrong += (faces != expected[i]) as usize,
                            Err(e) => {
                                failed += 1;
                                if failed <= 3 {
                                    eprintln!("thread {t}: {e}");
                                }
                            }
                        }
                    }
                    (wrong, failed)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a detection thread panicked"))
            .collect()
    });
    let secs = t0.elapsed().as_secs_f64();
    let total = threads * per;
    let wrong: usize = per_thread.iter().map(|p| p.0).sum();
    let failed: usize = per_thread.iter().map(|p| p.1).sum();
    println!(
        "threaded: {total} detections in {secs:.1} s, {:.1} detections/s ({:.2}x sequential), {wrong} differ from sequential, {failed} failed; RSS {:.1} MiB, {} plans cached",
        total as f64 / secs,
        total as f64 / secs / seq,
        rss_mib(),
        d.cached_plans()
    );
    if wrong + failed + wrong_seq > 0 {
        std::process::exit(1);
    }
}

//! Threads sharing one `Detector` get exactly the faces of one-at-a-time detection: the test
//! size of `cargo bench --bench threads` (8 threads x 1000 detections; figures in
//! benches/RESULTS.md).

mod common;

use std::sync::Barrier;

use common::*;
use retinaface::{DetectOptions, Face, Resize};

const THREADS: usize = 4;
const PER_THREAD: usize = 10;

fn opts() -> DetectOptions {
    DetectOptions {
        threshold: 0.5,
        resize: Resize::Original,
        ..Default::default()
    }
}

/// Three photos at three sizes, so concurrent calls need different plans as well as the
/// same one.
fn photos() -> Vec<image::RgbaImage> {
    [
        ("small_group.jpg", 320, 240),
        ("tilted_head.png", 196, 218),
        ("portrait_astronaut.png", 256, 256),
    ]
    .iter()
    .map(|&(name, w, h)| {
        let img = retinaface::image_io::load_path(&testdata().join("images").join(name)).unwrap();
        image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle)
    })
    .collect()
}

#[test]
fn threads_sharing_a_detector_each_get_the_sequential_faces() {
    let d = detector();
    let imgs = photos();
    let expected: Vec<Vec<Face>> = imgs
        .iter()
        .map(|i| d.detect_with(i, &opts()).unwrap())
        .collect();
    // Equality of empty lists would prove nothing.
    assert_eq!(
        expected.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 1, 1],
        "faces per photo"
    );
    let start = Barrier::new(THREADS);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (imgs, start) = (&imgs, &start);
                s.spawn(move || {
                    // All threads start together, so their calls overlap.
                    start.wait();
                    (0..PER_THREAD)
                        .map(|n| {
                            let i = (n + t) % imgs.len();
                            (i, d.detect_with(&imgs[i], &opts()))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for (t, h) in handles.into_iter().enumerate() {
            let results = h.join().expect("detection thread panicked");
            assert_eq!(results.len(), PER_THREAD);
            for (n, (i, got)) in results.into_iter().enumerate() {
                let got = got.unwrap_or_else(|e| panic!("thread {t}, detection {n}: {e}"));
                assert_eq!(got, expected[i], "thread {t}, detection {n} (photo {i})");
            }
        }
    });
}

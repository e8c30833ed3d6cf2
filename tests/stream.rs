//! Batches and streams give exactly the faces of one-at-a-time detection, in order, with
//! frames of changing sizes in flight together, and a bounded plan cache.

mod common;

use common::*;
use retinaface::{DetectOptions, Error, Face, Resize};

fn opts() -> DetectOptions {
    DetectOptions {
        threshold: 0.5,
        resize: Resize::Original,
        ..Default::default()
    }
}

fn images() -> Vec<image::RgbaImage> {
    [
        "small_group.jpg",
        "tilted_head.png",
        "no_face.jpg",
        "portrait_astronaut.png",
    ]
    .iter()
    .map(|n| retinaface::image_io::load_path(&testdata().join("images").join(n)).unwrap())
    .collect()
}

fn one_by_one(imgs: &[image::RgbaImage]) -> Vec<Vec<Face>> {
    imgs.iter()
        .map(|i| detector().detect_with(i, &opts()).unwrap())
        .collect()
}

#[test]
fn batch_of_mixed_sizes_matches_single_detections_and_keeps_errors_in_place() {
    let mut imgs = images();
    let expected = one_by_one(&imgs);
    assert_eq!(expected[0].len(), 3, "small_group has 3 faces");
    imgs.insert(2, image::RgbaImage::new(1, 1));
    let got = detector().detect_batch(&imgs, &opts());
    assert_eq!(got.len(), 5);
    assert!(matches!(got[2], Err(Error::ImageTooSmall { .. })));
    let ok: Vec<Vec<Face>> = got
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, r)| r.unwrap())
        .collect();
    assert_eq!(ok, expected);
}

#[test]
fn stream_returns_frames_in_order_with_several_in_flight() {
    let imgs = images();
    let expected = one_by_one(&imgs);
    for depth in [1, 3] {
        let mut stream = detector().stream(&opts(), depth);
        let mut got = Vec::new();
        for round in 0..3 {
            for img in &imgs {
                if let Some(done) = stream.push(img).unwrap() {
                    got.push(done.unwrap());
                }
                assert!(
                    stream.in_flight() < depth.max(1),
                    "round {round}: at most depth-1 left after a push"
                );
            }
        }
        got.extend(stream.finish().into_iter().map(|r| r.unwrap()));
        assert_eq!(got.len(), 12);
        for (i, faces) in got.iter().enumerate() {
            assert_eq!(faces, &expected[i % 4], "depth {depth}, frame {i}");
        }
    }
}

#[test]
fn plan_cache_stays_bounded_over_many_sizes() {
    let base = &images()[0];
    let mut stream = detector().stream(&opts(), 2);
    for i in 0..12u32 {
        let img = image::imageops::resize(
            base,
            64 + 8 * i,
            48 + 4 * i,
            image::imageops::FilterType::Triangle,
        );
        stream.push(&img).unwrap();
    }
    drop(stream);
    assert!(
        detector().cached_plans() <= 6,
        "{} plans cached",
        detector().cached_plans()
    );
}

#[test]
fn threads_share_one_detector() {
    let imgs = images();
    let expected = one_by_one(&imgs);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|t| {
                let imgs = &imgs;
                s.spawn(move || {
                    (0..4)
                        .map(|i| detector().detect_with(&imgs[(i + t) % 4], &opts()).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for (t, h) in handles.into_iter().enumerate() {
            for (i, faces) in h.join().unwrap().iter().enumerate() {
                assert_eq!(faces, &expected[(i + t) % 4], "thread {t}, image {i}");
            }
        }
    });
}

//! End to end against the reference's detections (testdata/golden/*.json, made by a numpy /
//! onnxruntime float32 implementation of biubug6's RetinaFace; see testdata/golden/README.md):
//! threshold 0.5, NMS 0.4, each image at its own size, `large_highres` also at 1/4 scale.

mod common;

use common::*;
use retinaface::{DetectOptions, Face, Resize};
use serde_json::Value;

/// Scores closer than this to the threshold may flip when our JPEG decoder's pixels differ
/// from libjpeg-turbo's by a grey level (the allowance); nothing else may differ.
const BORDERLINE: f32 = 2e-3;
const THRESHOLD: f32 = 0.5;

fn golden(stem: &str) -> Value {
    let path = testdata().join("golden").join(format!("{stem}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn options(resize: Resize) -> DetectOptions {
    DetectOptions {
        threshold: THRESHOLD,
        nms_threshold: 0.4,
        resize,
        allow_upscaling: false,
    }
}

fn f(v: &Value) -> f32 {
    v.as_f64().unwrap() as f32
}

fn compare(stem: &str, faces: &[Face], g: &Value) {
    let want: Vec<&Value> = g["detections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| (f(&d["score"]) - THRESHOLD).abs() >= BORDERLINE)
        .collect();
    let got: Vec<&Face> = faces
        .iter()
        .filter(|d| (d.score - THRESHOLD).abs() >= BORDERLINE)
        .collect();
    assert_eq!(
        got.len(),
        want.len(),
        "{stem}: {} faces, reference {}",
        got.len(),
        want.len()
    );
    let (mut worst_score, mut worst_px) = (0f32, 0f32);
    for (i, (ours, theirs)) in got.iter().zip(&want).enumerate() {
        let ds = (ours.score - f(&theirs["score"])).abs();
        worst_score = worst_score.max(ds);
        assert!(
            ds <= 1e-3,
            "{stem} face {i}: score {} vs {}",
            ours.score,
            theirs["score"]
        );
        let boxes = theirs["box"].as_array().unwrap();
        for k in 0..4 {
            let d = (ours.facial_area[k] - f(&boxes[k])).abs();
            worst_px = worst_px.max(d);
            assert!(
                d <= 0.5,
                "{stem} face {i}: box {:?} vs {boxes:?}",
                ours.facial_area
            );
        }
        let marks = theirs["landmarks"].as_array().unwrap();
        for (p, point) in ours.landmarks.points().iter().enumerate() {
            for k in 0..2 {
                let d = (point[k] - f(&marks[p][k])).abs();
                worst_px = worst_px.max(d);
                assert!(
                    d <= 0.5,
                    "{stem} face {i}: landmark {p} {point:?} vs {:?}",
                    marks[p]
                );
            }
        }
    }
    eprintln!("{stem}: {} faces, max score error {worst_score:.1e}, max coordinate error {worst_px:.3} px", got.len());
}

fn check(stem: &str) {
    check_on(detector(), stem);
}

fn check_on(det: &retinaface::Detector, stem: &str) {
    let g = golden(stem);
    // Paths in the JSONs are relative to different roots; the file name is what matters.
    let source = std::path::Path::new(g["image_source"].as_str().unwrap());
    let image = testdata().join("images").join(source.file_name().unwrap());
    let faces = det
        .detect_path_with(&image, &options(Resize::Original))
        .unwrap();
    compare(stem, &faces, &g);
}

/// The portable kernel family (what adapters without subgroups run) reproduces the
/// reference too; CI's adapter would otherwise only ever run the subgroup family.
#[test]
fn portable_kernels_match_the_reference() {
    for stem in ["small_group", "tilted_head", "crowd_tiny_faces"] {
        check_on(portable_detector(), stem);
    }
}

#[test]
fn alpha_rgba() {
    check("alpha_rgba");
}
#[test]
fn crowd_tiny_faces() {
    check("crowd_tiny_faces");
}
#[test]
fn grayscale() {
    check("grayscale");
}
#[test]
fn no_face() {
    check("no_face");
}
#[test]
fn no_face_dogs() {
    check("no_face_dogs");
}
#[test]
fn portrait_astronaut() {
    check("portrait_astronaut");
}
#[test]
fn portrait_frontal() {
    check("portrait_frontal");
}
#[test]
fn profile_face() {
    check("profile_face");
}
#[test]
fn small_group() {
    check("small_group");
}
#[test]
fn tilted_head() {
    check("tilted_head");
}
#[test]
fn worlds_largest_selfie() {
    check("worlds_largest_selfie");
}

#[test]
fn large_highres_at_quarter_scale() {
    let g = golden("large_highres_resize0.25");
    // 1088 / 4352 is exactly the reference's factor 0.25, and 2903 * 0.25 rounds to 726.
    let image = testdata().join("images/large_highres.jpg");
    let faces = detector()
        .detect_path_with(&image, &options(Resize::MaxSide(1088)))
        .unwrap();
    compare("large_highres_resize0.25", &faces, &g);
}

/// The 4352x2903 photo at its own size: its 202 MB network input and 150 MB activations
/// exceed a 128 MiB storage binding (lavapipe's, and most GPUs'), so those layers run in
/// bands of rows (`ops::band`); the reference's faces come back all the same.
#[test]
fn large_highres_native_runs_in_bands() {
    let image = testdata().join("images/large_highres.jpg");
    let det = detector();
    let opts = options(Resize::Original);
    let img = retinaface::image_io::load_path(&image).unwrap();
    let (faces, profile) = det.detect_profiled(&img, &opts).unwrap();
    let limit = det.context().max_binding_bytes();
    let bands = profile
        .steps
        .iter()
        .filter(|s| s.label.contains("(band "))
        .count();
    eprintln!("large_highres native: {bands} banded dispatches (binding limit {limit})");
    if limit < 202_000_000 && !profile.steps.is_empty() {
        assert!(
            bands > 0,
            "a {limit}-byte binding cannot hold the input: no bands ran"
        );
    }
    compare("large_highres", &faces, &golden("large_highres"));
}

#[test]
fn the_640x640_tensor_of_test_raw() {
    // The network input is given as a tensor, so this checks the network and the GPU
    // post-processing without any decoder or resampler in the way.
    let (_, x) = read_tensor(&testdata().join("golden/test_raw.safetensors"), "input");
    let faces = detector()
        .detect_tensor(
            &nchw_to_hwc(&x, 3, 640, 640),
            640,
            640,
            &options(Resize::Original),
        )
        .unwrap();
    compare("test_640x640", &faces, &golden("test_640x640"));
}

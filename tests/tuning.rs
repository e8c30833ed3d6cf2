//! Kernel choice per layer: whatever variant runs a layer, the detections are the same, and
//! `Detector::tune` measures, applies and saves its choices.

mod common;

use std::time::Duration;

use common::*;
use retinaface::model::weights::Weights;
use retinaface::ops::conv::Variant;
use retinaface::tuning::Tuning;
use retinaface::{DetectOptions, Detector, Face, GpuContext, KernelPath, Resize};

fn fresh(path: KernelPath) -> Detector {
    let w = Weights::load(&weights_path()).expect("shared weights");
    let ctx = GpuContext::new().expect("tests need a wgpu adapter (lavapipe on CI)");
    Detector::with_kernel_path(ctx, &w, path).unwrap()
}

fn options() -> DetectOptions {
    DetectOptions {
        threshold: 0.5,
        nms_threshold: 0.4,
        resize: Resize::Original,
        allow_upscaling: false,
    }
}

/// DESIGN.md's end-to-end contract: same faces, score within 1e-3, coordinates within 0.5 px.
fn assert_same(what: &str, got: &[Face], want: &[Face]) {
    assert_eq!(got.len(), want.len(), "{what}: face count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g.score - w.score).abs() <= 1e-3, "{what} face {i}: score");
        for k in 0..4 {
            let d = (g.facial_area[k] - w.facial_area[k]).abs();
            assert!(
                d <= 0.5,
                "{what} face {i}: box {:?} vs {:?}",
                g.facial_area,
                w.facial_area
            );
        }
        for (p, q) in g.landmarks.points().iter().zip(w.landmarks.points().iter()) {
            assert!(
                (p[0] - q[0]).abs() <= 0.5 && (p[1] - q[1]).abs() <= 0.5,
                "{what} face {i}: landmark"
            );
        }
    }
}

#[test]
fn every_variant_gives_the_same_faces() {
    let image = testdata().join("images/small_group.jpg");
    for path in [KernelPath::Subgroup, KernelPath::Portable] {
        let det = fresh(path);
        det.set_tuning(Tuning::default());
        let want = det.detect_path_with(&image, &options()).unwrap();
        assert!(want.len() >= 3, "small_group has faces");
        for v in Variant::of(path) {
            det.set_tuning(Tuning::forcing(v));
            let got = det.detect_path_with(&image, &options()).unwrap();
            assert_same(&format!("{path:?} {v:?}"), &got, &want);
        }
    }
}

#[test]
fn tune_measures_applies_and_saves() {
    let det = fresh(KernelPath::Subgroup);
    det.set_tuning(Tuning::default());
    let image =
        retinaface::image_io::load_path(&testdata().join("images/small_group.jpg")).unwrap();
    let image = image::imageops::resize(&image, 160, 120, image::imageops::FilterType::Triangle);
    let before = det.detect_with(&image, &options()).unwrap();

    let report = det.tune(160, 120, Duration::from_secs(120)).unwrap();
    // MobileNet0.25 at 160x120: 26 distinct conv shapes with the heads; each one measured.
    assert!(report.len() >= 20, "{} shapes", report.len());
    for m in &report {
        assert!(m.candidates.len() >= 2, "{}: candidates", m.layer);
        assert!(m
            .candidates
            .iter()
            .all(|(v, ms)| v.runs(&m.shape) && ms.is_finite() && *ms > 0.0));
        let fastest = m
            .candidates
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap()
            .0;
        assert_eq!(m.chosen, fastest, "{}", m.layer);
        assert_eq!(
            det.tuning().variant(KernelPath::Subgroup, &m.shape),
            m.chosen
        );
    }
    assert_eq!(det.tuning().len(), report.len());
    let after = det.detect_with(&image, &options()).unwrap();
    assert_same("after tuning", &after, &before);

    // Saved per adapter and family, and read back as it was.
    let file = std::env::temp_dir().join(format!("rf-tune-{}/tuning.json", std::process::id()));
    det.tuning().save(&file, &det.tuning_key()).unwrap();
    assert_eq!(Tuning::load(&file, &det.tuning_key()), det.tuning());
    std::fs::remove_dir_all(file.parent().unwrap()).unwrap();

    // Bad sizes are errors, not panics.
    assert!(det.tune(8, 8, Duration::from_secs(1)).is_err());
}

//! RetinaFace-ResNet50 (Pytorch_Retinaface `cfg_re50`) on the GPU against the plain-Rust CPU
//! forward of the whole network. The pretrained file is not available offline, so the
//! weights are random with the real names and shapes (`random_state_dict`, He-scaled so
//! activations stay near 1 through 50+ layers); what is checked is the structure: every op,
//! shape, channel slice and head row, at an even and an odd input size, within DESIGN.md's
//! numeric contract (1e-4 of the output's largest magnitude). MobileNet0.25 with its real
//! weights is checked the same way at a small odd size.

mod common;

use std::sync::OnceLock;

use common::*;
use retinaface::model::cpu_forward::{forward, random_state_dict};
use retinaface::model::postprocess::cpu_postprocess;
use retinaface::model::weights::Weights;
use retinaface::{DetectOptions, Detector, GpuContext, KernelPath, Model};

const TOL: f32 = 1e-4;

fn resnet() -> &'static (Detector, Weights) {
    static D: OnceLock<(Detector, Weights)> = OnceLock::new();
    D.get_or_init(|| {
        let w = Weights::from_tensors(&random_state_dict(Model::Resnet50, 7)).unwrap();
        assert_eq!(w.model, Model::Resnet50);
        let ctx = GpuContext::new().expect("tests need a wgpu adapter (lavapipe on CI)");
        (
            Detector::with_context(ctx, &w).expect("the weights fit the device"),
            w,
        )
    })
}

/// A BGR-minus-mean-like input: values in [-100, 100].
fn input(w: u32, h: u32, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..w * h * 3)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 200.0 - 100.0
        })
        .collect()
}

fn check(det: &Detector, w: &Weights, names: &[&str], size: (u32, u32), seed: u64) {
    let (nw, nh) = size;
    let x = input(nw, nh, seed);
    let (gpu, raw) = det.forward_tensors(&x, nw, nh, names).unwrap();
    let cpu = forward(w, nw, nh, &x);
    for (name, g) in names.iter().zip(&gpu) {
        let c = cpu.tensor(name).unwrap();
        let scale = c.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(
            scale.is_finite() && scale > 1e-3,
            "{name} at {nw}x{nh}: degenerate magnitude {scale}"
        );
        let err = scaled_error(g, c);
        eprintln!("{name} {nw}x{nh}: max |x| {scale:.3e}, scaled error {err:.2e}");
        assert!(err < TOL, "{name} at {nw}x{nh}: scaled error {err:.2e}");
    }
    assert_eq!(raw.len(), cpu.raw.len());
    let err = scaled_error(&raw, &cpu.raw);
    eprintln!("raw heads {nw}x{nh}: scaled error {err:.2e}");
    assert!(err < TOL, "raw heads at {nw}x{nh}: scaled error {err:.2e}");
}

#[test]
fn resnet50_gpu_matches_cpu_forward_at_two_sizes() {
    let (det, w) = resnet();
    assert_eq!(det.model(), Model::Resnet50);
    let names = [
        "body.conv1",
        "body.maxpool",
        "body.layer1",
        "body.layer2",
        "body.layer3",
        "body.layer4",
        "fpn.out1",
        "fpn.out2",
        "fpn.out3",
        "ssh1",
        "ssh2",
        "ssh3",
    ];
    check(det, w, &names, (64, 64), 1);
    check(det, w, &names, (75, 53), 2);
}

#[test]
fn resnet50_portable_kernels_match_cpu_forward() {
    let (_, w) = resnet();
    let ctx = GpuContext::new().expect("tests need a wgpu adapter (lavapipe on CI)");
    let det = Detector::with_kernel_path(ctx, w, KernelPath::Portable).unwrap();
    check(
        &det,
        w,
        &["body.layer2", "body.layer4", "ssh1", "ssh3"],
        (75, 53),
        5,
    );
}

#[test]
fn resnet50_detects_end_to_end_like_the_cpu() {
    let (det, w) = resnet();
    let (nw, nh) = (75, 53);
    let x = input(nw, nh, 3);
    let opts = DetectOptions {
        threshold: 0.5,
        ..Default::default()
    };
    let faces = det.detect_tensor(&x, nw, nh, &opts).unwrap();
    let cpu = forward(w, nw, nh, &x);
    let want = cpu_postprocess(&cpu.raw, cpu.graph.levels, nw, nh, 0.5, 0.4, [1.0, 1.0]);
    assert!(
        !want.is_empty(),
        "random weights should give some boxes over 0.5"
    );
    assert_eq!(faces.len(), want.len());
    for (f, c) in faces.iter().zip(&want) {
        assert!(
            (f.score - c.score).abs() < 1e-3,
            "{} vs {}",
            f.score,
            c.score
        );
        for (a, b) in f.facial_area.iter().zip(&c.bbox) {
            assert!((a - b).abs() < 0.5, "{:?} vs {:?}", f.facial_area, c.bbox);
        }
    }
}

#[test]
fn mobilenet_gpu_matches_cpu_forward_at_an_odd_size() {
    let w = Weights::load(&weights_path()).unwrap();
    check(
        detector(),
        &w,
        &["body.stage1", "body.stage3", "fpn.out1", "ssh2"],
        (67, 45),
        4,
    );
    check(
        portable_detector(),
        &w,
        &["body.stage1", "body.stage3", "fpn.out1", "ssh2"],
        (67, 45),
        4,
    );
}

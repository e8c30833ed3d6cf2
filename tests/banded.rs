//! Banded execution (`ops::band`): an op whose buffers exceed one storage binding runs as
//! bands of output rows, each dispatch binding windows of the rows it reads and writes. Forced
//! on small inputs with `Detector::set_binding_limit` (256 KiB or 1 MiB bindings at 256-byte
//! offsets, so that most ops of every network are banded), each network's raw outputs are
//! bit-identical to the whole-buffer run's and its faces the same: the bands do the same
//! arithmetic, only through other addresses. The native-size photo that needs bands on every
//! device with 128 MiB bindings is in tests/golden.rs.

mod common;

use common::*;
use retinaface::model::cpu_forward::random_state_dict;
use retinaface::model::weights::Weights;
use retinaface::{DetectOptions, Detector, Face, GpuContext, KernelPath, Model, Resize};

const LIMIT: (u64, u64) = (256 << 10, 256);
/// For whole detections: the raw head outputs, which decode binds whole, must fit a binding
/// (0.5 MB for the 500x375 photo).
const PHOTO_LIMIT: (u64, u64) = (1 << 20, 256);

fn open(w: &Weights, path: KernelPath) -> Detector {
    let ctx = GpuContext::new().expect("tests need a wgpu adapter (lavapipe on CI)");
    Detector::with_kernel_path(ctx, w, path).expect("the weights fit the device")
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// The raw head outputs of a network input, whole and banded.
fn raw_whole_and_banded(det: &Detector, x: &[f32], w: u32, h: u32) -> (Vec<f32>, Vec<f32>) {
    det.set_binding_limit(None);
    let (_, whole) = det.forward_tensors(x, w, h, &[]).unwrap();
    det.set_binding_limit(Some(LIMIT));
    let (_, banded) = det.forward_tensors(x, w, h, &[]).unwrap();
    det.set_binding_limit(None);
    (whole, banded)
}

fn same_faces(what: &str, a: &[Face], b: &[Face]) {
    assert_eq!(a.len(), b.len(), "{what}: {} vs {} faces", a.len(), b.len());
    assert!(!a.is_empty(), "{what}: no faces to compare");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(
            x.score.to_bits(),
            y.score.to_bits(),
            "{what} face {i}: score"
        );
        assert_eq!(x.facial_area, y.facial_area, "{what} face {i}: box");
        assert_eq!(
            x.landmarks.points(),
            y.landmarks.points(),
            "{what} face {i}"
        );
    }
}

/// A photo detected whole and in bands (preprocess included), with the profile showing that
/// the banded plan really ran in bands.
fn photo_whole_and_banded(det: &Detector, image: &str, opts: &DetectOptions) {
    let img = retinaface::image_io::load_path(&testdata().join("images").join(image)).unwrap();
    det.set_binding_limit(None);
    let whole = det.detect_with(&img, opts).unwrap();
    det.set_binding_limit(Some(PHOTO_LIMIT));
    let (banded, profile) = det.detect_profiled(&img, opts).unwrap();
    det.set_binding_limit(None);
    let bands = profile
        .steps
        .iter()
        .filter(|s| s.label.contains("(band "))
        .count();
    eprintln!(
        "{image}: {} faces, {} dispatches, {bands} of them bands",
        whole.len(),
        profile.steps.len()
    );
    assert!(bands > 20, "{image}: only {bands} banded dispatches");
    same_faces(image, &whole, &banded);
    // A frame already on the GPU: the texture's preprocess writes the input in bands too.
    let texture = upload_texture(det.context(), &img, wgpu::TextureFormat::Rgba8Unorm);
    det.set_binding_limit(None);
    let whole = det.detect_texture(&texture, opts).unwrap();
    det.set_binding_limit(Some(PHOTO_LIMIT));
    let banded = det.detect_texture(&texture, opts).unwrap();
    det.set_binding_limit(None);
    same_faces(&format!("{image} (texture)"), &whole, &banded);
}

#[test]
fn mobilenet_bands_give_the_same_bits_in_both_kernel_families() {
    let w = Weights::load(&weights_path()).unwrap();
    let (_, x) = read_tensor(&testdata().join("golden/test_raw.safetensors"), "input");
    let x = nchw_to_hwc(&x, 3, 640, 640);
    for path in [KernelPath::Subgroup, KernelPath::Portable] {
        let det = open(&w, path);
        let (whole, banded) = raw_whole_and_banded(&det, &x, 640, 640);
        assert!(
            same_bits(&whole, &banded),
            "{path:?}: banded raw outputs differ"
        );
        let opts = DetectOptions {
            threshold: 0.5,
            resize: Resize::Original,
            ..Default::default()
        };
        photo_whole_and_banded(&det, "small_group.jpg", &opts);
    }
}

#[test]
fn resnet50_bands_give_the_same_bits() {
    let w = Weights::from_tensors(&random_state_dict(Model::Resnet50, 7)).unwrap();
    let det = open(&w, KernelPath::Subgroup);
    // Odd sizes: ragged last bands, the stem maxpool's padding, the FPN's exact-size upsample.
    let (nw, nh) = (131, 97);
    let x: Vec<f32> = (0..nw * nh * 3)
        .map(|i| ((i * 7919 % 201) as f32) - 100.0)
        .collect();
    let (whole, banded) = raw_whole_and_banded(&det, &x, nw, nh);
    assert!(same_bits(&whole, &banded), "banded raw outputs differ");
}

#[test]
fn retinaface_net3_bands_give_the_same_faces() {
    let w = Weights::load(&testdata().join("seed_r50/retinaface_r50_random.h5")).unwrap();
    let det = open(&w, KernelPath::Subgroup);
    let opts = DetectOptions {
        threshold: 0.5,
        resize: Resize::Original,
        ..Default::default()
    };
    // Its standalone batch norms (affine) and residual adds run in chunks, not rows.
    photo_whole_and_banded(&det, "../seed_r50/small_group_264x198.png", &opts);
}

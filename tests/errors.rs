//! Bad weights and bad images give typed errors that name the problem, never a panic.

mod common;

use std::collections::HashMap;

use common::*;
use retinaface::model::weights::{self, Weights};
use retinaface::{DetectOptions, Error, Resize};

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("retinaface-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The shared weights with `edit` applied, written to a temp file and loaded.
fn load_edited(
    name: &str,
    edit: impl FnOnce(&mut HashMap<String, (Vec<usize>, Vec<f32>)>),
) -> Result<Weights, Error> {
    let bytes = std::fs::read(weights_path()).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: HashMap<String, (Vec<usize>, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let data = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (n, (v.shape().to_vec(), data))
        })
        .collect();
    edit(&mut tensors);
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, (s, d))| (n, s, d.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = raw
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    let path = temp(name);
    safetensors::serialize_to_file(views, None, &path).unwrap();
    Weights::load(&path)
}

#[test]
fn module_prefix_is_accepted() {
    load_edited("prefixed.safetensors", |t| {
        *t = t.drain().map(|(k, v)| (format!("module.{k}"), v)).collect();
    })
    .unwrap();
}

#[test]
fn missing_tensor_is_named() {
    let e = load_edited("missing.safetensors", |t| {
        t.remove("fpn.merge1.1.running_var");
    })
    .unwrap_err();
    assert!(
        matches!(&e, Error::MissingTensor { name } if name == "fpn.merge1.1.running_var"),
        "{e}"
    );
    assert!(e.to_string().contains("fpn.merge1.1.running_var"));
}

#[test]
fn wrong_shape_is_named() {
    let e = load_edited("shape.safetensors", |t| {
        let v = t.get_mut("ssh2.conv3X3.0.weight").unwrap();
        v.0 = vec![32, 64, 9];
    })
    .unwrap_err();
    assert!(
        matches!(&e, Error::TensorShape { name, expected, found } if name == "ssh2.conv3X3.0.weight" && expected == &[32, 64, 3, 3] && found == &[32, 64, 9]),
        "{e}"
    );
}

#[test]
fn nan_is_named() {
    let e = load_edited("nan.safetensors", |t| {
        t.get_mut("BboxHead.1.conv1x1.weight").unwrap().1[17] = f32::NAN;
    })
    .unwrap_err();
    assert!(
        matches!(&e, Error::NonFiniteWeight { name, index: 17 } if name == "BboxHead.1.conv1x1.weight"),
        "{e}"
    );
}

#[test]
fn truncated_file_is_an_error() {
    let bytes = std::fs::read(weights_path()).unwrap();
    let path = temp("truncated.safetensors");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = Weights::load(&path).unwrap_err();
    assert!(
        matches!(&e, Error::WeightsFile { path: p, .. } if *p == path),
        "{e}"
    );
    assert!(e.to_string().contains("truncated.safetensors"), "{e}");
}

#[test]
fn missing_weights_say_where_to_put_them() {
    let e = weights::resolve_in(&[temp("nowhere/retinaface_mnet025.safetensors")]).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::WeightsNotFound { .. }));
    assert!(
        msg.contains("nowhere")
            && msg.contains("weights/README.md")
            && msg.contains("RETINAFACE_WEIGHTS"),
        "{msg}"
    );
}

#[test]
fn explicit_missing_weights_file_is_an_error() {
    let e = retinaface::Detector::new(Some(&temp("absent.safetensors")))
        .err()
        .unwrap();
    assert!(matches!(e, Error::WeightsFile { .. }), "{e}");
}

#[test]
fn one_pixel_image_is_refused() {
    let img = image::RgbaImage::new(1, 1);
    let e = detector().detect(&img).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ImageTooSmall {
                width: 1,
                height: 1,
                ..
            }
        ),
        "{e}"
    );
}

/// Tensors over one storage binding run in bands; a buffer over `max_buffer_size` cannot be
/// made at all: a 12000x12000 image's 2.3 GB network input on a device with 2 GiB buffers
/// (lavapipe's) is refused before anything is allocated, naming that limit and a size that
/// fits.
#[test]
fn too_large_for_device_names_limit_and_suggests_resize() {
    let img = image::RgbaImage::new(12000, 12000);
    let opts = DetectOptions {
        resize: Resize::Original,
        ..Default::default()
    };
    let max_buffer = detector().context().limits().max_buffer_size;
    match detector().detect_with(&img, &opts) {
        Err(e @ Error::ImageTooLarge { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&max_buffer.to_string())
                    && msg.contains("max_buffer_size")
                    && msg.contains("--resize max:"),
                "{msg}"
            );
            let Error::ImageTooLarge {
                suggested_max_side, ..
            } = e
            else {
                unreachable!()
            };
            assert!((4000..12000).contains(&suggested_max_side), "{msg}");
        }
        other => assert!(
            max_buffer >= 2_304_000_000,
            "max_buffer_size {max_buffer}, got {other:?}"
        ),
    }
}

/// An 8000x6000 image at its own size (768 MB network input, 384 MB first activation) runs
/// in bands on a device with 128 MiB bindings and finds the faces of the photo pasted in it.
#[test]
fn an_8000x6000_image_runs_in_bands() {
    let photo =
        retinaface::image_io::load_path(&testdata().join("images/small_group.jpg")).unwrap();
    let mut img = image::RgbaImage::from_pixel(8000, 6000, image::Rgba([255, 255, 255, 255]));
    image::imageops::replace(&mut img, &photo, 3000, 2500);
    let opts = DetectOptions {
        resize: Resize::Original,
        ..Default::default()
    };
    let t0 = std::time::Instant::now();
    let faces = detector().detect_with(&img, &opts).unwrap();
    let own = detector().detect_with(&photo, &opts).unwrap();
    eprintln!(
        "8000x6000: {} faces in {:.1} s; the photo alone: {}",
        faces.len(),
        t0.elapsed().as_secs_f64(),
        own.len()
    );
    // The same faces, moved by the paste offset (not bit for bit: the network sees white
    // around the photo instead of its zero padding).
    assert_eq!(faces.len(), own.len());
    for f in &faces {
        let near = own.iter().any(|o| {
            (0..4).all(|k| {
                let shift = if k % 2 == 0 { 3000.0 } else { 2500.0 };
                (f.facial_area[k] - shift - o.facial_area[k]).abs() < 3.0
            })
        });
        assert!(
            near,
            "face at {:?} is not one of the photo's",
            f.facial_area
        );
    }
}

#[test]
fn invalid_thresholds_are_refused() {
    let img = image::RgbaImage::new(32, 32);
    for (t, n) in [(1.5, 0.4), (f32::NAN, 0.4), (0.5, -0.1)] {
        let opts = DetectOptions {
            threshold: t,
            nms_threshold: n,
            ..Default::default()
        };
        assert!(matches!(
            detector().detect_with(&img, &opts),
            Err(Error::InvalidOption(_))
        ));
    }
}

#[test]
fn wrong_tensor_length_is_refused() {
    let e = detector()
        .detect_tensor(&[0.0; 10], 4, 4, &DetectOptions::default())
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::PixelBufferSize {
                expected: 48,
                found: 10,
                ..
            }
        ),
        "{e}"
    );
}

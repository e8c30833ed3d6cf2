//! GPU faults are errors, never panics or hangs: a device destroyed mid-stream fails every
//! frame in flight with `Error::DeviceLost`, the detector recovers on a new device with the
//! golden faces (testdata/golden/small_group.json, the numpy/onnxruntime reference at
//! threshold 0.5, NMS 0.4, own size), and allocations over the device's limits are typed
//! errors. Each test runs under a watchdog: a hang fails it instead of stalling the suite.
//!
//! Devices opened here with `request_device` keep wgpu's default uncaptured-error handler,
//! which panics: a wgpu error escaping the detector's error scopes would fail these tests.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::*;
use retinaface::model::weights::Weights;
use retinaface::{DetectOptions, Detector, Error, Face, GpuContext, Resize};
use serde_json::Value;

/// Far above the few seconds each test takes on lavapipe, even on a loaded machine.
const WATCHDOG: Duration = Duration::from_secs(300);

/// Runs `f` on a thread of its own and fails if it does not finish within `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung: no result within {limit:?}"),
        // The worker panicked: report its panic, not the closed channel.
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker sends before it ends"),
        },
    }
}

fn opts() -> DetectOptions {
    DetectOptions {
        threshold: 0.5,
        nms_threshold: 0.4,
        resize: Resize::Original,
        allow_upscaling: false,
    }
}

fn weights() -> Weights {
    Weights::load(&weights_path()).expect("shared weights")
}

fn photo(name: &str) -> image::RgbaImage {
    retinaface::image_io::load_path(&testdata().join("images").join(name)).unwrap()
}

/// `small_group.jpg`'s faces match the reference: same count, score within 1e-3, box and
/// landmarks within 0.5 px (every score is far from the threshold, margin 7.5e-3).
fn assert_golden_small_group(faces: &[Face]) {
    let path = testdata().join("golden/small_group.json");
    let g: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let want = g["detections"].as_array().unwrap();
    assert_eq!(faces.len(), want.len(), "small_group: faces");
    let f = |v: &Value| v.as_f64().unwrap() as f32;
    for (ours, theirs) in faces.iter().zip(want) {
        assert!((ours.score - f(&theirs["score"])).abs() <= 1e-3);
        for (k, b) in theirs["box"].as_array().unwrap().iter().enumerate() {
            assert!(
                (ours.facial_area[k] - f(b)).abs() <= 0.5,
                "{ours:?} vs {theirs}"
            );
        }
        for (p, m) in theirs["landmarks"].as_array().unwrap().iter().enumerate() {
            let point = ours.landmarks.points()[p];
            for k in 0..2 {
                assert!((point[k] - f(&m[k])).abs() <= 0.5, "{ours:?} vs {theirs}");
            }
        }
    }
}

/// A device of the default adapter with `limits` applied to the adapter's own, opened by the
/// test (the detector sees it as a caller's device).
fn caller_device(limits: impl FnOnce(wgpu::Limits) -> wgpu::Limits) -> GpuContext {
    pollster::block_on(async {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = wgpu::util::initialize_adapter_from_env_or_default(&instance, None)
            .await
            .expect("tests need a wgpu adapter (lavapipe on CI)");
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("test device"),
                required_features: adapter.features() & wgpu::Features::SUBGROUP,
                required_limits: limits(adapter.limits()),
                ..Default::default()
            })
            .await
            .expect("device");
        GpuContext::from_device(device, queue)
    })
}

fn is_lost<T>(r: &retinaface::Result<T>) -> bool {
    matches!(r, Err(Error::DeviceLost { .. }))
}

#[test]
fn device_destroyed_mid_stream_fails_every_frame_in_flight_then_recover_gives_the_golden_faces() {
    within(WATCHDOG, || {
        let mut d = Detector::with_context(GpuContext::new().unwrap(), &weights()).unwrap();
        let imgs = [photo("small_group.jpg"), photo("tilted_head.png")];
        let before: Vec<Vec<Face>> = imgs
            .iter()
            .map(|i| d.detect_with(i, &opts()).unwrap())
            .collect();
        assert_golden_small_group(&before[0]);

        {
            let mut stream = d.stream(&opts(), 4);
            for i in 0..3 {
                assert!(stream.push(&imgs[i % 2]).unwrap().is_none());
            }
            assert_eq!(stream.in_flight(), 3);
            d.context().device.destroy();
            let refused = stream.push(&imgs[0]);
            assert!(is_lost(&refused), "push after the loss: {refused:?}");
            assert_eq!(stream.in_flight(), 3, "the refused frame is not queued");
            let results = stream.finish();
            assert_eq!(results.len(), 3, "every frame in flight comes back");
            for (i, r) in results.iter().enumerate() {
                assert!(is_lost(r), "frame {i} in flight at the loss: {r:?}");
            }
        }
        let e = d.detect_with(&imgs[0], &opts());
        assert!(is_lost(&e), "detect on the destroyed device: {e:?}");
        let message = e.unwrap_err().to_string();
        assert!(message.contains("recover()"), "{message}");

        d.recover().unwrap();
        assert!(d.context().lost_error().is_none());
        let after: Vec<Vec<Face>> = imgs
            .iter()
            .map(|i| d.detect_with(i, &opts()).unwrap())
            .collect();
        assert_eq!(after, before, "the same faces on the new device");
        assert_golden_small_group(&after[0]);
        let streamed = d.detect_batch(&imgs, &opts());
        assert_eq!(
            streamed.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            before
        );
    });
}

#[test]
fn a_callers_destroyed_device_gives_device_lost_and_recover_on_takes_a_new_one() {
    within(WATCHDOG, || {
        let ctx = caller_device(|l| l);
        let mut d = Detector::with_context(ctx.clone(), &weights()).unwrap();
        let img = photo("small_group.jpg");
        assert_golden_small_group(&d.detect_with(&img, &opts()).unwrap());

        ctx.device.destroy();
        let e = d.detect_with(&img, &opts());
        assert!(is_lost(&e), "{e:?}");
        let batch = d.detect_batch(&[img.clone(), img.clone()], &opts());
        assert_eq!(batch.len(), 2);
        assert!(batch.iter().all(is_lost), "{batch:?}");
        let profiled = d.detect_profiled(&img, &opts());
        assert!(is_lost(&profiled), "{:?}", profiled.err());
        let rebuilt = Detector::with_context(ctx, &weights());
        assert!(is_lost(&rebuilt), "{:?}", rebuilt.err());
        // Not our device to replace: the caller brings the new one.
        assert!(matches!(d.recover(), Err(Error::InvalidOption(_))));

        d.recover_on(caller_device(|l| l)).unwrap();
        assert_golden_small_group(&d.detect_with(&img, &opts()).unwrap());
    });
}

#[test]
fn weights_over_the_devices_buffer_limit_are_out_of_memory_not_a_panic() {
    within(WATCHDOG, || {
        let ctx = caller_device(|l| wgpu::Limits {
            max_buffer_size: 1 << 20,
            max_storage_buffer_binding_size: 1 << 20,
            ..l
        });
        let w = weights();
        match Detector::with_context(ctx, &w) {
            Err(Error::OutOfMemory { what, bytes, .. }) => {
                assert!(what.contains("weights"), "{what}");
                assert!(bytes.unwrap() > 1 << 20, "{bytes:?}");
            }
            other => panic!("expected OutOfMemory, got {:?}", other.err()),
        }
    });
}

#[test]
fn an_image_over_the_devices_buffer_limit_is_refused_and_small_ones_still_run() {
    within(WATCHDOG, || {
        // Room for the weights (1.7 MB), not for a 1024x624 network input (10 MB as floats).
        let ctx = caller_device(|l| wgpu::Limits {
            max_buffer_size: 4 << 20,
            max_storage_buffer_binding_size: 4 << 20,
            ..l
        });
        let d = Detector::with_context(ctx, &weights()).unwrap();
        let big = photo("worlds_largest_selfie.jpg");
        let e = d.detect_with(&big, &opts());
        assert!(
            matches!(
                e,
                Err(Error::ImageTooLarge { .. } | Error::OutOfMemory { .. })
            ),
            "{e:?}"
        );
        assert_golden_small_group(&d.detect_with(&photo("small_group.jpg"), &opts()).unwrap());
    });
}

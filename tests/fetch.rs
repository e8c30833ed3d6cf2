//! `fetch_weights` against a local HTTP server on 127.0.0.1 (no other network): the real
//! MobileNet0.25 .pth is verified by content hash, converted and installed atomically; a
//! truncated download, a file that is not a checkpoint and a checkpoint with other content
//! are refused and leave nothing in the cache directory; ResNet50 is verified by structure.

mod common;
mod http_server;
mod torch_save;

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use common::*;
use http_server::{serve, Route};
use retinaface::fetch::{self, FetchOptions, Verified};
use retinaface::model::content_hash;
use retinaface::model::weights::Weights;
use retinaface::{Error, Model};

fn pth_bytes() -> Vec<u8> {
    std::fs::read(weights_path().with_file_name("mobilenet0.25_Final.pth")).unwrap()
}

/// A fresh, empty cache directory for one test.
fn cache(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("retinaface-fetch-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Names in `dir` (none if it does not exist), hidden temporary files included.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn opts(url: String, dir: &Path) -> FetchOptions {
    FetchOptions {
        url: Some(url),
        cache_dir: Some(dir.to_path_buf()),
        progress: false,
        force: false,
        backup_url: None,
    }
}

#[test]
fn verified_install_appears_only_when_complete() {
    let body = pth_bytes();
    let (sent_tx, sent_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let half = body.len() / 2;
    let base = serve(
        vec![(
            "/m.pth",
            Route::Gated {
                body,
                first: half,
                sent: sent_tx,
                go: go_rx,
            },
        )],
        1,
    );
    let dir = cache("gated");
    let o = opts(format!("{base}/m.pth"), &dir);
    let worker = std::thread::spawn(move || fetch::fetch_weights(Model::Mnet025, &o));
    sent_rx.recv().unwrap();
    // Half the file is on its way: nothing may be visible in the cache yet.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(listing(&dir), Vec::<String>::new());
    go_tx.send(()).unwrap();
    let got = worker.join().unwrap().unwrap();
    assert_eq!(got.verified, Verified::ContentHash);
    assert_eq!(
        Some(got.content_hash.as_str()),
        fetch::expected_content_hash(Model::Mnet025)
    );
    assert_eq!(got.path, dir.join("retinaface_mnet025.safetensors"));
    assert_eq!(got.downloaded, pth_bytes().len() as u64);
    // Exactly the installed file: no temporary left behind.
    assert_eq!(listing(&dir), ["retinaface_mnet025.safetensors"]);
    assert_eq!(
        content_hash::of_file(&got.path).unwrap(),
        content_hash::of_file(&weights_path()).unwrap()
    );
    assert_eq!(Weights::load(&got.path).unwrap().model, Model::Mnet025);
}

#[test]
fn truncated_download_leaves_nothing_and_says_so() {
    let body = pth_bytes();
    let send = body.len() - 5000;
    let base = serve(vec![("/t.pth", Route::Truncated { body, send })], 1);
    let dir = cache("truncated");
    let e = fetch::fetch_weights(Model::Mnet025, &opts(format!("{base}/t.pth"), &dir)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Download { .. }), "{msg}");
    assert!(
        msg.contains("nothing was installed") && msg.contains(&format!("{}", send)),
        "{msg}"
    );
    assert_eq!(listing(&dir), Vec::<String>::new());
}

#[test]
fn wrong_files_are_refused_and_leave_nothing() {
    let safetensors = std::fs::read(weights_path()).unwrap();
    // The real checkpoint with one weight changed: a valid .pth with other content.
    let mut altered = pth_bytes();
    let n = altered.len();
    altered[n - 3] ^= 0x40;
    let base = serve(
        vec![
            ("/not-a-pth", Route::Full(safetensors)),
            ("/altered.pth", Route::Full(altered)),
            ("/gone.pth", Route::Status(404)),
        ],
        3,
    );
    let dir = cache("wrong");
    let e =
        fetch::fetch_weights(Model::Mnet025, &opts(format!("{base}/not-a-pth"), &dir)).unwrap_err();
    assert!(
        matches!(&e, Error::Download { reason, .. } if reason.contains("neither a PyTorch checkpoint nor Keras HDF5 weights")),
        "{e}"
    );
    let e = fetch::fetch_weights(Model::Mnet025, &opts(format!("{base}/altered.pth"), &dir))
        .unwrap_err();
    match &e {
        Error::ContentHashMismatch {
            expected, found, ..
        } => {
            assert_eq!(
                Some(expected.as_str()),
                fetch::expected_content_hash(Model::Mnet025)
            );
            assert_ne!(found, expected);
        }
        other => panic!("expected a content hash mismatch, got {other}"),
    }
    assert!(e.to_string().contains("nothing was installed"), "{e}");
    let e =
        fetch::fetch_weights(Model::Mnet025, &opts(format!("{base}/gone.pth"), &dir)).unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
    assert_eq!(listing(&dir), Vec::<String>::new());
}

#[test]
fn failed_refetch_keeps_the_installed_file() {
    let body = pth_bytes();
    let send = body.len() / 3;
    let base = serve(
        vec![
            ("/good.pth", Route::Full(body.clone())),
            ("/cut.pth", Route::Truncated { body, send }),
        ],
        2,
    );
    let dir = cache("keep");
    let first =
        fetch::fetch_weights(Model::Mnet025, &opts(format!("{base}/good.pth"), &dir)).unwrap();
    let before = std::fs::read(&first.path).unwrap();
    // A valid install is not downloaded again...
    let again =
        fetch::fetch_weights(Model::Mnet025, &opts(format!("{base}/cut.pth"), &dir)).unwrap();
    assert_eq!(again.downloaded, 0);
    // ...unless forced; a forced download that fails leaves the old file as it was.
    let mut o = opts(format!("{base}/cut.pth"), &dir);
    o.force = true;
    assert!(fetch::fetch_weights(Model::Mnet025, &o).is_err());
    assert_eq!(std::fs::read(&first.path).unwrap(), before);
    assert_eq!(listing(&dir), ["retinaface_mnet025.safetensors"]);
}

/// ResNet50 as a checkpoint of zeros with every expected name and shape (~109 MB).
fn resnet_pth(drop: Option<&str>) -> Vec<u8> {
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Model::Resnet50
        .expected_tensors()
        .into_iter()
        .filter(|(n, _)| Some(n.as_str()) != drop)
        .map(|(n, s)| {
            let len = s.iter().product();
            (n, s, vec![0.0; len])
        })
        .collect();
    torch_save::legacy_file_of(&tensors)
}

#[test]
fn resnet50_is_verified_by_structure_and_its_hash_reported() {
    let full = resnet_pth(None);
    let missing = resnet_pth(Some("body.layer3.4.bn2.running_var"));
    let base = serve(
        vec![
            ("/r50.pth", Route::Full(full)),
            ("/r50-missing.pth", Route::Full(missing)),
            ("/mnet.pth", Route::Full(pth_bytes())),
        ],
        3,
    );
    let dir = cache("resnet");
    let e =
        fetch::fetch_weights(Model::Resnet50, &opts(format!("{base}/mnet.pth"), &dir)).unwrap_err();
    assert!(
        e.to_string()
            .contains("holds mnet025 weights, not resnet50"),
        "{e}"
    );
    let e = fetch::fetch_weights(
        Model::Resnet50,
        &opts(format!("{base}/r50-missing.pth"), &dir),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("body.layer3.4.bn2.running_var"),
        "{e}"
    );
    assert_eq!(listing(&dir), Vec::<String>::new());
    let got =
        fetch::fetch_weights(Model::Resnet50, &opts(format!("{base}/r50.pth"), &dir)).unwrap();
    assert_eq!(got.verified, Verified::StructureOnly);
    assert_eq!(fetch::expected_content_hash(Model::Resnet50), None);
    assert_eq!(listing(&dir), ["retinaface_resnet50.safetensors"]);
    assert_eq!(content_hash::of_file(&got.path).unwrap(), got.content_hash);
    assert_eq!(Weights::load(&got.path).unwrap().model, Model::Resnet50);
}

#[test]
fn retinaface_h5_is_fetched_from_the_backup_when_the_release_fails() {
    let h5 = std::fs::read(testdata().join("seed_r50/retinaface_r50_random.h5")).unwrap();
    let base = serve(vec![("/retinaface.h5", http_server::Route::Full(h5))], 2);
    let dir = cache("net3-backup");
    let mut o = opts(format!("{base}/missing.h5"), &dir);
    o.backup_url = Some(format!("{base}/retinaface.h5"));
    let got = fetch::fetch_weights(Model::Net3, &o).unwrap();
    assert_eq!(got.url, format!("{base}/retinaface.h5"));
    assert_eq!(got.verified, Verified::StructureOnly);
    assert_eq!(listing(&dir), [Model::Net3.file_name()]);
    assert_eq!(Weights::load(&got.path).unwrap().model, Model::Net3);
    std::fs::remove_dir_all(&dir).unwrap();
}

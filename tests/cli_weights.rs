//! `retinaface convert`, `retinaface fetch-weights` and `--model` as a user runs them: from a
//! downloaded .pth to detections in two commands, and the failures that must install nothing.
//! Downloads go to a local HTTP server on 127.0.0.1 only.

mod common;
mod http_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use http_server::{serve, Route};
use retinaface::model::content_hash;

const MNET025_CONTENT_HASH: &str =
    "ac32c8a106b9fa1accf6b77715464f35f94208ec6175f056b2e4ebc3bb9d3699";

fn pth() -> PathBuf {
    weights_path().with_file_name("mobilenet0.25_Final.pth")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("retinaface-cliw-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The binary with no weights configured: it must find them where fetch-weights put them.
/// Runs in `cwd` so that no `./weights` directory interferes.
fn cli(cwd: &Path, cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_retinaface"));
    c.current_dir(cwd)
        .env_remove("RETINAFACE_WEIGHTS")
        .env_remove("RETINAFACE_WEIGHTS_URL")
        .env("RETINAFACE_CACHE_DIR", cache);
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

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

#[test]
fn convert_reproduces_the_shared_safetensors() {
    let dir = temp_dir("convert");
    let out_path = dir.join("out.safetensors");
    let o = cli(&dir, &dir.join("cache"))
        .arg("convert")
        .arg(pth())
        .arg(&out_path)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stdout.contains("mnet025") && stdout.contains("253 tensors"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "content hash {MNET025_CONTENT_HASH} (the published mnet025 weights)"
        )),
        "{stdout}"
    );
    // Same tensors as the shared file, bit for bit.
    let ours = std::fs::read(&out_path).unwrap();
    let ours = safetensors::SafeTensors::deserialize(&ours).unwrap();
    let theirs = std::fs::read(weights_path()).unwrap();
    let theirs = safetensors::SafeTensors::deserialize(&theirs).unwrap();
    let mut names = ours.names();
    names.sort();
    let mut want = theirs.names();
    want.sort();
    assert_eq!(names, want);
    for n in names {
        let (a, b) = (ours.tensor(n).unwrap(), theirs.tensor(n).unwrap());
        assert_eq!(
            (a.dtype(), a.shape(), a.data()),
            (b.dtype(), b.shape(), b.data()),
            "{n}"
        );
    }
    assert_eq!(
        content_hash::of_file(&out_path).unwrap(),
        content_hash::of_file(&weights_path()).unwrap()
    );
    assert_eq!(listing(&dir), ["out.safetensors"], "no temporary left");
}

#[test]
fn convert_refuses_a_file_that_is_not_a_checkpoint() {
    let dir = temp_dir("convert-bad");
    let input = dir.join("evil.pth");
    // A protocol-2 pickle calling os.system: refused before anything is called.
    std::fs::write(&input, b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.").unwrap();
    let out_path = dir.join("out.safetensors");
    let o = cli(&dir, &dir)
        .arg("convert")
        .arg(&input)
        .arg(&out_path)
        .output()
        .unwrap();
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("os.system") && stderr.contains("evil.pth"),
        "{stderr}"
    );
    assert!(!out_path.exists());
}

#[test]
fn fetch_weights_then_detect_in_two_commands() {
    let base = serve(
        vec![("/m.pth", Route::Full(std::fs::read(pth()).unwrap()))],
        1,
    );
    let dir = temp_dir("two-commands");
    let cache = dir.join("cache");
    let o = cli(&dir, &cache)
        .args(["fetch-weights", "mnet025"])
        .env("RETINAFACE_WEIGHTS_URL", format!("{base}/m.pth"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("{base}/m.pth")), "{stderr}");
    assert!(
        stdout.contains("installed") && stdout.contains(MNET025_CONTENT_HASH),
        "{stdout}"
    );
    assert_eq!(listing(&cache), ["retinaface_mnet025.safetensors"]);
    // Run again: verified and kept, no second download (the server answers one request).
    let o = cli(&dir, &cache)
        .args(["fetch-weights"])
        .env("RETINAFACE_WEIGHTS_URL", format!("{base}/m.pth"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(text(&o).0.contains("already installed"), "{}", text(&o).0);
    // Second command: detect, weights found in the cache by --model.
    let image = testdata().join("images/small_group.jpg");
    let o = cli(&dir, &cache)
        .args(["detect", "--model", "mnet025", "--resize", "original"])
        .arg(&image)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 3, "{stdout}");
}

#[test]
fn failed_fetches_exit_2_and_install_nothing() {
    let body = std::fs::read(pth()).unwrap();
    let mut altered = body.clone();
    let n = altered.len();
    altered[n - 1] ^= 1;
    let send = body.len() / 2;
    let base = serve(
        vec![
            ("/cut.pth", Route::Truncated { body, send }),
            ("/altered.pth", Route::Full(altered)),
        ],
        2,
    );
    let dir = temp_dir("fetch-fail");
    let cache = dir.join("cache");
    for (path, says) in [
        ("/cut.pth", format!("{send} bytes of {n}")),
        ("/altered.pth", MNET025_CONTENT_HASH.to_string()),
    ] {
        let o = cli(&dir, &cache)
            .args(["fetch-weights", "--url", &format!("{base}{path}")])
            .output()
            .unwrap();
        let (_, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{path}: {stderr}");
        assert!(
            stderr.contains(&says) && stderr.contains("nothing was installed"),
            "{path}: {stderr}"
        );
        assert_eq!(listing(&cache), Vec::<String>::new(), "{path}");
    }
}

#[test]
fn missing_weights_point_to_fetch_weights() {
    let dir = temp_dir("missing");
    let o = cli(&dir, &dir.join("empty-cache"))
        .args(["detect", "--model", "resnet50"])
        .arg(testdata().join("images/small_group.jpg"))
        .output()
        .unwrap();
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("retinaface fetch-weights resnet50")
            && stderr.contains("retinaface_resnet50.safetensors"),
        "{stderr}"
    );
    let o = cli(&dir, &dir)
        .args(["detect", "--model", "vgg16", "x.jpg"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("mnet025, resnet50 or retinaface"),
        "{}",
        text(&o).1
    );
}

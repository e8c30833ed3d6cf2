//! `retinaface fetch-weights`: download a published checkpoint, verify it, convert it to
//! safetensors and install it in the per-user cache, atomically.
//!
//! The download is held in memory (the largest file, ResNet50's, is ~105 MB) and checked
//! before anything touches the disk: its length against `Content-Length`, its format, its
//! model, its content hash ([`crate::model::content_hash`]) where the published one is known,
//! every tensor's presence, shape and finiteness. Only then is the safetensors file written,
//! to a temporary name in the cache directory, flushed, and renamed over the final name. An
//! interrupted, truncated or wrong download therefore leaves nothing behind, and a previously
//! installed file stays as it was.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::model::arch::Model;
use crate::model::weights::{self, Weights};
use crate::model::{content_hash, pth};

/// Overrides the download URL (tests use a server on 127.0.0.1; mirrors work too).
pub const URL_ENV: &str = "RETINAFACE_WEIGHTS_URL";
/// Largest download accepted: a bound against a server that never stops sending.
const MAX_DOWNLOAD: u64 = 1 << 30;

/// Where `fetch-weights` downloads `model` from by default: the facexlib mirror of the
/// Pytorch_Retinaface release files (MIT; see weights/README.md).
pub fn default_url(model: Model) -> &'static str {
    match model {
        Model::Mnet025 => "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth",
        Model::Resnet50 => "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
        // retina-face's own release file (its backup: huggingface.co/serengil/deepface).
        Model::Net3 => "https://github.com/serengil/deepface_models/releases/download/v1.0/retinaface.h5",
    }
}

/// The published content hash of `model`'s weights, where it is known. MobileNet0.25's is
/// computed from `mobilenet0.25_Final.pth`; ResNet50's release file was not available when
/// this was written, so its download is verified by structure only (see weights/README.md).
pub fn expected_content_hash(model: Model) -> Option<&'static str> {
    match model {
        Model::Mnet025 => Some("ac32c8a106b9fa1accf6b77715464f35f94208ec6175f056b2e4ebc3bb9d3699"),
        Model::Resnet50 | Model::Net3 => None,
    }
}

#[derive(Clone, Debug, Default)]
pub struct FetchOptions {
    /// Download from here instead of [`default_url`] (else `RETINAFACE_WEIGHTS_URL`).
    pub url: Option<String>,
    /// Install here instead of [`weights::cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Draw a progress bar on stderr (hidden when stderr is not a terminal).
    pub progress: bool,
    /// Download again even if a valid file is installed.
    pub force: bool,
    /// Where to try next when the download from the first URL fails: else the model's
    /// [`backup_url`], when the first URL is the default one.
    pub backup_url: Option<String>,
}

/// The second place `model`'s weights are published, as its own package falls back to:
/// retina-face's file on huggingface.
pub fn backup_url(model: Model) -> Option<&'static str> {
    match model {
        Model::Net3 => Some("https://huggingface.co/serengil/deepface/resolve/main/retinaface.h5"),
        _ => None,
    }
}

/// How far a file could be verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verified {
    /// Its content hash equals the published one.
    ContentHash,
    /// No published hash is known: every tensor the network needs is present with the right
    /// shape and finite values.
    StructureOnly,
}

#[derive(Clone, Debug)]
pub struct Fetched {
    pub model: Model,
    /// The installed safetensors file.
    pub path: PathBuf,
    pub content_hash: String,
    pub verified: Verified,
    /// Bytes downloaded; 0 when a valid file was already installed.
    pub downloaded: u64,
    pub url: String,
}

/// The URL [`fetch_weights`] downloads from: `opts.url`, else `RETINAFACE_WEIGHTS_URL`, else
/// [`default_url`].
pub fn resolve_url(model: Model, opts: &FetchOptions) -> String {
    opts.url
        .clone()
        .or_else(|| std::env::var(URL_ENV).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| default_url(model).to_string())
}

/// Downloads, verifies, converts and installs `model`'s weights; see the module docs.
pub fn fetch_weights(model: Model, opts: &FetchOptions) -> Result<Fetched> {
    let url = resolve_url(model, opts);
    let dir = opts
        .cache_dir
        .clone()
        .or_else(weights::cache_dir)
        .ok_or_else(|| Error::WriteFile {
            path: PathBuf::from("~/.cache/retinaface-wgpu"),
            reason: "no per-user cache directory (HOME is not set); pass --cache-dir or set RETINAFACE_CACHE_DIR".into(),
        })?;
    let dest = dir.join(model.file_name());
    if dest.is_file() && !opts.force {
        if let Ok((content_hash, verified)) = verify_installed(model, &dest) {
            return Ok(Fetched {
                model,
                path: dest,
                content_hash,
                verified,
                downloaded: 0,
                url,
            });
        }
        // An installed file that fails verification is replaced.
    }
    let backup = opts.backup_url.clone().or_else(|| {
        let default = url == default_url(model);
        backup_url(model).filter(|_| default).map(str::to_string)
    });
    let (bytes, url) = match (download(&url, opts.progress), backup) {
        (Ok(b), _) => (b, url),
        (Err(e), Some(second)) => {
            eprintln!("retinaface: {e}; trying {second}");
            (download(&second, opts.progress)?, second)
        }
        (Err(e), None) => return Err(e),
    };
    let failed = |reason: String| Error::Download {
        url: url.clone(),
        reason,
    };
    let is_h5 = crate::model::h5::is_hdf5(&bytes);
    if !pth::is_checkpoint(&bytes) && !is_h5 {
        let head: String = bytes
            .iter()
            .take(16)
            .map(|b| {
                if b.is_ascii_graphic() {
                    *b as char
                } else {
                    '.'
                }
            })
            .collect();
        return Err(failed(format!(
            "the server sent {} bytes that are neither a PyTorch checkpoint nor Keras HDF5 weights (they start with {head:?})",
            bytes.len()
        )));
    }
    let tensors = if is_h5 {
        crate::model::h5::read_f32(&bytes)
            .map_err(|e| failed(format!("not usable Keras weights: {e}")))?
    } else {
        pth::read(&bytes).map_err(|e| failed(format!("not a usable checkpoint: {e}")))?
    };
    let found = content_hash::of_tensors(&tensors);
    let got = Model::detect(tensors.iter().map(|(n, _)| n.as_str()))
        .map_err(|e| failed(e.to_string()))?;
    if got != model {
        return Err(failed(format!(
            "it holds {got} weights, not {model}; nothing was installed"
        )));
    }
    let verified = match expected_content_hash(model) {
        Some(expected) if expected != found => {
            return Err(Error::ContentHashMismatch {
                url,
                model: model.to_string(),
                expected: expected.to_string(),
                found,
            })
        }
        Some(_) => Verified::ContentHash,
        None => Verified::StructureOnly,
    };
    let source = url.rsplit('/').next().filter(|s| !s.is_empty());
    // Structure: convert_tensors loads them as the detector would (every tensor, shape, finite).
    let converted = pth::convert_tensors(&tensors, source)
        .map_err(|e| failed(format!("not a complete {model} state dict: {e}")))?;
    write_atomic(&dest, &converted.safetensors)?;
    Ok(Fetched {
        model,
        path: dest,
        content_hash: found,
        verified,
        downloaded: bytes.len() as u64,
        url,
    })
}

/// The content hash of an installed file and how far it checks out.
fn verify_installed(model: Model, path: &Path) -> Result<(String, Verified)> {
    let w = Weights::load(path)?;
    let hash = content_hash::of_file(path)?;
    if w.model != model {
        return Err(Error::UnknownModel {
            reason: format!("{} holds {} weights", path.display(), w.model),
        });
    }
    match expected_content_hash(model) {
        Some(e) if e == hash => Ok((hash, Verified::ContentHash)),
        Some(_) => Err(Error::UnknownModel {
            reason: "content hash differs".into(),
        }),
        None => Ok((hash, Verified::StructureOnly)),
    }
}

/// The whole body of `url`, or an error that says how much arrived.
fn download(url: &str, progress: bool) -> Result<Vec<u8>> {
    let failed = |reason: String| Error::Download {
        url: url.to_string(),
        reason,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| failed(e.to_string()))?;
    let total = response.body().content_length();
    if let Some(n) = total.filter(|n| *n > MAX_DOWNLOAD) {
        return Err(failed(format!(
            "the server announces {n} bytes, more than any weights file ({MAX_DOWNLOAD})"
        )));
    }
    let bar = progress_bar(progress, total);
    let mut reader = response
        .into_body()
        .into_with_config()
        .limit(MAX_DOWNLOAD)
        .reader();
    let mut out = Vec::with_capacity(total.unwrap_or(0) as usize);
    let mut chunk = vec![0u8; 1 << 16];
    let expected = || total.map(|t| format!(" of {t}")).unwrap_or_default();
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                bar.inc(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                bar.abandon();
                return Err(failed(format!(
                    "interrupted after {} bytes{} ({e})",
                    out.len(),
                    expected()
                )));
            }
        }
    }
    bar.finish_and_clear();
    if let Some(t) = total.filter(|t| *t != out.len() as u64) {
        return Err(failed(format!(
            "truncated: received {} bytes of {t}",
            out.len()
        )));
    }
    Ok(out)
}

fn progress_bar(enabled: bool, total: Option<u64>) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(t) => (
            indicatif::ProgressBar::new(t),
            "{bar:40.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ),
        None => (
            indicatif::ProgressBar::new_spinner(),
            "{spinner} {bytes} {bytes_per_sec}",
        ),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

pub use crate::fs_atomic::write_atomic;

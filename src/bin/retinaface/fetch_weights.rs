//! `retinaface fetch-weights`: download, verify and install the published weights.

use std::path::PathBuf;

use clap::Args;

use crate::console::outln;
use crate::fatal::Fatal;

use crate::convert::hash_note;

/// `retinaface fetch-weights --help`'s closing text.
pub const AFTER_HELP: &str = "Examples:\n  retinaface fetch-weights            (mnet025, 1.7 MB)\n  retinaface fetch-weights resnet50   (105 MB)\n\nInstalls MODEL's .safetensors into the per-user cache (RETINAFACE_CACHE_DIR, --cache-dir),\nwhere `detect --model MODEL` finds it. A truncated or wrong download installs nothing.\n\nExit codes: 0 installed (or already installed), 2 download or verification failed.";

#[derive(Args)]
pub struct FetchWeightsArgs {
    /// mnet025 (MobileNet0.25), resnet50 (ResNet50) or retinaface (retina-face's own
    /// network, its retinaface.h5).
    #[arg(default_value = "mnet025")]
    model: retinaface::Model,
    /// Install into this directory instead of the per-user cache (or set RETINAFACE_CACHE_DIR).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Download from this URL, e.g. a mirror (or set RETINAFACE_WEIGHTS_URL).
    #[arg(long)]
    url: Option<String>,
    /// Download again even if verified weights are installed.
    #[arg(long)]
    force: bool,
}

pub fn run(args: FetchWeightsArgs) -> Result<bool, Fatal> {
    use retinaface::fetch::{fetch_weights, resolve_url, FetchOptions};
    let opts = FetchOptions {
        backup_url: None,
        url: args.url,
        cache_dir: args.cache_dir,
        progress: true,
        force: args.force,
    };
    eprintln!(
        "fetching {} weights from {}",
        args.model,
        resolve_url(args.model, &opts)
    );
    let f = fetch_weights(args.model, &opts)?;
    if f.downloaded == 0 {
        outln!("already installed: {}", f.path.display());
    } else {
        outln!(
            "installed {} ({} bytes downloaded)",
            f.path.display(),
            f.downloaded
        );
    }
    outln!(
        "content hash {} ({})",
        f.content_hash,
        hash_note(f.model, &f.content_hash)
    );
    Ok(true)
}

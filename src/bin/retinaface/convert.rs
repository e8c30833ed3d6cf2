//! `retinaface convert`: a PyTorch or Keras checkpoint to safetensors.

use std::path::PathBuf;

use clap::Args;

use crate::console::outln;
use crate::fatal::Fatal;

/// `retinaface convert --help`'s closing text.
pub const AFTER_HELP: &str = "Example:\n  retinaface convert mobilenet0.25_Final.pth retinaface_mnet025.safetensors\n\nOnly a state dict's tensors are read: a checkpoint that refers to any other Python\nglobal is refused, so converting never runs code. Prints the model and the content hash.\n\nExit codes: 0 converted, 2 unreadable, unsafe or not a RetinaFace state dict.";

#[derive(Args)]
pub struct ConvertArgs {
    /// A PyTorch checkpoint holding a RetinaFace state dict (float32), or retina-face's
    /// Keras weights (`retinaface.h5`).
    input: PathBuf,
    /// The safetensors file to write (replaced atomically).
    output: PathBuf,
}

/// What a content hash says about the weights, for the convert and fetch-weights reports.
pub fn hash_note(model: retinaface::Model, hash: &str) -> String {
    match retinaface::fetch::expected_content_hash(model) {
        Some(h) if h == hash => format!("the published {model} weights"),
        Some(_) => format!("not the published {model} weights (fine-tuned or other weights)"),
        None => format!(
            "no published {model} hash to compare with: every tensor was checked for presence, shape and finite values"
        ),
    }
}

pub fn run(args: ConvertArgs) -> Result<bool, Fatal> {
    let c = retinaface::model::pth::convert_file(&args.input, &args.output)?;
    outln!(
        "{} -> {}: {} ({}), {} tensors",
        args.input.display(),
        args.output.display(),
        c.model,
        c.model.description(),
        c.tensors
    );
    outln!(
        "content hash {} ({})",
        c.content_hash,
        hash_note(c.model, &c.content_hash)
    );
    Ok(true)
}

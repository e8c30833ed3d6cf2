//! `retinaface annotate`: boxes, landmarks and scores drawn into PNGs.

use std::path::PathBuf;

use clap::Args;

use crate::console::{print, report};
use crate::detection_args::DetectionArgs;
use crate::fatal::Fatal;
use crate::inputs::{check_stdin, load};
use crate::out_files::{save_png, OutTarget, Stems};

/// `retinaface annotate --help`'s closing text.
pub const AFTER_HELP: &str = "Examples:\n  retinaface annotate photo.jpg --out annotated.png\n  retinaface annotate a.jpg b.jpg --out annotated/   (writes STEM_annotated.png)\n  retinaface annotate --max-side 800 big.jpg --out small.png\n\nExit codes: 0 all images done, 1 some image failed, 2 usage or setup error.";

#[derive(Args)]
pub struct AnnotateArgs {
    /// Image files (JPEG or PNG); `-` reads one image from stdin.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// A .png file for one image, else a directory (created if missing) receiving
    /// STEM_annotated.png per image.
    #[arg(long, value_name = "OUT")]
    out: PathBuf,
    /// Shrink the picture so its longer side is at most N pixels before drawing.
    #[arg(long, value_name = "N")]
    max_side: Option<u32>,
    #[command(flatten)]
    detection: DetectionArgs,
}

pub fn run(args: AnnotateArgs) -> Result<bool, Fatal> {
    check_stdin(&args.images)?;
    let (detector, options) = args.detection.detector()?;
    let target = OutTarget::new(&args.out, args.images.len() == 1)?;
    let mut stems = Stems::default();
    let mut all_ok = true;
    for path in &args.images {
        let result = load(path).and_then(|img| {
            let faces = detector.detect_with(&img, &options)?;
            Ok(retinaface::annotate::annotate_fit(
                &img,
                &faces,
                args.max_side.unwrap_or(0),
            ))
        });
        let file = target.path(&stems.unique(path), "annotated");
        match result
            .map_err(|e| e.to_string())
            .and_then(|picture| save_png(&picture, &file))
        {
            Ok(()) => print(&format!("{}\n", file.display()))?,
            Err(e) => {
                report(path, e);
                all_ok = false;
            }
        }
    }
    Ok(all_ok)
}

//! The images a command reads: files, directories of them, `-` for stdin.

use std::io::Read;
use std::path::{Path, PathBuf};

use image::RgbaImage;

use crate::fatal::Fatal;

/// Refuses more than one `-`: stdin holds one image.
pub fn check_stdin(images: &[PathBuf]) -> Result<(), Fatal> {
    if images.iter().filter(|p| is_stdin(p)).count() > 1 {
        return Err(Fatal("`-` (stdin) can be given only once".into()));
    }
    Ok(())
}

pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

pub fn load(path: &Path) -> retinaface::Result<RgbaImage> {
    if is_stdin(path) {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(|e| retinaface::Error::ImageRead {
                path: "<stdin>".into(),
                reason: e.to_string(),
            })?;
        retinaface::image_io::load_bytes(&bytes, Some(Path::new("<stdin>")))
    } else {
        retinaface::image_io::load_path(path)
    }
}

/// The images named on the command line, with each directory replaced by its JPEG and PNG
/// files in name order.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Fatal> {
    let mut out = Vec::new();
    for p in paths {
        if !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        let entries =
            std::fs::read_dir(p).map_err(|e| Fatal(format!("cannot list {}: {e}", p.display())))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| {
                let ext = f
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                f.is_file() && matches!(ext.as_str(), "jpg" | "jpeg" | "png")
            })
            .collect();
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

//! Where output pictures go and how they are named and written.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::fatal::Fatal;
use crate::inputs::is_stdin;

/// The name output files are derived from: the file stem, `stdin` for `-`. Kept as an OS
/// string so a name that is not UTF-8 gives output files with the same bytes.
fn stem(path: &Path) -> OsString {
    if is_stdin(path) {
        return "stdin".into();
    }
    path.file_stem()
        .map(OsStr::to_os_string)
        .unwrap_or_else(|| "image".into())
}

/// Stems made unique within a run: `a/x.jpg` and `b/x.jpg` write `x_*` and `x-2_*`.
#[derive(Default)]
pub struct Stems(HashSet<OsString>);

impl Stems {
    pub fn unique(&mut self, path: &Path) -> OsString {
        let base = stem(path);
        let mut name = base.clone();
        let mut k = 2;
        while !self.0.insert(name.clone()) {
            name = base.clone();
            name.push(format!("-{k}"));
            k += 1;
        }
        name
    }
}

/// `STEM_SUFFIX.png`, the stem's bytes kept as they are.
pub fn png_name(stem: &OsStr, suffix: &str) -> OsString {
    let mut name = stem.to_os_string();
    name.push(format!("_{suffix}.png"));
    name
}

/// Where pictures go: one named file, or a directory of `STEM_suffix.png`.
pub enum OutTarget {
    File(PathBuf),
    Dir(PathBuf),
}

impl OutTarget {
    /// A file when there is one image and `out` is not an existing directory (nor ends in
    /// `/`); a directory otherwise, created if missing.
    pub fn new(out: &Path, one_image: bool) -> Result<Self, Fatal> {
        let dir_like = out.is_dir() || out.as_os_str().to_string_lossy().ends_with('/');
        if one_image && !dir_like {
            check_png(out)?;
            return Ok(OutTarget::File(out.to_path_buf()));
        }
        if !dir_like && out.extension().is_some() {
            return Err(Fatal(format!(
                "{}: with several images the output must be a directory",
                out.display()
            )));
        }
        create_dir(out)?;
        Ok(OutTarget::Dir(out.to_path_buf()))
    }

    pub fn path(&self, stem: &OsStr, suffix: &str) -> PathBuf {
        match self {
            OutTarget::File(p) => p.clone(),
            OutTarget::Dir(d) => d.join(png_name(stem, suffix)),
        }
    }
}

pub fn check_png(path: &Path) -> Result<(), Fatal> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    if ext.as_deref() != Some("png") {
        return Err(Fatal(format!(
            "{}: output pictures are PNG; name the file *.png",
            path.display()
        )));
    }
    Ok(())
}

pub fn create_dir(dir: &Path) -> Result<(), Fatal> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Fatal(format!("cannot create directory {}: {e}", dir.display())))
}

/// PNG at the encoder's default level (the image crate's own default is its fastest, which
/// makes photos a third larger).
pub fn save_png(image: &RgbImage, path: &Path) -> Result<(), String> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let write = || -> Result<(), Box<dyn std::error::Error>> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        let encoder =
            PngEncoder::new_with_quality(file, CompressionType::Default, FilterType::Adaptive);
        image.write_with_encoder(encoder)?;
        Ok(())
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

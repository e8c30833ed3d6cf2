//! Talking to the user: results on stdout, per-image failures on stderr.

use std::io::Write;
use std::path::Path;

use crate::fatal::Fatal;

pub fn print(s: &str) -> Result<(), Fatal> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(s.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| Fatal(format!("cannot write to stdout: {e}")))
}

pub fn report(path: &Path, e: impl std::fmt::Display) {
    eprintln!("retinaface: {}: {e}", path.display());
}

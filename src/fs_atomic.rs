//! Writing a file so that readers see the old one or the whole new one, never a part.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// readers see the old file or the complete new one, never a part. On failure the temporary
/// file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let werr = |p: &Path, e: std::io::Error| Error::WriteFile {
        path: p.to_path_buf(),
        reason: e.to_string(),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| werr(&dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "weights".into());
    let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
    // Removes the temporary file on every early return (and on a panic).
    struct Guard<'a>(&'a Path, bool);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            if !self.1 {
                let _ = std::fs::remove_file(self.0);
            }
        }
    }
    let mut guard = Guard(&tmp, false);
    let mut f = std::fs::File::create(&tmp).map_err(|e| werr(&tmp, e))?;
    f.write_all(bytes).map_err(|e| werr(&tmp, e))?;
    f.sync_all().map_err(|e| werr(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| werr(path, e))?;
    guard.1 = true;
    // Make the rename itself durable where the platform allows syncing a directory.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

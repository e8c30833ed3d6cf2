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

/// Whether a directory entry is one of the images `detect` reads from directories.
fn is_image_name(path: &Path) -> bool {
    let ext = path.extension().map(|e| e.to_ascii_lowercase());
    matches!(
        ext.as_ref().and_then(|e| e.to_str()),
        Some("jpg" | "jpeg" | "png")
    )
}

/// The image paths a list of arguments names, found as they are consumed: each file as given,
/// each directory walked depth-first with its entries in name order (symlinks followed).
/// Only the listings of the directories on the current path are held, never the whole tree,
/// so a directory of 10,000 photos costs 10,000 paths and nothing is decoded here.
///
/// Yields `Err((path, reason))` for what cannot be walked (an unreadable directory, a symlink
/// loop, an entry that cannot be examined); the caller reports it and the walk goes on.
pub struct Walk {
    args: std::vec::IntoIter<PathBuf>,
    /// The open directories, outermost first: their identity (for loop detection) and the
    /// entries not yet visited.
    open: Vec<(DirId, std::vec::IntoIter<PathBuf>)>,
}

/// A directory's device and inode: the same directory reached again through a symlink has
/// the same pair, whatever the path says.
#[derive(Clone, Copy, PartialEq, Eq)]
struct DirId(u64, u64);

impl DirId {
    #[cfg(unix)]
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        DirId(meta.dev(), meta.ino())
    }

    // No inode numbers: loops are then caught only by the OS's own symlink depth limit.
    #[cfg(not(unix))]
    fn of(_: &std::fs::Metadata) -> Self {
        DirId(0, 0)
    }
}

pub type WalkError = (PathBuf, String);

impl Walk {
    pub fn new(args: Vec<PathBuf>) -> Self {
        Walk {
            args: args.into_iter(),
            open: Vec::new(),
        }
    }

    /// Opens a directory for walking, unless it is one already open (a symlink pointing back
    /// up the tree) or cannot be listed.
    fn enter(&mut self, dir: PathBuf, meta: &std::fs::Metadata) -> Result<(), WalkError> {
        let id = DirId::of(meta);
        if cfg!(unix) && self.open.iter().any(|(open, _)| *open == id) {
            return Err((
                dir,
                "symlink loop (leads back to a directory being walked); skipped".into(),
            ));
        }
        let listing = std::fs::read_dir(&dir).and_then(|entries| {
            entries
                .map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<Vec<_>>>()
        });
        match listing {
            Ok(mut entries) => {
                entries.sort();
                self.open.push((id, entries.into_iter()));
                Ok(())
            }
            Err(e) => Err((dir, format!("cannot list directory: {e}"))),
        }
    }
}

impl Iterator for Walk {
    type Item = Result<PathBuf, WalkError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some((_, entries)) = self.open.last_mut() else {
                // Arguments are taken as given: a file of any name is read (and its decoder
                // says what is wrong with it), `-` is stdin.
                let arg = self.args.next()?;
                match std::fs::metadata(&arg) {
                    Ok(meta) if meta.is_dir() => match self.enter(arg, &meta) {
                        Ok(()) => continue,
                        Err(e) => return Some(Err(e)),
                    },
                    _ => return Some(Ok(arg)),
                }
            };
            let Some(entry) = entries.next() else {
                self.open.pop();
                continue;
            };
            match std::fs::metadata(&entry) {
                Ok(meta) if meta.is_dir() => match self.enter(entry, &meta) {
                    Ok(()) => continue,
                    Err(e) => return Some(Err(e)),
                },
                Ok(meta) if meta.is_file() && is_image_name(&entry) => return Some(Ok(entry)),
                Ok(_) => continue,
                // A dangling link named notes.txt is nobody's image; one named x.jpg, or a
                // link that loops onto itself, is worth a word.
                Err(e) if is_image_name(&entry) || e.kind() != std::io::ErrorKind::NotFound => {
                    return Some(Err((entry, format!("cannot read: {e}"))))
                }
                Err(_) => continue,
            }
        }
    }
}

//! Talking to the user: results on stdout, per-image failures on stderr.

use std::io::{ErrorKind, Write};
use std::path::Path;

use crate::fatal::Fatal;

/// Writes results to stdout. When its reader has gone (`retinaface detect DIR | head -1`),
/// the process ends quietly by SIGPIPE, see [`end_by_sigpipe`].
pub fn print(s: &str) -> Result<(), Fatal> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(s.as_bytes()).and_then(|_| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => end_by_sigpipe(),
        Err(e) => Err(Fatal(format!("cannot write to stdout: {e}"))),
    }
}

/// `println!` through [`print`], for the commands' reports: `?` passes on its error, and a
/// closed stdout ends the run quietly where `println!` would panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::console::print(&format!("{}\n", format_args!($($arg)*)))?
    };
}
pub(crate) use outln;

pub fn report(path: &Path, e: impl std::fmt::Display) {
    eprintln!("retinaface: {}: {e}", path.display());
}

/// Ends the way `cat` or `grep` do when their output pipe closes: killed by SIGPIPE, no
/// message, the shell reporting status 141 and `set -o pipefail` seeing it.
///
/// Rust starts programs with SIGPIPE ignored, so a write to a closed pipe fails with EPIPE
/// instead of killing. We keep it that way for the run and only restore the default here, on
/// stdout's EPIPE: restoring it at start-up would also let a dead `ffmpeg` child (the video
/// encoder's pipe) kill us silently, where it should be reported as an error.
fn end_by_sigpipe() -> ! {
    #[cfg(unix)]
    // SAFETY: signal and raise take plain integers and touch no Rust-managed memory; with
    // the default action restored, raise does not return (the process ends).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // No signals (or raise somehow returned): the status a shell would have shown.
    std::process::exit(141)
}

//! The error that stops a whole run (exit 2), with a message the user can act on.

/// An error that stops the whole run (exit 2).
#[derive(Debug)]
pub struct Fatal(pub String);

impl From<retinaface::Error> for Fatal {
    fn from(e: retinaface::Error) -> Self {
        Fatal(e.to_string())
    }
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

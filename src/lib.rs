//! RetinaFace face detection whose whole inference runs in WGSL compute shaders through wgpu.
//!
//! ```no_run
//! let detector = retinaface::Detector::new(None)?;
//! for face in detector.detect_path("photo.jpg".as_ref())? {
//!     println!("{:.3} {:?}", face.score, face.facial_area);
//! }
//! # Ok::<(), retinaface::Error>(())
//! ```
//!
//! GPU faults are errors, never panics or hangs: a lost or destroyed device gives
//! [`Error::DeviceLost`] (from every call, and for every frame in flight in a
//! [`detector::Stream`]), a failed allocation [`Error::OutOfMemory`]; [`Detector::recover`]
//! continues on a new device without restarting the process (see [`Detector`]).

pub mod align;
pub mod align_package;
pub mod annotate;
pub mod cv_resize;
pub mod detector;
pub mod error;
pub mod eval;
pub mod face;
#[cfg(feature = "native")]
pub mod fetch;
#[cfg(feature = "native")]
pub mod fs_atomic;
pub mod gpu;
#[cfg(feature = "native")]
pub mod image_io;
pub mod model;
pub mod ops;
pub mod options;
pub mod profile;
pub mod tuning;
#[cfg(feature = "native")]
pub mod video;

pub use align::{ExtractOptions, FaceCrop};
pub use detector::Detector;
pub use error::{Error, Result};
pub use face::{Face, Landmarks};
pub use gpu::{GpuContext, KernelPath};
pub use model::arch::Model;
pub use options::{DetectOptions, Resize};
pub use profile::Profile;
/// The wgpu version this crate is built against, so callers sharing a device use the same one.
pub use wgpu;

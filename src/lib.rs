//! RetinaFace face detection whose whole inference runs in WGSL compute shaders through wgpu.

pub mod error;
pub mod gpu;
pub mod ops;

pub use error::{Error, Result};
pub use gpu::GpuContext;
/// The wgpu version this crate is built against, so callers sharing a device use the same one.
pub use wgpu;

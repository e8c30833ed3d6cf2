//! The network: architecture, weights, and the per-size plan of GPU work.

pub mod arch;
pub mod content_hash;
pub mod cpu_forward;
pub mod h5;
pub(crate) mod plan;
pub mod postprocess;
pub mod pth;
pub mod weights;

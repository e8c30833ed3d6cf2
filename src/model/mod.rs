//! The network: architecture, weights, and the per-size plan of GPU work.

pub mod arch;
pub(crate) mod plan;
pub mod postprocess;
pub mod weights;

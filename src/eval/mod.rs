//! Benchmark evaluation: the WIDER FACE validation protocol ([`widerface`]) and the MATLAB
//! file reader its ground truth needs ([`mat`]).

pub mod mat;
pub mod widerface;

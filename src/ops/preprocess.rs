//! Host side of `shaders/preprocess.wgsl`.

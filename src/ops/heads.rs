//! Host side of `shaders/heads.wgsl`.

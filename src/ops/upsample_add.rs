//! Host side of `shaders/upsample_add.wgsl`.

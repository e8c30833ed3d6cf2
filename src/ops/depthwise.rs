//! Host side of `shaders/depthwise.wgsl`.

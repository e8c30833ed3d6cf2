//! Host side of `shaders/nms.wgsl`.

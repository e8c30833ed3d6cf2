//! Host side of `shaders/decode.wgsl`.

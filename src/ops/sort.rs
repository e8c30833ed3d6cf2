//! Host side of `shaders/sort.wgsl`.

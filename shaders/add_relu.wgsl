// ResNet's residual join: x = relu(x + identity), or x = x + identity where `relu` is 0 (the
// pre-activation ResNet of retina-face has no ReLU after its adds), in place on the
// bottleneck's last convolution output (its batch norm, if any, folded in). Element-wise over
// the n floats of the image; the zero pixel after the image that convolutions read for
// out-of-image taps is not touched.
//
// One float per invocation: the pass is memory-bound (two loads, one store per element).
// Large maps are folded into a 2D grid because a dispatch dimension stops at 65535.

struct Params {
    n: u32,
    // Invocations per grid row: workgroups along x times the workgroup size.
    row: u32,
    relu: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> identity: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if i >= p.n {
        return;
    }
    let v = x[i] + identity[i];
    x[i] = select(v, max(v, 0.0), p.relu != 0u);
}

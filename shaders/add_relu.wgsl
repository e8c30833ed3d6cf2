// ResNet's residual join: x = relu(x + identity), in place on the bottleneck's last
// convolution output (its batch norm is folded in, without activation). Element-wise over
// the n floats of the image; the zero pixel after the image that convolutions read for
// out-of-image taps is not touched.
//
// One float per invocation: the pass is memory-bound (two loads, one store per element).
// Large maps are folded into a 2D grid because a dispatch dimension stops at 65535.

struct Params {
    n: u32,
    // Invocations per grid row: workgroups along x times the workgroup size.
    row: u32,
    _pad0: u32,
    _pad1: u32,
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
    x[i] = max(x[i] + identity[i], 0.0);
}

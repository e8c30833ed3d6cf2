// A batch norm on its own: y = x * scale[c] + shift[c] per channel, then an optional ReLU,
// channels-last f32 into a new tensor. retina-face's pre-activation ResNet needs it where a
// batch norm comes before a ReLU and a conv (and bn_data before conv0's zero padding), so it
// cannot be folded into a neighbouring conv.
//
// One vec4 (4 channels of a pixel) per invocation: the pass is memory-bound. The zero pixel
// after the image, which the next conv reads for taps outside it, is left as it is (zero).
// Large maps are folded into a 2D grid because a dispatch dimension stops at 65535.
//
// Layout contract: channels are a multiple of 4; scale and shift are padded with zeros to
// that many channels, at vec4 offsets in the weight buffer.

struct Params {
    // Vec4s of the image (pixels x channels / 4).
    n: u32,
    // Channels / 4.
    c4: u32,
    relu: u32,
    scale_offset: u32,
    shift_offset: u32,
    // Invocations per grid row: workgroups along x times the workgroup size.
    row: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if i >= p.n {
        return;
    }
    let g = i % p.c4;
    let v = fma(src[i], weights[p.scale_offset + g], weights[p.shift_offset + g]);
    dst[i] = select(v, max(v, vec4<f32>(0.0)), p.relu != 0u);
}

// Depthwise 3x3 convolution (one filter per channel), stride 1 or 2, zero padding 1,
// channels-last f32, folded batch-norm bias and activation fused.
//
// Invocations run along channels first: neighbours read neighbouring floats of the same
// pixel, so loads coalesce, and each weight is read by one invocation per pixel only.
// Weights: [ky][kx][c] floats, then the bias [c], at float offsets.

struct Params {
    in_w: u32,
    in_h: u32,
    channels: u32,
    out_w: u32,
    out_h: u32,
    stride: u32,
    act: u32,
    w_offset: u32,
    b_offset: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let ox = gid.y;
    let oy = gid.z;
    if c >= p.channels || ox >= p.out_w || oy >= p.out_h {
        return;
    }
    var acc = weights[p.b_offset + c];
    for (var ky = 0u; ky < 3u; ky++) {
        // Unsigned wrap-around turns "above the top edge" into "past the bottom edge".
        let iy = oy * p.stride + ky - 1u;
        if iy >= p.in_h {
            continue;
        }
        for (var kx = 0u; kx < 3u; kx++) {
            let ix = ox * p.stride + kx - 1u;
            if ix >= p.in_w {
                continue;
            }
            acc = fma(src[(iy * p.in_w + ix) * p.channels + c], weights[p.w_offset + (ky * 3u + kx) * p.channels + c], acc);
        }
    }
    if p.act == 1u {
        acc = max(acc, 0.0);
    } else if p.act == 2u {
        acc = select(acc * 0.1, acc, acc >= 0.0);
    }
    dst[(oy * p.out_w + ox) * p.channels + c] = acc;
}

// Depthwise 3x3 convolution (one filter per channel), stride 1 or 2, zero padding 1,
// channels-last f32, folded batch-norm bias and activation fused.
//
// Each invocation computes 4 neighbouring output pixels along x for 4 channels (one vec4).
// Invocations of a workgroup share their channels, so the 9 weight vec4s are the same for all
// of them (uniform loads), and each input column is loaded once per row and reused by the
// taps and outputs that overlap it (6 columns for stride 1, 9 for stride 2, instead of 12).
//
// Layout contract: channels are a multiple of 4; the input buffer holds one extra pixel of
// zeros after the image, read for taps outside it; weights are [ky][kx][c] as vec4 groups of
// channels, then the bias, at vec4 offsets.

struct Params {
    in_w: u32,
    in_h: u32,
    // Channels / 4.
    c4: u32,
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
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dst: array<vec4<f32>>;

fn column(row: u32, x: u32, g: u32) -> vec4<f32> {
    // Unsigned wrap-around makes x = -1 fail the test too.
    let i = select(p.in_w * p.in_h * p.c4, (row + x) * p.c4, x < p.in_w);
    return src[i + g];
}

fn activate(v: vec4<f32>) -> vec4<f32> {
    if p.act == 1u {
        return max(v, vec4<f32>(0.0));
    }
    if p.act == 2u {
        return select(v * 0.1, v, v >= vec4<f32>(0.0));
    }
    return v;
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let ox0 = gid.x * 4u;
    let oy = gid.y;
    // The same as gid.z (workgroups are 1 deep), but visibly uniform to the compiler, so the
    // weight loads below become one scalar load and a broadcast instead of a gather.
    let g = wid.z;
    if ox0 >= p.out_w || oy >= p.out_h || g >= p.c4 {
        return;
    }
    let bias = weights[p.b_offset + g];
    var a0 = bias;
    var a1 = bias;
    var a2 = bias;
    var a3 = bias;
    let x = ox0 * p.stride - 1u;
    for (var ky = 0u; ky < 3u; ky++) {
        let iy = oy * p.stride + ky - 1u;
        if iy >= p.in_h {
            continue;
        }
        let row = iy * p.in_w;
        let wb = p.w_offset + ky * 3u * p.c4 + g;
        let w0 = weights[wb];
        let w1 = weights[wb + p.c4];
        let w2 = weights[wb + 2u * p.c4];
        let c0 = column(row, x, g);
        let c1 = column(row, x + 1u, g);
        let c2 = column(row, x + 2u, g);
        let c3 = column(row, x + 3u, g);
        let c4 = column(row, x + 4u, g);
        let c5 = column(row, x + 5u, g);
        if p.stride == 1u {
            a0 = fma(c0, w0, fma(c1, w1, fma(c2, w2, a0)));
            a1 = fma(c1, w0, fma(c2, w1, fma(c3, w2, a1)));
            a2 = fma(c2, w0, fma(c3, w1, fma(c4, w2, a2)));
            a3 = fma(c3, w0, fma(c4, w1, fma(c5, w2, a3)));
        } else {
            let c6 = column(row, x + 6u, g);
            let c7 = column(row, x + 7u, g);
            let c8 = column(row, x + 8u, g);
            a0 = fma(c0, w0, fma(c1, w1, fma(c2, w2, a0)));
            a1 = fma(c2, w0, fma(c3, w1, fma(c4, w2, a1)));
            a2 = fma(c4, w0, fma(c5, w1, fma(c6, w2, a2)));
            a3 = fma(c6, w0, fma(c7, w1, fma(c8, w2, a3)));
        }
    }
    let o = (oy * p.out_w + ox0) * p.c4 + g;
    dst[o] = activate(a0);
    if ox0 + 1u < p.out_w {
        dst[o + p.c4] = activate(a1);
    }
    if ox0 + 2u < p.out_w {
        dst[o + 2u * p.c4] = activate(a2);
    }
    if ox0 + 3u < p.out_w {
        dst[o + 3u * p.c4] = activate(a3);
    }
}

// Dense 2D convolution (k x k, stride s, zero padding), channels-last (HWC) f32, with the
// folded batch-norm bias and the activation fused into the epilogue. The result can go into a
// channel slice of a wider tensor (SSH's three branches share one output with no concat copy).
//
// Each invocation computes 4 neighbouring output pixels along x for 4 output channels: one
// vec4 weight load feeds 16 FMAs, and all invocations of a workgroup share the same output
// channel group, so weight reads are uniform across the workgroup.
//
// Weights: [ky][kx][ci][co4] of vec4 (output channels padded to a multiple of 4 with zeros),
// then the bias as co4 vec4s, at offsets given in vec4 units.

struct Params {
    in_w: u32,
    in_h: u32,
    in_c: u32,
    out_w: u32,
    out_h: u32,
    out_c: u32,
    out_c_stride: u32,
    out_c_offset: u32,
    ksize: u32,
    stride: u32,
    pad: u32,
    act: u32,
    w_offset: u32,
    b_offset: u32,
    co4: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

const PX: u32 = 4u;

fn activate(v: vec4<f32>) -> vec4<f32> {
    if p.act == 1u {
        return max(v, vec4<f32>(0.0));
    }
    if p.act == 2u {
        return select(v * 0.1, v, v >= vec4<f32>(0.0));
    }
    return v;
}

fn store(ox: u32, oy: u32, g: u32, v: vec4<f32>) {
    if ox >= p.out_w {
        return;
    }
    let base = (oy * p.out_w + ox) * p.out_c_stride + p.out_c_offset + g * 4u;
    let a = activate(v);
    for (var j = 0u; j < 4u; j++) {
        if g * 4u + j < p.out_c {
            dst[base + j] = a[j];
        }
    }
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ox0 = gid.x * PX;
    let oy = gid.y;
    let g = gid.z;
    if ox0 >= p.out_w || oy >= p.out_h || g >= p.co4 {
        return;
    }
    let bias = weights[p.b_offset + g];
    var a0 = bias;
    var a1 = bias;
    var a2 = bias;
    var a3 = bias;
    let s = p.stride;
    for (var ky = 0u; ky < p.ksize; ky++) {
        // Unsigned wrap-around turns "above the top edge" into "past the bottom edge".
        let iy = oy * s + ky - p.pad;
        if iy >= p.in_h {
            continue;
        }
        let row = iy * p.in_w;
        for (var kx = 0u; kx < p.ksize; kx++) {
            let ix0 = ox0 * s + kx - p.pad;
            let ix1 = ix0 + s;
            let ix2 = ix1 + s;
            let ix3 = ix2 + s;
            // Out-of-image taps read pixel 0 and are multiplied by 0: no divergent branches.
            let m = vec4<f32>(
                select(0.0, 1.0, ix0 < p.in_w),
                select(0.0, 1.0, ix1 < p.in_w),
                select(0.0, 1.0, ix2 < p.in_w),
                select(0.0, 1.0, ix3 < p.in_w),
            );
            let b0 = select(0u, (row + ix0) * p.in_c, ix0 < p.in_w);
            let b1 = select(0u, (row + ix1) * p.in_c, ix1 < p.in_w);
            let b2 = select(0u, (row + ix2) * p.in_c, ix2 < p.in_w);
            let b3 = select(0u, (row + ix3) * p.in_c, ix3 < p.in_w);
            let wbase = p.w_offset + (ky * p.ksize + kx) * p.in_c * p.co4 + g;
            for (var ci = 0u; ci < p.in_c; ci++) {
                let w = weights[wbase + ci * p.co4];
                a0 = fma(vec4<f32>(src[b0 + ci] * m.x), w, a0);
                a1 = fma(vec4<f32>(src[b1 + ci] * m.y), w, a1);
                a2 = fma(vec4<f32>(src[b2 + ci] * m.z), w, a2);
                a3 = fma(vec4<f32>(src[b3 + ci] * m.w), w, a3);
            }
        }
    }
    store(ox0, oy, g, a0);
    store(ox0 + 1u, oy, g, a1);
    store(ox0 + 2u, oy, g, a2);
    store(ox0 + 3u, oy, g, a3);
}

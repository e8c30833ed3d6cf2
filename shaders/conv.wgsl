// Dense 2D convolution (k x k, stride s, zero padding k/2), channels-last f32, with the folded
// batch-norm bias and the activation fused. The result can go into a channel slice of a wider
// tensor (SSH's three branches share one output with no concat copy).
//
// Each invocation computes a small tile: 4 neighbouring output pixels along x for 8 output
// channels, or 2 pixels for 16 channels (two entry points; the host picks per layer).
// Invocations of a workgroup differ only in their pixels and share their output channels, so
// every weight load is the same address across the workgroup (one load, broadcast), and each
// input vec4 (4 input channels of one pixel, gathered across invocations) feeds 8 or 16 FMAs.
//
// Layout contract (the host guarantees it):
// - input channels are a multiple of 4, so a pixel's channels are whole vec4s;
// - the input buffer holds a pixel of zeros at `zero` (after the image, or after the largest
//   tensor that shares the buffer): taps outside the image read it instead of branching per
//   channel;
// - weights: [ky][kx][ci][co] of vec4s (output channels padded to 16 with zeros), then
//   the bias, output channels padded to 16, offsets in vec4 units.
//
// Banded runs (a tensor larger than one storage binding; see `ops::band`): the dispatch covers
// output rows oy0 .. oy0 + rows, and `src` / `dst` are windows of the tensors' buffers that
// start at vec4 `src_base` / float `dst_base` of the whole tensor. A window holds no zero
// pixel, so pipelines built with BANDED = true read index 0 for taps outside the image and
// select zero instead (one select per load: only those pipelines pay it).

struct Params {
    in_w: u32,
    in_h: u32,
    // Input channels / 4.
    in_c4: u32,
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
    // Invocations along the output channels (groups of 8 or 16 channels).
    groups: u32,
    // Vec4s per input channel in the weights: output channels padded to 16, / 4.
    w_row: u32,
    // Used by conv_subgroup.wgsl, which shares this parameter block.
    tiles_x: u32,
    tiles: u32,
    // Vec4 index of the input's zero pixel (c4 vec4s of zeros), read for taps outside the
    // image: right after the image, or after the largest tensor of a shared buffer.
    zero: u32,
    // The band: first output row and rows (0 and out_h for a whole-map run), and where the
    // bound windows start in the tensors (0 for whole buffers).
    oy0: u32,
    rows: u32,
    src_base: u32,
    dst_base: u32,
    _pad0: u32,
    _pad1: u32,
}

override BANDED: bool = false;

// Where the bound windows start in the tensors: a constant 0 in whole-buffer pipelines, so
// their index arithmetic compiles as it did before bands existed.
fn src_base() -> u32 {
    if BANDED {
        return p.src_base;
    }
    return 0u;
}

fn dst_base() -> u32 {
    if BANDED {
        return p.dst_base;
    }
    return 0u;
}

// One input vec4; zeros for a tap outside the image in banded pipelines (elsewhere `i` is
// then the zero pixel already).
fn ld(i: u32, inside: bool) -> vec4<f32> {
    if BANDED {
        return select(vec4<f32>(0.0), src[i], inside);
    }
    return src[i];
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
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

// Writes 4 channels starting at `c0` of pixel (ox, oy).
fn store(ox: u32, oy: u32, c0: u32, v: vec4<f32>) {
    if ox >= p.out_w {
        return;
    }
    let base = (oy * p.out_w + ox) * p.out_c_stride + p.out_c_offset - dst_base();
    let a = activate(v);
    for (var j = 0u; j < 4u; j++) {
        if c0 + j < p.out_c {
            dst[base + c0 + j] = a[j];
        }
    }
}

// 4 pixels x 8 output channels per invocation: for layers with few output channels.
@compute @workgroup_size(8, 8, 1)
fn main_4x8(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let ox0 = gid.x * PX;
    let oy = p.oy0 + gid.y;
    // The same as gid.z (workgroups are 1 deep), but visibly uniform to the compiler, so the
    // weight loads below become one scalar load and a broadcast instead of a gather.
    let g = wid.z;
    if ox0 >= p.out_w || gid.y >= p.rows || g >= p.groups {
        return;
    }
    let b_lo = weights[p.b_offset + g * 2u];
    let b_hi = weights[p.b_offset + g * 2u + 1u];
    var a0 = b_lo;
    var a1 = b_lo;
    var a2 = b_lo;
    var a3 = b_lo;
    var h0 = b_hi;
    var h1 = b_hi;
    var h2 = b_hi;
    var h3 = b_hi;
    let s = p.stride;
    let zero = p.zero;
    let tap_stride = p.in_c4 * 4u * p.w_row;
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
            let m = vec4<u32>(ix0, ix1, ix2, ix3) < vec4<u32>(p.in_w);
            let b0 = select(zero, (row + ix0) * p.in_c4 - src_base(), m.x);
            let b1 = select(zero, (row + ix1) * p.in_c4 - src_base(), m.y);
            let b2 = select(zero, (row + ix2) * p.in_c4 - src_base(), m.z);
            let b3 = select(zero, (row + ix3) * p.in_c4 - src_base(), m.w);
            var w = p.w_offset + (ky * p.ksize + kx) * tap_stride + g * 2u;
            for (var c = 0u; c < p.in_c4; c++) {
                let x0 = ld(b0 + c, m.x);
                let x1 = ld(b1 + c, m.y);
                let x2 = ld(b2 + c, m.z);
                let x3 = ld(b3 + c, m.w);
                for (var j = 0u; j < 4u; j++) {
                    let wl = weights[w];
                    let wh = weights[w + 1u];
                    a0 = fma(vec4<f32>(x0[j]), wl, a0);
                    a1 = fma(vec4<f32>(x1[j]), wl, a1);
                    a2 = fma(vec4<f32>(x2[j]), wl, a2);
                    a3 = fma(vec4<f32>(x3[j]), wl, a3);
                    h0 = fma(vec4<f32>(x0[j]), wh, h0);
                    h1 = fma(vec4<f32>(x1[j]), wh, h1);
                    h2 = fma(vec4<f32>(x2[j]), wh, h2);
                    h3 = fma(vec4<f32>(x3[j]), wh, h3);
                    w += p.w_row;
                }
            }
        }
    }
    let c = g * 8u;
    store(ox0, oy, c, a0);
    store(ox0 + 1u, oy, c, a1);
    store(ox0 + 2u, oy, c, a2);
    store(ox0 + 3u, oy, c, a3);
    store(ox0, oy, c + 4u, h0);
    store(ox0 + 1u, oy, c + 4u, h1);
    store(ox0 + 2u, oy, c + 4u, h2);
    store(ox0 + 3u, oy, c + 4u, h3);
}

// 2 pixels x 16 output channels per invocation: each gathered input vec4 feeds 16 FMAs
// instead of 8, for the wide layers that dominate the cost.
@compute @workgroup_size(8, 8, 1)
fn main_2x16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let ox0 = gid.x * 2u;
    let oy = p.oy0 + gid.y;
    // The same as gid.z (workgroups are 1 deep), but visibly uniform to the compiler, so the
    // weight loads below become one scalar load and a broadcast instead of a gather.
    let g = wid.z;
    if ox0 >= p.out_w || gid.y >= p.rows || g >= p.groups {
        return;
    }
    let bo = p.b_offset + g * 4u;
    var a0 = weights[bo];
    var a1 = weights[bo + 1u];
    var a2 = weights[bo + 2u];
    var a3 = weights[bo + 3u];
    var b0 = a0;
    var b1 = a1;
    var b2 = a2;
    var b3 = a3;
    let s = p.stride;
    let zero = p.zero;
    let tap_stride = p.in_c4 * 4u * p.w_row;
    for (var ky = 0u; ky < p.ksize; ky++) {
        let iy = oy * s + ky - p.pad;
        if iy >= p.in_h {
            continue;
        }
        let row = iy * p.in_w;
        for (var kx = 0u; kx < p.ksize; kx++) {
            let ix0 = ox0 * s + kx - p.pad;
            let ix1 = ix0 + s;
            let m0 = ix0 < p.in_w;
            let m1 = ix1 < p.in_w;
            let i0 = select(zero, (row + ix0) * p.in_c4 - src_base(), m0);
            let i1 = select(zero, (row + ix1) * p.in_c4 - src_base(), m1);
            var w = p.w_offset + (ky * p.ksize + kx) * tap_stride + g * 4u;
            for (var c = 0u; c < p.in_c4; c++) {
                let x0 = ld(i0 + c, m0);
                let x1 = ld(i1 + c, m1);
                for (var j = 0u; j < 4u; j++) {
                    let w0 = weights[w];
                    let w1 = weights[w + 1u];
                    let w2 = weights[w + 2u];
                    let w3 = weights[w + 3u];
                    let u = vec4<f32>(x0[j]);
                    let v = vec4<f32>(x1[j]);
                    a0 = fma(u, w0, a0);
                    a1 = fma(u, w1, a1);
                    a2 = fma(u, w2, a2);
                    a3 = fma(u, w3, a3);
                    b0 = fma(v, w0, b0);
                    b1 = fma(v, w1, b1);
                    b2 = fma(v, w2, b2);
                    b3 = fma(v, w3, b3);
                    w += p.w_row;
                }
            }
        }
    }
    let c = g * 16u;
    store(ox0, oy, c, a0);
    store(ox0, oy, c + 4u, a1);
    store(ox0, oy, c + 8u, a2);
    store(ox0, oy, c + 12u, a3);
    store(ox0 + 1u, oy, c, b0);
    store(ox0 + 1u, oy, c + 4u, b1);
    store(ox0 + 1u, oy, c + 8u, b2);
    store(ox0 + 1u, oy, c + 12u, b3);
}

// The class, box and landmark heads of one pyramid level: three 1x1 convolutions with bias,
// evaluated together so the SSH features are read once. Writes 16 raw outputs per anchor,
// [cls0, cls1, loc0..3, landm0..9], at rows (y, x, anchor) after the rows of finer levels:
// the reference's anchor order, so decode can index priors directly.
//
// Weights: [ci][anchor][16] as vec4 (8 vec4 per input channel), then the bias as 8 vec4.

struct Params {
    width: u32,
    height: u32,
    in_c: u32,
    row_offset: u32,
    w_offset: u32,
    b_offset: u32,
    // Invocations per row of the dispatch grid (large maps use a 2D grid).
    grid_x: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> raw: array<vec4<f32>>;

const ANCHORS: u32 = 2u;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.grid_x + gid.x;
    if i >= p.width * p.height * ANCHORS {
        return;
    }
    let pixel = i / ANCHORS;
    let a = i % ANCHORS;
    let bo = p.b_offset + a * 4u;
    var o0 = weights[bo];
    var o1 = weights[bo + 1u];
    var o2 = weights[bo + 2u];
    var o3 = weights[bo + 3u];
    let base = pixel * p.in_c;
    for (var ci = 0u; ci < p.in_c; ci++) {
        let v = vec4<f32>(src[base + ci]);
        let wo = p.w_offset + ci * 8u + a * 4u;
        o0 = fma(v, weights[wo], o0);
        o1 = fma(v, weights[wo + 1u], o1);
        o2 = fma(v, weights[wo + 2u], o2);
        o3 = fma(v, weights[wo + 3u], o3);
    }
    let r = (p.row_offset + i) * 4u;
    raw[r] = o0;
    raw[r + 1u] = o1;
    raw[r + 2u] = o2;
    raw[r + 3u] = o3;
}

// The class, box and landmark heads of one pyramid level: three 1x1 convolutions with bias,
// evaluated together so the SSH features are read once. Writes 16 raw outputs per anchor,
// [cls0, cls1, loc0..3, landm0..9], at rows (y, x, anchor) after the rows of finer levels:
// the reference's anchor order, so decode can index priors directly.
//
// One invocation per pixel computes both anchors (32 outputs). Every invocation reads the same
// weights at the same time (uniform loads), and each input vec4 feeds 32 FMAs.
// Input channels are a multiple of 4. Weights: [ci][anchor][16] as vec4 (8 vec4 per input
// channel), then the bias as 8 vec4.

struct Params {
    width: u32,
    height: u32,
    // Input channels / 4.
    in_c4: u32,
    row_offset: u32,
    w_offset: u32,
    b_offset: u32,
    // Invocations per row of the dispatch grid (large maps use a 2D grid).
    grid_x: u32,
    // Banded runs (see `ops::band`): pixels px0 .. px_end, the input bound as a window that
    // starts at vec4 `src_base` (0, width * height, 0 for a whole-map run).
    px0: u32,
    px_end: u32,
    src_base: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> raw: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pixel = p.px0 + gid.y * p.grid_x + gid.x;
    if pixel >= p.px_end {
        return;
    }
    var o: array<vec4<f32>, 8>;
    for (var k = 0u; k < 8u; k++) {
        o[k] = weights[p.b_offset + k];
    }
    let base = pixel * p.in_c4 - p.src_base;
    var w = p.w_offset;
    for (var c = 0u; c < p.in_c4; c++) {
        let x = src[base + c];
        for (var j = 0u; j < 4u; j++) {
            let v = vec4<f32>(x[j]);
            for (var k = 0u; k < 8u; k++) {
                o[k] = fma(v, weights[w + k], o[k]);
            }
            w += 8u;
        }
    }
    // Anchor a of this pixel is row 2 * pixel + a: its 16 outputs are 4 vec4s.
    let r = (p.row_offset + pixel * 2u) * 4u;
    for (var k = 0u; k < 8u; k++) {
        raw[r + k] = o[k];
    }
}

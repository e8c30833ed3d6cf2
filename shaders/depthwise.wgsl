// Depthwise 3x3 convolution (one filter per channel), stride 1 or 2, zero padding 1,
// channels-last f32, folded batch-norm bias and activation fused.
//
// Each invocation computes a column of 4 x tile_h output pixels for 4 channels (one vec4),
// walking down the input rows it needs and loading each input column of a row once: a row
// feeds every open output row and every tap that overlaps it. The cost of a depthwise layer
// is its loads (a storage load is a per-lane loop on lavapipe, a memory transaction on GPUs;
// 9 FMAs per output leave the ALUs idle either way): at stride 1, tiles of 4 x 16 load 1.7
// input vec4s per output vec4 where a row of 4 loads 4.5. The host picks tile_h so that
// small maps still have enough tiles to fill the device.
//
// Tiles are flattened over the map (64 per workgroup), so narrow maps fill every lane; the
// channel group is workgroup_id.y, the same for the whole workgroup, so the 9 weight vec4s
// are loaded once per invocation.
//
// Layout contract: channels are a multiple of 4; the input buffer holds a pixel of zeros at
// `zero` (after the image, or after the largest tensor sharing the buffer), read for taps
// outside the image; weights are [ky][kx][c] as vec4 groups of
// channels, then the bias, at vec4 offsets.
//
// Banded runs (see conv.wgsl and `ops::band`): output rows band_y0 .. band_y1 through windows
// starting at vec4 `src_base` / `dst_base`; BANDED pipelines select zeros for taps outside
// the image, as a window holds no zero pixel.

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
    // Tiles of 4 x tile_h pixels per tile row, and in the whole map.
    tiles_x: u32,
    tiles: u32,
    tile_h: u32,
    // Vec4 index of the input's zero pixel (see conv.wgsl).
    zero: u32,
    // The band of output rows (0 and out_h for a whole-map run) and where the bound windows
    // start in the tensors (0 for whole buffers).
    band_y0: u32,
    band_y1: u32,
    src_base: u32,
    dst_base: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
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

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dst: array<vec4<f32>>;

fn activate(v: vec4<f32>) -> vec4<f32> {
    if p.act == 1u {
        return max(v, vec4<f32>(0.0));
    }
    if p.act == 2u {
        return select(v * 0.1, v, v >= vec4<f32>(0.0));
    }
    return v;
}

// One kernel row: the weights of taps kx = 0, 1, 2.
struct Taps {
    w0: vec4<f32>,
    w1: vec4<f32>,
    w2: vec4<f32>,
}

// 4 output pixels of one row.
struct Acc {
    a0: vec4<f32>,
    a1: vec4<f32>,
    a2: vec4<f32>,
    a3: vec4<f32>,
}

// Columns x0 .. x0 + 8 of input row `iy` for channel group `g`; the zero pixel outside the
// image (unsigned wrap-around makes -1 fail the bounds test too). Stride 1 uses the first 6.
struct Row {
    c0: vec4<f32>,
    c1: vec4<f32>,
    c2: vec4<f32>,
    c3: vec4<f32>,
    c4: vec4<f32>,
    c5: vec4<f32>,
    c6: vec4<f32>,
    c7: vec4<f32>,
    c8: vec4<f32>,
}

fn column(iy: u32, x: u32, g: u32) -> vec4<f32> {
    let zero = p.zero;
    let inside = x < p.in_w && iy < p.in_h;
    let i = select(zero, (iy * p.in_w + x) * p.c4 - src_base(), inside);
    if BANDED {
        return select(vec4<f32>(0.0), src[i + g], inside);
    }
    return src[i + g];
}

fn row1(iy: u32, x0: u32, g: u32) -> Row {
    let z = vec4<f32>(0.0);
    return Row(
        column(iy, x0, g), column(iy, x0 + 1u, g), column(iy, x0 + 2u, g),
        column(iy, x0 + 3u, g), column(iy, x0 + 4u, g), column(iy, x0 + 5u, g),
        z, z, z,
    );
}

fn row2(iy: u32, x0: u32, g: u32) -> Row {
    return Row(
        column(iy, x0, g), column(iy, x0 + 1u, g), column(iy, x0 + 2u, g),
        column(iy, x0 + 3u, g), column(iy, x0 + 4u, g), column(iy, x0 + 5u, g),
        column(iy, x0 + 6u, g), column(iy, x0 + 7u, g), column(iy, x0 + 8u, g),
    );
}

// Adds one input row's contribution through kernel row `t` to 4 outputs at stride 1.
fn mac1(a: Acc, r: Row, t: Taps) -> Acc {
    return Acc(
        fma(r.c0, t.w0, fma(r.c1, t.w1, fma(r.c2, t.w2, a.a0))),
        fma(r.c1, t.w0, fma(r.c2, t.w1, fma(r.c3, t.w2, a.a1))),
        fma(r.c2, t.w0, fma(r.c3, t.w1, fma(r.c4, t.w2, a.a2))),
        fma(r.c3, t.w0, fma(r.c4, t.w1, fma(r.c5, t.w2, a.a3))),
    );
}

// The same at stride 2.
fn mac2(a: Acc, r: Row, t: Taps) -> Acc {
    return Acc(
        fma(r.c0, t.w0, fma(r.c1, t.w1, fma(r.c2, t.w2, a.a0))),
        fma(r.c2, t.w0, fma(r.c3, t.w1, fma(r.c4, t.w2, a.a1))),
        fma(r.c4, t.w0, fma(r.c5, t.w1, fma(r.c6, t.w2, a.a2))),
        fma(r.c6, t.w0, fma(r.c7, t.w1, fma(r.c8, t.w2, a.a3))),
    );
}

fn store(oy: u32, ox0: u32, g: u32, live: bool, a: Acc) {
    if !live || oy >= p.band_y1 {
        return;
    }
    let o = (oy * p.out_w + ox0) * p.c4 + g - dst_base();
    dst[o] = activate(a.a0);
    if ox0 + 1u < p.out_w {
        dst[o + p.c4] = activate(a.a1);
    }
    if ox0 + 2u < p.out_w {
        dst[o + 2u * p.c4] = activate(a.a2);
    }
    if ox0 + 3u < p.out_w {
        dst[o + 3u * p.c4] = activate(a.a3);
    }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = wid.x * 64u + li;
    let live = t < p.tiles;
    let tc = min(t, p.tiles - 1u);
    let ox0 = (tc % p.tiles_x) * 4u;
    let oy0 = p.band_y0 + (tc / p.tiles_x) * p.tile_h;
    let g = wid.y;
    let wb = p.w_offset + g;
    let k0 = Taps(weights[wb], weights[wb + p.c4], weights[wb + 2u * p.c4]);
    let k1 = Taps(weights[wb + 3u * p.c4], weights[wb + 4u * p.c4], weights[wb + 5u * p.c4]);
    let k2 = Taps(weights[wb + 6u * p.c4], weights[wb + 7u * p.c4], weights[wb + 8u * p.c4]);
    let bias = weights[p.b_offset + g];
    let b = Acc(bias, bias, bias, bias);
    let x0 = ox0 * p.stride - 1u;
    let y0 = oy0 * p.stride - 1u;
    if p.stride == 1u {
        // Down the tile's input rows y0 .. y0 + tile_h + 1: input row i is kernel row 2 of
        // output row i - 2 (which it completes), row 1 of output i - 1 and row 0 of output i,
        // so only three output rows are open at a time.
        var a2 = b;
        var a1 = b;
        for (var i = 0u; i < p.tile_h + 2u; i++) {
            let r = row1(y0 + i, x0, g);
            let finished = mac1(a2, r, k2);
            if i >= 2u {
                store(oy0 + i - 2u, ox0, g, live, finished);
            }
            a2 = mac1(a1, r, k1);
            a1 = mac1(b, r, k0);
        }
    } else {
        // Output row o reads input rows 2o, 2o + 1, 2o + 2; row 2o + 2 is the next output's
        // row 2o', so it is carried over instead of loaded again.
        var top = row2(y0, x0, g);
        for (var o = 0u; o < p.tile_h; o++) {
            let mid = row2(y0 + 2u * o + 1u, x0, g);
            let bot = row2(y0 + 2u * o + 2u, x0, g);
            let a = mac2(mac2(mac2(b, top, k0), mid, k1), bot, k2);
            store(oy0 + o, ox0, g, live, a);
            top = bot;
        }
    }
}

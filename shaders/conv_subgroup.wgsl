// Dense 2D convolution for adapters with subgroups: the same job, contract and weight layout
// as conv.wgsl (k x k, stride s, zero padding k/2, channels-last f32, folded bias, fused
// activation, output into a channel slice), with the weights handed to the lanes by
// subgroupBroadcast.
//
// Why: every lane of a workgroup needs the same weights, but a storage load whose address is
// not a compile-time constant is a per-lane gather on lavapipe (and a broadcast through the
// cache on GPUs), even when the address is the same for all lanes. Here each of 8 lanes loads
// a different vec4 of the block of weights the next 4 input channels need, and the block is
// passed around with subgroupBroadcast from constant lanes: one load per lane per block
// instead of one per vec4. Any subgroup of at least 8 lanes works (lanes past 8 repeat the
// first 8's loads); the host only picks this shader where the adapter's minimum subgroup
// size is >= 8.
//
// Tiles are flattened over the whole output map (tile t = row t / tiles_x, column
// t % tiles_x), so narrow maps fill every lane; lanes past the last tile compute a clamped
// tile and store nothing. Control flow is the same for every lane of a workgroup (bounds come
// from the uniform parameters, edges are handled by reading the zero pixel), as the
// broadcasts require.
//
// Banded runs (a tensor larger than one storage binding; see `ops::band`): the dispatch covers
// output rows oy0 .. oy0 + rows, and `src` / `dst` are windows of the tensors' buffers that
// start at vec4 `src_base` / float `dst_base` of the whole tensor. A window holds no zero
// pixel, so pipelines built with BANDED = true read index 0 for taps outside the image and
// select zero instead (one select per load: only those pipelines pay it).

// requires: subgroups (Features::SUBGROUP; naga takes the builtins without an `enable`).

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
    // Groups of output channels (8 or 16 per group).
    groups: u32,
    // Vec4s per input channel in the weights: output channels padded to 16, / 4.
    w_row: u32,
    // Tiles of 4 pixels per output row, and in the whole map.
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

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

fn activate(v: vec4<f32>) -> vec4<f32> {
    if p.act == 1u {
        return max(v, vec4<f32>(0.0));
    }
    if p.act == 2u {
        return select(v * 0.1, v, v >= vec4<f32>(0.0));
    }
    return v;
}

// Writes 4 channels starting at `c0` of pixel (ox, oy), if that pixel is in the map.
fn store(live: bool, ox: u32, oy: u32, c0: u32, v: vec4<f32>) {
    if !live || ox >= p.out_w {
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

// Where one invocation's tile is: its first output pixel, and whether it exists.
struct Tile {
    ox0: u32,
    oy: u32,
    live: bool,
}

fn tile_of(wg: u32, li: u32) -> Tile {
    let t = wg * 64u + li;
    let tc = min(t, p.tiles - 1u);
    return Tile((tc % p.tiles_x) * 4u, p.oy0 + tc / p.tiles_x, t < p.tiles);
}

// Offsets (in vec4s) of the 4 input pixels a tap reads for a tile, the zero pixel where a
// tap falls outside the image. Unsigned wrap-around turns "left of / above the edge" into
// "past the right / bottom edge".
fn tap_pixels(t: Tile, ky: u32, kx: u32) -> vec4<u32> {
    let zero = p.zero;
    let iy = t.oy * p.stride + ky - p.pad;
    let ix0 = t.ox0 * p.stride + kx - p.pad;
    let ix = vec4<u32>(ix0, ix0 + p.stride, ix0 + 2u * p.stride, ix0 + 3u * p.stride);
    let inside = (ix < vec4<u32>(p.in_w)) & vec4<bool>(iy < p.in_h);
    return select(vec4<u32>(zero), (vec4<u32>(iy * p.in_w) + ix) * p.in_c4 - src_base(), inside);
}

// Which of a tap's 4 input pixels are inside the image (banded pipelines only).
fn tap_inside(t: Tile, ky: u32, kx: u32) -> vec4<bool> {
    let iy = t.oy * p.stride + ky - p.pad;
    let ix0 = t.ox0 * p.stride + kx - p.pad;
    let ix = vec4<u32>(ix0, ix0 + p.stride, ix0 + 2u * p.stride, ix0 + 3u * p.stride);
    return (ix < vec4<u32>(p.in_w)) & vec4<bool>(iy < p.in_h);
}

// One input vec4; zeros for a tap outside the image in banded pipelines (elsewhere `i` is
// then the zero pixel already).
fn ld(i: u32, inside: bool) -> vec4<f32> {
    if BANDED {
        return select(vec4<f32>(0.0), src[i], inside);
    }
    return src[i];
}

// 16 output channels of one pixel.
struct Acc16 {
    q0: vec4<f32>,
    q1: vec4<f32>,
    q2: vec4<f32>,
    q3: vec4<f32>,
}

// The weights of 4 input channels (rows r0..r3) x 16 output channels (quarters 0..3).
struct Block16 {
    r0q0: vec4<f32>, r0q1: vec4<f32>, r0q2: vec4<f32>, r0q3: vec4<f32>,
    r1q0: vec4<f32>, r1q1: vec4<f32>, r1q2: vec4<f32>, r1q3: vec4<f32>,
    r2q0: vec4<f32>, r2q1: vec4<f32>, r2q2: vec4<f32>, r2q3: vec4<f32>,
    r3q0: vec4<f32>, r3q1: vec4<f32>, r3q2: vec4<f32>, r3q3: vec4<f32>,
}

// Lane l of the first 8 loaded row (l / 4) quarter (l % 4) into `lo` and row 2 + l / 4
// into `hi`.
fn block16(lo: vec4<f32>, hi: vec4<f32>) -> Block16 {
    return Block16(
        subgroupBroadcast(lo, 0u), subgroupBroadcast(lo, 1u),
        subgroupBroadcast(lo, 2u), subgroupBroadcast(lo, 3u),
        subgroupBroadcast(lo, 4u), subgroupBroadcast(lo, 5u),
        subgroupBroadcast(lo, 6u), subgroupBroadcast(lo, 7u),
        subgroupBroadcast(hi, 0u), subgroupBroadcast(hi, 1u),
        subgroupBroadcast(hi, 2u), subgroupBroadcast(hi, 3u),
        subgroupBroadcast(hi, 4u), subgroupBroadcast(hi, 5u),
        subgroupBroadcast(hi, 6u), subgroupBroadcast(hi, 7u),
    );
}

fn mac16(a: Acc16, x: vec4<f32>, b: Block16) -> Acc16 {
    var r = a;
    r.q0 = fma(vec4<f32>(x.x), b.r0q0, r.q0);
    r.q1 = fma(vec4<f32>(x.x), b.r0q1, r.q1);
    r.q2 = fma(vec4<f32>(x.x), b.r0q2, r.q2);
    r.q3 = fma(vec4<f32>(x.x), b.r0q3, r.q3);
    r.q0 = fma(vec4<f32>(x.y), b.r1q0, r.q0);
    r.q1 = fma(vec4<f32>(x.y), b.r1q1, r.q1);
    r.q2 = fma(vec4<f32>(x.y), b.r1q2, r.q2);
    r.q3 = fma(vec4<f32>(x.y), b.r1q3, r.q3);
    r.q0 = fma(vec4<f32>(x.z), b.r2q0, r.q0);
    r.q1 = fma(vec4<f32>(x.z), b.r2q1, r.q1);
    r.q2 = fma(vec4<f32>(x.z), b.r2q2, r.q2);
    r.q3 = fma(vec4<f32>(x.z), b.r2q3, r.q3);
    r.q0 = fma(vec4<f32>(x.w), b.r3q0, r.q0);
    r.q1 = fma(vec4<f32>(x.w), b.r3q1, r.q1);
    r.q2 = fma(vec4<f32>(x.w), b.r3q2, r.q2);
    r.q3 = fma(vec4<f32>(x.w), b.r3q3, r.q3);
    return r;
}

fn store16(t: Tile, px: u32, c: u32, a: Acc16) {
    store(t.live, t.ox0 + px, t.oy, c, a.q0);
    store(t.live, t.ox0 + px, t.oy, c + 4u, a.q1);
    store(t.live, t.ox0 + px, t.oy, c + 8u, a.q2);
    store(t.live, t.ox0 + px, t.oy, c + 12u, a.q3);
}

// The 4 pixels x 16 channels of channel group `g` of a tile.
fn store4x16(t: Tile, g: u32, a0: Acc16, a1: Acc16, a2: Acc16, a3: Acc16) {
    let c = g * 16u;
    store16(t, 0u, c, a0);
    store16(t, 1u, c, a1);
    store16(t, 2u, c, a2);
    store16(t, 3u, c, a3);
}

// The bias of channel group `g` (16 channels).
fn bias16(g: u32) -> Acc16 {
    let bo = p.b_offset + g * 4u;
    return Acc16(weights[bo], weights[bo + 1u], weights[bo + 2u], weights[bo + 3u]);
}

// 4 pixels x 16 output channels per invocation; workgroup_id.y is the channel group.
@compute @workgroup_size(64)
fn main_4x16(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let t = tile_of(wid.x, li);
    let g = wid.y;
    let bias = bias16(g);
    var a0 = bias;
    var a1 = bias;
    var a2 = bias;
    var a3 = bias;
    let l = lane & 7u;
    let mine = (l >> 2u) * p.w_row + (l & 3u);
    let tap_stride = p.in_c4 * 4u * p.w_row;
    for (var ky = 0u; ky < p.ksize; ky++) {
        for (var kx = 0u; kx < p.ksize; kx++) {
            let i = tap_pixels(t, ky, kx);
            let m = tap_inside(t, ky, kx);
            var w = p.w_offset + (ky * p.ksize + kx) * tap_stride + g * 4u + mine;
            for (var c = 0u; c < p.in_c4; c++) {
                let b = block16(weights[w], weights[w + 2u * p.w_row]);
                a0 = mac16(a0, ld(i.x + c, m.x), b);
                a1 = mac16(a1, ld(i.y + c, m.y), b);
                a2 = mac16(a2, ld(i.z + c, m.z), b);
                a3 = mac16(a3, ld(i.w + c, m.w), b);
                w += 4u * p.w_row;
            }
        }
    }
    store4x16(t, g, a0, a1, a2, a3);
}

// 3x3 stride 1, 4 pixels x 16 output channels: the 6 input columns a tile's 3 taps of a kernel
// row read are loaded once and shared by the taps (4 + 2 loads per tap row and input vec4
// instead of 3 x 4), for the 3x3 layers that dominate the FPN and SSH.
@compute @workgroup_size(64)
fn main_3x3s1_4x16(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let t = tile_of(wid.x, li);
    let g = wid.y;
    let bias = bias16(g);
    var a0 = bias;
    var a1 = bias;
    var a2 = bias;
    var a3 = bias;
    let l = lane & 7u;
    let mine = (l >> 2u) * p.w_row + (l & 3u);
    let tap_stride = p.in_c4 * 4u * p.w_row;
    let hi = 2u * p.w_row;
    for (var ky = 0u; ky < 3u; ky++) {
        // Columns ox0 - 1 .. ox0 + 4: taps kx = 0 and kx = 2 of the 4 pixels.
        let i = tap_pixels(t, ky, 0u);
        let j = tap_pixels(t, ky, 2u);
        let mi = tap_inside(t, ky, 0u);
        let mj = tap_inside(t, ky, 2u);
        var w = p.w_offset + ky * 3u * tap_stride + g * 4u + mine;
        for (var c = 0u; c < p.in_c4; c++) {
            let x0 = ld(i.x + c, mi.x);
            let x1 = ld(i.y + c, mi.y);
            let x2 = ld(i.z + c, mi.z);
            let x3 = ld(i.w + c, mi.w);
            let x4 = ld(j.z + c, mj.z);
            let x5 = ld(j.w + c, mj.w);
            let b0 = block16(weights[w], weights[w + hi]);
            a0 = mac16(a0, x0, b0);
            a1 = mac16(a1, x1, b0);
            a2 = mac16(a2, x2, b0);
            a3 = mac16(a3, x3, b0);
            let w1 = w + tap_stride;
            let b1 = block16(weights[w1], weights[w1 + hi]);
            a0 = mac16(a0, x1, b1);
            a1 = mac16(a1, x2, b1);
            a2 = mac16(a2, x3, b1);
            a3 = mac16(a3, x4, b1);
            let w2 = w1 + tap_stride;
            let b2 = block16(weights[w2], weights[w2 + hi]);
            a0 = mac16(a0, x2, b2);
            a1 = mac16(a1, x3, b2);
            a2 = mac16(a2, x4, b2);
            a3 = mac16(a3, x5, b2);
            w += 4u * p.w_row;
        }
    }
    store4x16(t, g, a0, a1, a2, a3);
}

// Stores 16 channels of flattened pixel `px` (1x1 kernels).
fn store_px16(px: u32, c: u32, a: Acc16) {
    if px >= (p.oy0 + p.rows) * p.out_w {
        return;
    }
    let base = px * p.out_c_stride + p.out_c_offset + c - dst_base();
    let q = array<vec4<f32>, 4>(activate(a.q0), activate(a.q1), activate(a.q2), activate(a.q3));
    for (var k = 0u; k < 16u; k++) {
        if c + k < p.out_c {
            dst[base + k] = q[k / 4u][k % 4u];
        }
    }
}

// 1x1 stride 1, 8 pixels x 16 output channels: a matrix product over the flattened pixels
// (no rows, no edges), each weight block feeding twice the pixels of the 4-pixel tile.
@compute @workgroup_size(64)
fn main_1x1_8x16(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let px = p.oy0 * p.out_w + (wid.x * 64u + li) * 8u;
    let g = wid.y;
    let bias = bias16(g);
    var a0 = bias;
    var a1 = bias;
    var a2 = bias;
    var a3 = bias;
    var a4 = bias;
    var a5 = bias;
    var a6 = bias;
    var a7 = bias;
    // Pixels past the map (or the band) read its last pixel and store nothing.
    let last = (p.oy0 + p.rows) * p.out_w - 1u;
    let base = vec4<u32>(src_base());
    let lo = min(vec4<u32>(px) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last)) * p.in_c4 - base;
    let hi = min(vec4<u32>(px) + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(last)) * p.in_c4 - base;
    let l = lane & 7u;
    var w = p.w_offset + g * 4u + (l >> 2u) * p.w_row + (l & 3u);
    for (var c = 0u; c < p.in_c4; c++) {
        let b = block16(weights[w], weights[w + 2u * p.w_row]);
        a0 = mac16(a0, src[lo.x + c], b);
        a1 = mac16(a1, src[lo.y + c], b);
        a2 = mac16(a2, src[lo.z + c], b);
        a3 = mac16(a3, src[lo.w + c], b);
        a4 = mac16(a4, src[hi.x + c], b);
        a5 = mac16(a5, src[hi.y + c], b);
        a6 = mac16(a6, src[hi.z + c], b);
        a7 = mac16(a7, src[hi.w + c], b);
        w += 4u * p.w_row;
    }
    let c = g * 16u;
    store_px16(px, c, a0);
    store_px16(px + 1u, c, a1);
    store_px16(px + 2u, c, a2);
    store_px16(px + 3u, c, a3);
    store_px16(px + 4u, c, a4);
    store_px16(px + 5u, c, a5);
    store_px16(px + 6u, c, a6);
    store_px16(px + 7u, c, a7);
}

// 8 output channels of one pixel.
struct Acc8 {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

// The weights of 4 input channels (rows r0..r3) x 8 output channels (halves lo, hi).
struct Block8 {
    r0lo: vec4<f32>, r0hi: vec4<f32>,
    r1lo: vec4<f32>, r1hi: vec4<f32>,
    r2lo: vec4<f32>, r2hi: vec4<f32>,
    r3lo: vec4<f32>, r3hi: vec4<f32>,
}

// Lane l loaded row l / 2, half l % 2.
fn block8(v: vec4<f32>) -> Block8 {
    return Block8(
        subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u),
        subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
        subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u),
        subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u),
    );
}

fn mac8(a: Acc8, x: vec4<f32>, b: Block8) -> Acc8 {
    var r = a;
    r.lo = fma(vec4<f32>(x.x), b.r0lo, r.lo);
    r.hi = fma(vec4<f32>(x.x), b.r0hi, r.hi);
    r.lo = fma(vec4<f32>(x.y), b.r1lo, r.lo);
    r.hi = fma(vec4<f32>(x.y), b.r1hi, r.hi);
    r.lo = fma(vec4<f32>(x.z), b.r2lo, r.lo);
    r.hi = fma(vec4<f32>(x.z), b.r2hi, r.hi);
    r.lo = fma(vec4<f32>(x.w), b.r3lo, r.lo);
    r.hi = fma(vec4<f32>(x.w), b.r3hi, r.hi);
    return r;
}

fn store8(t: Tile, px: u32, c: u32, a: Acc8) {
    store(t.live, t.ox0 + px, t.oy, c, a.lo);
    store(t.live, t.ox0 + px, t.oy, c + 4u, a.hi);
}

// 4 pixels x 8 output channels per invocation, for layers of at most 8 output channels.
@compute @workgroup_size(64)
fn main_4x8(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let t = tile_of(wid.x, li);
    let g = wid.y;
    let bo = p.b_offset + g * 2u;
    let bias = Acc8(weights[bo], weights[bo + 1u]);
    var a0 = bias;
    var a1 = bias;
    var a2 = bias;
    var a3 = bias;
    let l = lane & 7u;
    let mine = (l >> 1u) * p.w_row + (l & 1u);
    let tap_stride = p.in_c4 * 4u * p.w_row;
    for (var ky = 0u; ky < p.ksize; ky++) {
        for (var kx = 0u; kx < p.ksize; kx++) {
            let i = tap_pixels(t, ky, kx);
            let m = tap_inside(t, ky, kx);
            var w = p.w_offset + (ky * p.ksize + kx) * tap_stride + g * 2u + mine;
            for (var c = 0u; c < p.in_c4; c++) {
                let b = block8(weights[w]);
                a0 = mac8(a0, ld(i.x + c, m.x), b);
                a1 = mac8(a1, ld(i.y + c, m.y), b);
                a2 = mac8(a2, ld(i.z + c, m.z), b);
                a3 = mac8(a3, ld(i.w + c, m.w), b);
                w += 4u * p.w_row;
            }
        }
    }
    let c = g * 8u;
    store8(t, 0u, c, a0);
    store8(t, 1u, c, a1);
    store8(t, 2u, c, a2);
    store8(t, 3u, c, a3);
}

// Post-processing, stage 1: one invocation per anchor turns the head's raw row into a scored,
// decoded face and, when the score passes the threshold, appends it to the candidate list.
//
// raw row (16 f32): [logit background, logit face, loc dx dy dw dh, landmark deltas x0 y0 .. x4 y4]
// in the reference anchor order: level stride 8, 16, 32; row y, column x, then the two anchor
// sizes of the level.
//
// candidate (16 words): [score, prior index (u32), x1 y1 x2 y2, lm0x lm0y .. lm4x lm4y], floats
// stored as their bits. Buffers hold u32 so that the prior index (a denormal when read as f32)
// never passes through float hardware that might flush it.
//
// The append is an atomicAdd on state[0], so the order of the list is whatever order the
// invocations reach it in; sort.wgsl makes the result deterministic again.

struct Params {
    // Anchors in `raw` (= capacity of `candidates`).
    n: u32,
    net_w: u32,
    net_h: u32,
    _pad0: u32,
    // (w, h) of the three feature maps, strides 8, 16, 32.
    level0: vec2<u32>,
    level1: vec2<u32>,
    level2: vec2<u32>,
    _pad1: vec2<u32>,
}

// Rewritten by the host before every run (queue.write_buffer); nms.wgsl binds the same buffer.
// mode 0: Pytorch_Retinaface's priors; 1: retina-face's (insightface) anchors (see below).
struct Run {
    threshold: f32,
    nms_threshold: f32,
    // Output pixels per network-input pixel (mode 0 multiplies).
    scale: vec2<f32>,
    // The resize factor (mode 1 divides, as the package does).
    factor: vec2<f32>,
    mode: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> run: Run;
@group(0) @binding(2) var<storage, read> raw: array<f32>;
@group(0) @binding(3) var<storage, read_write> candidates: array<u32>;
// state[0]: number of candidates; the host clears it before every run.
@group(0) @binding(4) var<storage, read_write> state: array<atomic<u32>>;

const VAR0: f32 = 0.1;
const VAR1: f32 = 0.2;

// Takes the next slot of the candidate list and writes the score, the anchor and the box;
// returns the slot's first word (the landmarks go at + 6).
fn append(score: f32, a: u32, b1: vec2<f32>, b2: vec2<f32>) -> u32 {
    let o = atomicAdd(&state[0], 1u) * 16u;
    candidates[o] = bitcast<u32>(score);
    candidates[o + 1u] = a;
    candidates[o + 2u] = bitcast<u32>(b1.x);
    candidates[o + 3u] = bitcast<u32>(b1.y);
    candidates[o + 4u] = bitcast<u32>(b2.x);
    candidates[o + 5u] = bitcast<u32>(b2.y);
    return o;
}

// Anchors are a flat list: neighbouring invocations read neighbouring rows.
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    // Very large inputs spill into y when x would pass the 65535-workgroup limit.
    let a = gid.y * nwg.x * 64u + gid.x;
    if a >= p.n {
        return;
    }
    let base = a * 16u;
    // Stable two-way softmax: exp(c1 - m) / (exp(c0 - m) + exp(c1 - m)).
    let c0 = raw[base];
    let c1 = raw[base + 1u];
    let m = max(c0, c1);
    let e0 = exp(c0 - m);
    let e1 = exp(c1 - m);
    let score = e1 / (e0 + e1);
    // Strict in Pytorch_Retinaface, >= in retina-face; a NaN score fails either.
    let kept = select(score > run.threshold, score >= run.threshold, run.mode == 1u);
    if !kept {
        return;
    }

    // Which level, cell and anchor size this row belongs to.
    let n0 = 2u * p.level0.x * p.level0.y;
    let n1 = 2u * p.level1.x * p.level1.y;
    var r = a;
    var fw = p.level0.x;
    var stride = 8.0;
    var min_size = 16.0;
    if r >= n0 + n1 {
        r -= n0 + n1;
        fw = p.level2.x;
        stride = 32.0;
        min_size = 256.0;
    } else if r >= n0 {
        r -= n0;
        fw = p.level1.x;
        stride = 16.0;
        min_size = 64.0;
    }
    let cell = r / 2u;
    let x = cell % fw;
    let y = cell / fw;
    if run.mode == 1u {
        // insightface anchors: 2 * min_size then min_size (32/16, 128/64, 512/256), square,
        // corner form with the +1 size convention, so every centre is 7.5 px into its cell.
        let size = min_size * f32(2u - (r & 1u));
        let ca = vec2<f32>(f32(x), f32(y)) * stride + 7.5;
        let c = vec2<f32>(raw[base + 2u], raw[base + 3u]) * size + ca;
        let s = exp(vec2<f32>(raw[base + 4u], raw[base + 5u])) * size;
        let half = 0.5 * (s - 1.0);
        let limit = vec2<f32>(f32(p.net_w), f32(p.net_h)) - 1.0;
        let b1 = clamp(c - half, vec2<f32>(0.0), limit) / run.factor;
        let b2 = clamp(c + half, vec2<f32>(0.0), limit) / run.factor;
        let o = append(score, a, b1, b2);
        // Landmarks: no variance, not clipped.
        for (var i = 0u; i < 5u; i++) {
            let d = vec2<f32>(raw[base + 6u + 2u * i], raw[base + 7u + 2u * i]);
            let l = (d * size + ca) / run.factor;
            candidates[o + 6u + 2u * i] = bitcast<u32>(l.x);
            candidates[o + 7u + 2u * i] = bitcast<u32>(l.y);
        }
        return;
    }
    // The second anchor of a cell is twice the first: 16/32, 64/128, 256/512.
    let size = min_size * f32(1u + (r & 1u));
    let net = vec2<f32>(f32(p.net_w), f32(p.net_h));
    // Normalised prior, as PriorBox makes it (no clipping).
    let pc = (vec2<f32>(f32(x), f32(y)) + 0.5) * stride / net;
    let pwh = vec2<f32>(size) / net;

    let loc_c = vec2<f32>(raw[base + 2u], raw[base + 3u]);
    let loc_s = vec2<f32>(raw[base + 4u], raw[base + 5u]);
    let c = pc + loc_c * VAR0 * pwh;
    let s = pwh * exp(loc_s * VAR1);
    // The reference's order of operations: x1 = c - s/2, x2 = x1 + s.
    let p1 = c - s / 2.0;
    let p2 = p1 + s;
    // Network-input pixels, then the caller's scale (1 / resize factor) to original pixels.
    let b1 = p1 * net * run.scale;
    let b2 = p2 * net * run.scale;

    let o = append(score, a, b1, b2);
    for (var i = 0u; i < 5u; i++) {
        let d = vec2<f32>(raw[base + 6u + 2u * i], raw[base + 7u + 2u * i]);
        let l = (pc + d * VAR0 * pwh) * net * run.scale;
        candidates[o + 6u + 2u * i] = bitcast<u32>(l.x);
        candidates[o + 7u + 2u * i] = bitcast<u32>(l.y);
    }
}

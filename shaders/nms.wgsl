// Post-processing, stage 3: greedy non-maximum suppression over the sorted candidates, exactly
// as py_cpu_nms: areas (x2 - x1 + 1) * (y2 - y1 + 1), intersection sides max(0, min - max + 1),
// IoU = inter / (area_i + area_j - inter) in f32, box j removed when IoU with a kept box i is
// > nms_threshold (strict).
//
// Two entry points sharing one bind group layout:
// - `mask`: bit c of word w of row i is set when j = 32 w + c > i and IoU(i, j) > threshold.
//   All pairs at once, dispatched indirectly with the (row groups, words) that sort.wgsl wrote,
//   so 3 candidates cost one tiny workgroup and no candidates cost nothing.
// - `scan`: one workgroup walks the sorted list 32 rows (one mask word) at a time. Invocation
//   0 resolves the 32 rows of the block sequentially from the block's own word (a row is kept
//   unless an earlier kept row of the block or of an earlier block removed it), then all
//   invocations OR the kept rows' mask words into the later words of `removed` in parallel.
//   A few barriers per 32 candidates rather than per candidate, and at most ~10000 loop
//   iterations for invocation 0 (llvmpipe silently stops the loops of an invocation after
//   65535 iterations in total; see sort.wgsl).
// Then the kept faces are copied out: `faces` = [kept, candidates, top_k, 0] as u32, then
// kept * 16 words in score order, the same layout as the candidates.

// Rewritten by the host before every run; decode.wgsl binds the same buffer. mode 1
// (retina-face) suppresses at IoU >= nms_threshold instead of >.
struct Run {
    threshold: f32,
    nms_threshold: f32,
    scale: vec2<f32>,
    factor: vec2<f32>,
    mode: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> run: Run;
// top_k candidates of 16 words, best first (from sort.wgsl).
@group(0) @binding(1) var<storage, read> sorted: array<u32>;
// state[0]: candidates, state[1]: top_k.
@group(0) @binding(2) var<storage, read> state: array<u32>;
// top_k rows of ceil(top_k / 32) words.
@group(0) @binding(3) var<storage, read_write> mask_bits: array<u32>;
@group(0) @binding(4) var<storage, read_write> faces: array<u32>;

// Must match sort.wgsl.
const MAX_SORT: u32 = 5000u;
const MAX_WORDS: u32 = 157u; // ceil(MAX_SORT / 32)
// The reference's keep_top_k after NMS.
const MAX_KEEP: u32 = 750u;
const MASK_ROWS: u32 = 64u;
const WG: u32 = 256u;

fn load_box(i: u32) -> vec4<f32> {
    let o = i * 16u + 2u;
    return bitcast<vec4<f32>>(vec4<u32>(sorted[o], sorted[o + 1u], sorted[o + 2u], sorted[o + 3u]));
}

fn area(b: vec4<f32>) -> f32 {
    return (b.z - b.x + 1.0) * (b.w - b.y + 1.0);
}

// The 32 column boxes of this workgroup's word, shared by its MASK_ROWS rows.
var<workgroup> cols: array<vec4<f32>, 32>;

@compute @workgroup_size(64, 1, 1)
fn mask(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let top_k = min(state[1], MAX_SORT);
    let words = (top_k + 31u) / 32u;
    let w = wg.y;
    if lid < 32u && w * 32u + lid < top_k {
        cols[lid] = load_box(w * 32u + lid);
    }
    workgroupBarrier();
    let i = wg.x * MASK_ROWS + lid;
    // `scan` reads row i only from its own word (i / 32) on.
    if i >= top_k || w < i / 32u {
        return;
    }
    let bi = load_box(i);
    let ai = area(bi);
    var bits = 0u;
    for (var c = 0u; c < 32u; c++) {
        let j = w * 32u + c;
        if j > i && j < top_k {
            let bj = cols[c];
            let iw = max(0.0, min(bi.z, bj.z) - max(bi.x, bj.x) + 1.0);
            let ih = max(0.0, min(bi.w, bj.w) - max(bi.y, bj.y) + 1.0);
            let inter = iw * ih;
            let iou = inter / (ai + area(bj) - inter);
            if select(iou > run.nms_threshold, iou >= run.nms_threshold, run.mode == 1u) {
                bits |= 1u << c;
            }
        }
    }
    mask_bits[i * words + w] = bits;
}

var<workgroup> removed: array<u32, MAX_WORDS>;
var<workgroup> kept: array<u32, MAX_KEEP>;
var<workgroup> n_kept: u32;
var<workgroup> broadcast: u32;

@compute @workgroup_size(256, 1, 1)
fn scan(@builtin(local_invocation_index) lid: u32) {
    for (var w = lid; w < MAX_WORDS; w += WG) {
        removed[w] = 0u;
    }
    if lid == 0u {
        n_kept = 0u;
        broadcast = min(state[1], MAX_SORT);
    }
    let top_k = workgroupUniformLoad(&broadcast);
    let words = (top_k + 31u) / 32u;
    for (var b = 0u; b < words; b++) {
        if lid == 0u {
            var cur = removed[b];
            var bits = 0u;
            var nk = n_kept;
            let end = min(32u, top_k - b * 32u);
            for (var r = 0u; r < end && nk < MAX_KEEP; r++) {
                if ((cur >> r) & 1u) == 0u {
                    let i = b * 32u + r;
                    bits |= 1u << r;
                    kept[nk] = i;
                    nk += 1u;
                    cur |= mask_bits[i * words + b];
                }
            }
            n_kept = nk;
            broadcast = bits;
        }
        let bits = workgroupUniformLoad(&broadcast);
        if workgroupUniformLoad(&n_kept) >= MAX_KEEP {
            break;
        }
        for (var w = b + 1u + lid; w < words; w += WG) {
            var acc = removed[w];
            var m = bits;
            while m != 0u {
                let r = firstTrailingBit(m);
                acc |= mask_bits[(b * 32u + r) * words + w];
                m &= m - 1u;
            }
            removed[w] = acc;
        }
        // Invocation 0 reads removed[b + 1] next.
        workgroupBarrier();
    }

    let nk = workgroupUniformLoad(&n_kept);
    if lid == 0u {
        faces[0] = nk;
        faces[1] = state[0];
        faces[2] = top_k;
        faces[3] = 0u;
    }
    for (var e = lid; e < nk * 16u; e += WG) {
        faces[4u + e] = sorted[kept[e / 16u] * 16u + (e & 15u)];
    }
}

// Post-processing, stage 2: order the candidates by score descending, ties by prior index
// ascending, keep the best MAX_SORT, gather them contiguously for NMS, and write the indirect
// dispatch arguments of the NMS mask round.
//
// The number of candidates is only known here, on the GPU, so the whole stage runs in one
// workgroup that loops as long as it needs, with no CPU round trip.
//
// 1. Selection (only when count > MAX_SORT): find the MAX_SORT-th best candidate exactly, by a
//    radix select on the 64-bit key (score bits, !prior index) — larger is better, and keys are
//    unique because prior indices are. Each round histograms one 11-bit digit of the keys that
//    share the prefix found so far, then picks the bucket where the running count from the top
//    reaches MAX_SORT. It stops as soon as a whole bucket fits, after at most 6 passes of
//    count / 256 loads per invocation. Exact, so the result never depends on how many
//    candidates tie with the last kept one.
// 2. The selected keys (at most MAX_SORT) are bitonic-sorted, padded to a power of two. Between
//    steps every invocation must see the others' writes to `keys`, which storageBarrier gives
//    inside one workgroup (there is no barrier across workgroups). 3 candidates: 3 steps over
//    4 keys; 5000: 91 steps over 8192 keys.
//
// Why not bitonic-sort everything: besides n log2(n)^2 cost (1.2 s for all 518704 anchors of a
// 4352x2903 input at threshold 0 on lavapipe), llvmpipe (lavapipe and GL) silently ends every
// loop of a shader invocation once that invocation has run 65535 loop iterations in total
// (LP_MAX_TGSI_LOOP_ITERATIONS, shared by all loops), which left a 262144-key sort unfinished.
// Keep the per-invocation loop total well below that: here about 7 * count / 256 + 2000.
//
// Scores are non-negative floats, so their bit patterns order like the values; the order is
// total, so the result does not depend on the order in which decode.wgsl appended the
// candidates, nor on the order of the atomic appends below.

struct Params {
    // Capacity of `candidates` (anchors of the plan).
    capacity: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

struct Key {
    score: u32,
    prior: u32,
    slot: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> candidates: array<u32>;
@group(0) @binding(2) var<storage, read_write> keys: array<Key>;
@group(0) @binding(3) var<storage, read_write> sorted: array<u32>;
// state[0]: candidate count (from decode), state[1]: top_k (written here).
@group(0) @binding(4) var<storage, read_write> state: array<u32>;
// Indirect arguments of the NMS mask round: (row groups of MASK_ROWS, words of 32 columns, 1).
@group(0) @binding(5) var<storage, read_write> args: array<u32>;

const WG: u32 = 256u;
// Candidates kept before NMS (the reference's top_k); nms.wgsl has the same constant.
const MAX_SORT: u32 = 5000u;
// Rows per workgroup of nms.wgsl's mask round.
const MASK_ROWS: u32 = 64u;

// Buckets per radix-select round (11-bit digits), and buckets summed by each invocation.
const BINS: u32 = 2048u;
const BINS_PER_INVOCATION: u32 = 8u;

var<workgroup> hist: array<atomic<u32>, BINS>;
var<workgroup> partial: array<u32, WG>;
var<workgroup> selected: atomic<u32>;
var<workgroup> shared_a: u32;
var<workgroup> shared_b: u32;
var<workgroup> shared_c: u32;

// True when a must come before b.
fn before(a: Key, b: Key) -> bool {
    return a.score > b.score || (a.score == b.score && a.prior < b.prior);
}

// Digits of the selection key (hi = score bits, lo = !prior), most significant first: bits
// 31..21, 20..10 and 9..0 of hi, then the same of lo.
fn digit_mask(round: u32) -> u32 {
    switch round % 3u {
        case 0u: {
            return 0xffe00000u;
        }
        case 1u: {
            return 0x001ffc00u;
        }
        default: {
            return 0x000003ffu;
        }
    }
}

fn digit_shift(round: u32) -> u32 {
    switch round % 3u {
        case 0u: {
            return 21u;
        }
        case 1u: {
            return 10u;
        }
        default: {
            return 0u;
        }
    }
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32) {
    if lid == 0u {
        shared_a = min(state[0], p.capacity);
        atomicStore(&selected, 0u);
    }
    // Uniform across the workgroup, so the branches and loops below may contain barriers.
    let count = workgroupUniformLoad(&shared_a);

    // The selection key prefix found so far (want under mask, for hi and lo), and how many
    // candidates are above it. Keys >= (want_hi, want_lo) are kept.
    var want = vec2<u32>(0u);
    var mask = vec2<u32>(0u);
    if count > MAX_SORT {
        var above = 0u;
        for (var round = 0u; round < 6u; round++) {
            for (var b = lid; b < BINS; b += WG) {
                atomicStore(&hist[b], 0u);
            }
            workgroupBarrier();
            let word = select(1u, 0u, round < 3u);
            let shift = digit_shift(round);
            let dmask = digit_mask(round);
            for (var i = lid; i < count; i += WG) {
                let key = vec2<u32>(candidates[i * 16u], ~candidates[i * 16u + 1u]);
                if all((key & mask) == want) {
                    atomicAdd(&hist[(key[word] & dmask) >> shift], 1u);
                }
            }
            workgroupBarrier();
            var sum = 0u;
            for (var q = 0u; q < BINS_PER_INVOCATION; q++) {
                sum += atomicLoad(&hist[lid * BINS_PER_INVOCATION + q]);
            }
            partial[lid] = sum;
            workgroupBarrier();
            if lid == 0u {
                // From the top: the first bucket at which the count reaches MAX_SORT.
                var acc = above;
                var t = WG - 1u;
                while acc + partial[t] < MAX_SORT && t > 0u {
                    acc += partial[t];
                    t -= 1u;
                }
                let lowest = t * BINS_PER_INVOCATION;
                var b = lowest + BINS_PER_INVOCATION - 1u;
                while acc + atomicLoad(&hist[b]) < MAX_SORT && b > lowest {
                    acc += atomicLoad(&hist[b]);
                    b -= 1u;
                }
                shared_a = b;
                shared_b = acc;
                shared_c = atomicLoad(&hist[b]);
            }
            let bucket = workgroupUniformLoad(&shared_a);
            above = workgroupUniformLoad(&shared_b);
            let in_bucket = workgroupUniformLoad(&shared_c);
            want[word] |= bucket << shift;
            mask[word] |= dmask;
            // The whole bucket fits: every key with this prefix is kept.
            if above + in_bucket == MAX_SORT {
                break;
            }
        }
    }

    for (var i = lid; i < count; i += WG) {
        let key = vec2<u32>(candidates[i * 16u], ~candidates[i * 16u + 1u]);
        if key.x > want.x || (key.x == want.x && key.y >= want.y) {
            keys[atomicAdd(&selected, 1u)] = Key(key.x, ~key.y, i);
        }
    }
    workgroupBarrier();
    if lid == 0u {
        shared_a = atomicLoad(&selected);
    }
    let n = workgroupUniformLoad(&shared_a);
    var padded = 1u;
    while padded < n {
        padded <<= 1u;
    }
    // Padding keys sort after every real one: score 0 and the largest prior index.
    for (var i = n + lid; i < padded; i += WG) {
        keys[i] = Key(0u, 0xffffffffu, 0u);
    }
    storageBarrier();

    // Bitonic sort: merged block size k doubles; within a block, compare-exchange at distance
    // j. Pair t: i = the t-th index whose bit j is clear, partner i + j. Blocks with bit k clear
    // go best-first, the others reversed, so that each pair of blocks is bitonic for the next
    // merge; the last merge (k = padded) is all best-first.
    let half = padded / 2u;
    for (var k = 2u; k <= padded; k <<= 1u) {
        for (var j = k >> 1u; j > 0u; j >>= 1u) {
            for (var t = lid; t < half; t += WG) {
                let i = 2u * t - (t & (j - 1u));
                let l = i + j;
                let a = keys[i];
                let b = keys[l];
                let forward = (i & k) == 0u;
                if select(before(a, b), before(b, a), forward) {
                    keys[i] = b;
                    keys[l] = a;
                }
            }
            storageBarrier();
        }
    }

    // Gather the best top_k rows contiguously: the NMS passes read them many times.
    let top_k = min(n, MAX_SORT);
    for (var e = lid; e < top_k * 16u; e += WG) {
        sorted[e] = candidates[keys[e / 16u].slot * 16u + (e & 15u)];
    }
    if lid == 0u {
        state[1] = top_k;
        args[0] = (top_k + MASK_ROWS - 1u) / MASK_ROWS;
        args[1] = (top_k + 31u) / 32u;
        args[2] = 1u;
    }
}

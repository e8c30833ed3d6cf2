//! Host side of `shaders/sort.wgsl`: in one workgroup, an exact radix select of the best
//! [`MAX_SORT`] candidates when there are more, a bitonic sort of those by score (descending,
//! ties by prior index), a gather into a contiguous list, and the indirect dispatch arguments
//! of the NMS mask pass. The count exists only on the GPU; nothing is read back.

use std::sync::Arc;

use super::decode::{Candidate, CANDIDATE_WORDS};
use super::{Kernel, Slot, Step, Workgroups};
use crate::gpu::{uniform_buffer, GpuContext};

pub const SOURCE: &str = include_str!("../../shaders/sort.wgsl");

/// Candidates kept for NMS (the reference's `top_k`); must match `MAX_SORT` in the shaders.
pub const MAX_SORT: usize = 5000;
/// Bytes of one sort key (score bits, prior index, candidate slot).
const KEY_BYTES: u64 = 12;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    capacity: u32,
    _pad: [u32; 3],
}

pub(crate) fn kernel(ctx: &GpuContext) -> Arc<Kernel> {
    Kernel::new(
        ctx,
        "sort",
        SOURCE,
        "main",
        &[
            Slot::Uniform,
            Slot::Read,
            Slot::ReadWrite,
            Slot::ReadWrite,
            Slot::ReadWrite,
            Slot::ReadWrite,
        ],
    )
}

/// Bytes of the key scratch for `capacity` candidates: the selection leaves at most
/// [`MAX_SORT`] keys, padded to a power of two.
pub(crate) fn keys_bytes(capacity: u32) -> u64 {
    sorted_rows(capacity).max(1).next_power_of_two() as u64 * KEY_BYTES
}

/// Rows of the sorted list (and of the NMS mask) for `capacity` candidates.
pub(crate) fn sorted_rows(capacity: u32) -> u32 {
    capacity.min(MAX_SORT as u32)
}

/// Bytes of the sorted list.
pub(crate) fn sorted_bytes(capacity: u32) -> u64 {
    sorted_rows(capacity) as u64 * (CANDIDATE_WORDS * 4) as u64
}

/// The sort dispatch: one workgroup, because only it knows the count (`state[0]`) and can
/// loop over it with barriers. Writes `state[1]` = top_k and `args` = the NMS mask grid.
#[allow(clippy::too_many_arguments)]
pub(crate) fn step(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    capacity: u32,
    candidates: &wgpu::Buffer,
    keys: &wgpu::Buffer,
    sorted: &wgpu::Buffer,
    state: &wgpu::Buffer,
    args: &wgpu::Buffer,
) -> Step {
    let uniform = uniform_buffer(
        ctx,
        "sort",
        &Params {
            capacity,
            _pad: [0; 3],
        },
    );
    Step {
        label: "sort".to_string(),
        kernel: kernel.clone(),
        bind_group: kernel.bind(ctx, &[&uniform, candidates, keys, sorted, state, args]),
        workgroups: Workgroups::Direct([1, 1, 1]),
    }
}

/// CPU reference: best first, ties by prior index, at most [`MAX_SORT`].
pub fn cpu(candidates: &[Candidate]) -> Vec<Candidate> {
    let mut v = candidates.to_vec();
    v.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.prior_index.cmp(&b.prior_index))
    });
    v.truncate(MAX_SORT);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::storage_buffer;
    use crate::ops::decode::{read_words, words_buffer};
    use crate::ops::run_steps;
    use crate::ops::testutil::{ctx, Rng};

    /// Sorts `cands` (in the given, arbitrary order) in a buffer of `capacity` rows.
    fn check(cands: &[Candidate], capacity: u32, what: &str) {
        let ctx = ctx();
        let mut words: Vec<u32> = cands.iter().flat_map(|c| c.to_words()).collect();
        // Garbage after the count must be ignored.
        words.resize(capacity as usize * CANDIDATE_WORDS, 0x7fc0_0001);
        let cand_buf = words_buffer(ctx, "candidates", &words);
        let state = words_buffer(ctx, "state", &[cands.len() as u32, 0xdead, 0, 0]);
        let keys = storage_buffer(ctx, "keys", keys_bytes(capacity));
        let sorted = storage_buffer(ctx, "sorted", sorted_bytes(capacity));
        let args = storage_buffer(ctx, "args", 16);
        let k = kernel(ctx);
        let s = step(ctx, &k, capacity, &cand_buf, &keys, &sorted, &state, &args);
        run_steps(ctx, &[s]);

        let want = cpu(cands);
        let top_k = want.len();
        assert_eq!(top_k, cands.len().min(MAX_SORT), "{what}: cpu top_k");
        let st = read_words(ctx, &state, 2);
        assert_eq!(st, [cands.len() as u32, top_k as u32], "{what}: state");
        let a = read_words(ctx, &args, 3);
        assert_eq!(
            a,
            [top_k.div_ceil(64) as u32, top_k.div_ceil(32) as u32, 1],
            "{what}: indirect args"
        );
        if top_k > 0 {
            let got: Vec<Candidate> = read_words(ctx, &sorted, top_k * CANDIDATE_WORDS)
                .chunks_exact(CANDIDATE_WORDS)
                .map(Candidate::from_words)
                .collect();
            // Exact: the sort moves bits, it computes nothing.
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_words(), w.to_words(), "{what}: row {i}");
            }
        }
    }

    /// `n` candidates with distinct prior indices in a shuffled order and scores drawn from
    /// `levels` distinct values, so most scores are tied.
    fn candidates(n: usize, levels: u32, seed: u64) -> Vec<Candidate> {
        let mut rng = Rng(seed);
        let mut priors: Vec<u32> = (0..n as u32).map(|i| i * 3 + 1).collect();
        for i in (1..n).rev() {
            let j = ((rng.next_f32() + 1.0) * 0.5 * (i + 1) as f32) as usize % (i + 1);
            priors.swap(i, j);
        }
        priors
            .into_iter()
            .map(|p| {
                let q = ((rng.next_f32() + 1.0) * 0.5 * levels as f32) as u32 % levels;
                let v = rng.next_f32();
                Candidate {
                    score: 0.5 + 0.5 * (q as f32 + 0.5) / levels as f32,
                    prior_index: p,
                    bbox: [v, v * 2.0, v + 10.0, v + 20.0],
                    landmarks: std::array::from_fn(|k| [k as f32, v]),
                }
            })
            .collect()
    }

    #[test]
    fn sort_empty() {
        check(&[], 37, "empty");
    }

    #[test]
    fn sort_small_counts() {
        check(&candidates(1, 1, 1), 5, "one");
        check(&candidates(3, 2, 2), 5, "three");
        check(&candidates(7, 3, 3), 7, "seven, full capacity");
    }

    #[test]
    fn sort_many_ties_odd_count() {
        // 1001 candidates over 5 score values: nearly all comparisons fall to the prior index.
        check(&candidates(1001, 5, 4), 1300, "ties");
        // A count just past a power of two (most keys are padding), distinct scores.
        check(&candidates(257, 100_000, 5), 300, "257");
    }

    #[test]
    fn sort_keeps_top_5000() {
        // 6337 candidates above threshold: only the best 5000 survive, in order. The radix
        // select stops on the score digits (40 distinct scores, the 5000th inside a tie).
        check(&candidates(6337, 40, 6), 6400, "6337");
        // 5001: one too many, distinct scores.
        check(&candidates(5001, 1 << 20, 7), 5001, "5001");
    }

    #[test]
    fn sort_selects_from_very_many() {
        // More keys than one invocation may loop over on llvmpipe if they were all sorted
        // (a 262144-key bitonic sort stopped half-way there): the selection must cut them to
        // 5000 first. Distinct scores; 3 scores (the cut falls inside a tie of ~100000 and is
        // decided by prior index digits); and all scores equal.
        check(&candidates(140_000, 1 << 22, 8), 140_000, "140000 distinct");
        check(&candidates(300_001, 3, 9), 300_001, "300001, 3 scores");
        check(&candidates(270_000, 1, 10), 270_000, "270000, 1 score");
    }
}

//! Host side of `shaders/nms.wgsl`: greedy NMS as py_cpu_nms, in two dispatches: a bitmask of
//! all pairs whose IoU passes the threshold (sized indirectly by the candidate count), then one
//! workgroup that walks the sorted list, keeps at most [`MAX_KEEP`] faces and writes them out.

use std::sync::Arc;

use super::decode::{Candidate, PostMode, CANDIDATE_WORDS};
use super::sort::sorted_rows;
use super::{Kernel, Slot, Step, Workgroups};
use crate::gpu::GpuContext;

pub const SOURCE: &str = include_str!("../../shaders/nms.wgsl");

/// Faces kept after NMS (the reference's `keep_top_k`); must match the shader.
pub const MAX_KEEP: usize = 750;
/// Words before the faces in the output: kept, candidates, top_k, 0.
pub const HEADER_WORDS: usize = 4;

/// Both entry points share one layout: run params, sorted list, state, mask, faces.
const SLOTS: [Slot; 5] = [
    Slot::Uniform,
    Slot::Read,
    Slot::Read,
    Slot::ReadWrite,
    Slot::ReadWrite,
];

pub(crate) fn mask_kernel(ctx: &GpuContext) -> Arc<Kernel> {
    Kernel::new(ctx, "nms_mask", SOURCE, "mask", &SLOTS)
}

pub(crate) fn scan_kernel(ctx: &GpuContext) -> Arc<Kernel> {
    Kernel::new(ctx, "nms_scan", SOURCE, "scan", &SLOTS)
}

/// Bytes of the IoU bitmask for `capacity` candidates: top_k rows of ceil(top_k / 32) words.
pub(crate) fn mask_bytes(capacity: u32) -> u64 {
    let rows = sorted_rows(capacity) as u64;
    rows * rows.div_ceil(32) * 4
}

/// Bytes of the output: the header and room for [`MAX_KEEP`] faces.
pub(crate) fn faces_bytes() -> u64 {
    ((HEADER_WORDS + MAX_KEEP * CANDIDATE_WORDS) * 4) as u64
}

/// The two NMS dispatches. `args` holds the mask grid that sort.wgsl wrote (offset 0); it is a
/// buffer of its own because a buffer cannot be both read-write storage and the indirect
/// argument source of one dispatch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn steps(
    ctx: &GpuContext,
    mask_kernel: &Arc<Kernel>,
    scan_kernel: &Arc<Kernel>,
    run: &wgpu::Buffer,
    sorted: &wgpu::Buffer,
    state: &wgpu::Buffer,
    mask: &wgpu::Buffer,
    faces: &wgpu::Buffer,
    args: &wgpu::Buffer,
) -> [Step; 2] {
    let buffers = [run, sorted, state, mask, faces];
    [
        Step {
            label: "nms_mask".to_string(),
            kernel: mask_kernel.clone(),
            bind_group: mask_kernel.bind(ctx, &buffers),
            workgroups: Workgroups::Indirect(args.clone(), 0),
        },
        Step {
            label: "nms_scan".to_string(),
            kernel: scan_kernel.clone(),
            bind_group: scan_kernel.bind(ctx, &buffers),
            workgroups: Workgroups::Direct([1, 1, 1]),
        },
    ]
}

/// IoU with py_cpu_nms's "+1" convention, in f32, in the reference's order of operations.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0] + 1.0) * (r[3] - r[1] + 1.0);
    let w = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
    let inter = w * h;
    inter / (area(a) + area(b) - inter)
}

/// CPU reference: greedy NMS over `sorted` (best first), at most [`MAX_KEEP`] kept.
pub fn cpu(sorted: &[Candidate], nms_threshold: f32) -> Vec<Candidate> {
    cpu_with(PostMode::Priors, sorted, nms_threshold)
}

/// [`cpu`] with `mode`'s comparison: IoU > threshold removes a box (Pytorch_Retinaface), or
/// IoU >= threshold (retina-face).
pub fn cpu_with(mode: PostMode, sorted: &[Candidate], nms_threshold: f32) -> Vec<Candidate> {
    let removes = |iou: f32| match mode {
        PostMode::Priors => iou > nms_threshold,
        PostMode::Anchors => iou >= nms_threshold,
    };
    let mut removed = vec![false; sorted.len()];
    let mut keep = Vec::new();
    for i in 0..sorted.len() {
        if removed[i] {
            continue;
        }
        keep.push(sorted[i]);
        if keep.len() == MAX_KEEP {
            break;
        }
        for j in i + 1..sorted.len() {
            if !removed[j] && removes(iou(&sorted[i].bbox, &sorted[j].bbox)) {
                removed[j] = true;
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{storage_buffer, uniform_buffer};
    use crate::ops::decode::{read_words, words_buffer, RunParams};
    use crate::ops::run_steps;
    use crate::ops::testutil::{ctx, Rng};

    /// Runs both passes on an already sorted list; returns (header, kept faces).
    fn gpu_nms(sorted: &[Candidate], threshold: f32) -> ([u32; 4], Vec<Candidate>) {
        gpu_nms_with(PostMode::Priors, sorted, threshold)
    }

    fn gpu_nms_with(
        mode: PostMode,
        sorted: &[Candidate],
        threshold: f32,
    ) -> ([u32; 4], Vec<Candidate>) {
        let ctx = ctx();
        let top_k = sorted.len();
        assert!(top_k <= crate::ops::sort::MAX_SORT);
        let words: Vec<u32> = sorted.iter().flat_map(|c| c.to_words()).collect();
        let sorted_buf = words_buffer(ctx, "sorted", &words);
        // state[0] (candidates before truncation) is only passed through to the header.
        let state = words_buffer(ctx, "state", &[top_k as u32 + 7, top_k as u32, 0, 0]);
        // What sort.wgsl writes for this top_k.
        let args = words_buffer(
            ctx,
            "args",
            &[top_k.div_ceil(64) as u32, top_k.div_ceil(32) as u32, 1, 0],
        );
        // All bits set: a word the scan reads but the mask pass did not write removes boxes.
        let mask = words_buffer(
            ctx,
            "mask",
            &vec![u32::MAX; mask_bytes(top_k as u32) as usize / 4],
        );
        let faces = storage_buffer(ctx, "faces", faces_bytes());
        let run = uniform_buffer(
            ctx,
            "run",
            &RunParams::new(0.5, threshold, [1.0, 1.0], mode),
        );
        let (mk, sk) = (mask_kernel(ctx), scan_kernel(ctx));
        let s = steps(
            ctx,
            &mk,
            &sk,
            &run,
            &sorted_buf,
            &state,
            &mask,
            &faces,
            &args,
        );
        run_steps(ctx, &s);
        let w = read_words(ctx, &faces, faces_bytes() as usize / 4);
        let header = [w[0], w[1], w[2], w[3]];
        let kept = w[HEADER_WORDS..]
            .chunks_exact(CANDIDATE_WORDS)
            .take(header[0] as usize)
            .map(Candidate::from_words)
            .collect();
        (header, kept)
    }

    fn check(sorted: &[Candidate], threshold: f32, what: &str) -> Vec<Candidate> {
        let (header, got) = gpu_nms(sorted, threshold);
        let want = cpu(sorted, threshold);
        assert_eq!(
            header,
            [
                want.len() as u32,
                sorted.len() as u32 + 7,
                sorted.len() as u32,
                0
            ],
            "{what}: header"
        );
        let ids = |v: &[Candidate]| v.iter().map(|c| c.prior_index).collect::<Vec<_>>();
        assert_eq!(ids(&got), ids(&want), "{what}: kept anchors");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                g.to_words(),
                w.to_words(),
                "{what}: faces are copied bit-exactly"
            );
        }
        want
    }

    fn face(i: u32, score: f32, bbox: [f32; 4]) -> Candidate {
        Candidate {
            score,
            prior_index: i,
            bbox,
            landmarks: std::array::from_fn(|k| [bbox[0] + k as f32, bbox[1] - k as f32]),
        }
    }

    /// Boxes in descending score order, as sort.wgsl leaves them.
    fn ranked(boxes: &[[f32; 4]]) -> Vec<Candidate> {
        boxes
            .iter()
            .enumerate()
            .map(|(i, b)| face(i as u32 * 5, 1.0 - i as f32 * 1e-4, *b))
            .collect()
    }

    #[test]
    fn iou_exactly_at_the_threshold_is_removed_only_in_anchors_mode() {
        // Box 1 lies inside box 0: inter = its area 4 * 10 = 40, union 10 * 10 = 100, IoU 0.4
        // exactly (+1 convention, all integers: no rounding anywhere).
        let sorted = ranked(&[[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 3.0, 9.0]]);
        assert_eq!(iou(&sorted[0].bbox, &sorted[1].bbox), 0.4);
        for (mode, kept) in [(PostMode::Priors, 2), (PostMode::Anchors, 1)] {
            let (_, got) = gpu_nms_with(mode, &sorted, 0.4);
            assert_eq!(got.len(), kept, "{mode:?}");
            assert_eq!(cpu_with(mode, &sorted, 0.4).len(), kept, "{mode:?} cpu");
        }
    }

    #[test]
    fn nms_empty() {
        let (header, kept) = gpu_nms(&[], 0.4);
        assert_eq!(header, [0, 7, 0, 0]);
        assert!(kept.is_empty());
    }

    #[test]
    fn nms_iou_straddles_threshold() {
        // Integer boxes, so every area and intersection is exact in f32 and the only rounding
        // is the division, the same on both sides. Box 0 is 10x10 (+1 convention: 11x11 = 121).
        // Box 1: inter 11*6 = 66, union 121+121-66 = 176: IoU 0.375.
        // Box 2: shifted 3 in x: inter 8*11 = 88, union 154: IoU 0.5714.
        // With threshold 0.375 (exactly representable) box 1 sits exactly on it and stays.
        let b0 = [0.0, 0.0, 10.0, 10.0];
        let b1 = [0.0, 5.0, 10.0, 15.0];
        let b2 = [3.0, 0.0, 13.0, 10.0];
        let boxes = [b0, b1, b2];
        assert_eq!(iou(&b0, &b1), 0.375);
        let kept = check(&ranked(&boxes), 0.375, "on the threshold");
        assert_eq!(
            kept.iter().map(|c| c.prior_index).collect::<Vec<_>>(),
            [0, 5]
        );
        // A hair below: box 1 goes too.
        let kept = check(&ranked(&boxes), 0.374_999_97, "just below");
        assert_eq!(kept.len(), 1);
        // Between 0.375 and 0.5714: box 2 goes, box 1 stays; above both: all stay.
        assert_eq!(check(&ranked(&boxes), 0.5, "0.5").len(), 2);
        assert_eq!(check(&ranked(&boxes), 0.6, "0.6").len(), 3);
        // Chain: 1 is removed by 0, so 1 cannot remove 2 (greedy uses kept boxes only).
        let chain = [
            [0.0, 0.0, 10.0, 10.0],
            [4.0, 0.0, 14.0, 10.0],
            [8.0, 0.0, 18.0, 10.0],
        ];
        let kept = check(&ranked(&chain), 0.4, "chain");
        assert_eq!(
            kept.iter().map(|c| c.prior_index).collect::<Vec<_>>(),
            [0, 10]
        );
        // Disjoint boxes touching at +1: intersection width max(0, 10 - 11 + 1) = 0.
        let apart = [[0.0, 0.0, 10.0, 10.0], [11.0, 0.0, 21.0, 10.0]];
        assert_eq!(check(&ranked(&apart), 0.0, "touching").len(), 2);
    }

    #[test]
    fn nms_random_near_threshold() {
        // 1237 boxes (39 rows of the mask, a partial last word) clustered so that many pairs
        // overlap; integer and fractional coordinates mixed. Many IoUs land near 0.4.
        let mut rng = Rng(21);
        let mut boxes = Vec::new();
        for i in 0..1237 {
            let cx = (rng.next_f32() + 1.0) * 150.0;
            let cy = (rng.next_f32() + 1.0) * 100.0;
            let w = 8.0 + (rng.next_f32() + 1.0) * 20.0;
            let h = 8.0 + (rng.next_f32() + 1.0) * 20.0;
            let mut b = [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0];
            if i % 3 == 0 {
                b = b.map(f32::round);
            }
            boxes.push(b);
        }
        let sorted = ranked(&boxes);
        let mut near = 0;
        for i in 0..200 {
            for j in i + 1..sorted.len() {
                near += ((iou(&sorted[i].bbox, &sorted[j].bbox) - 0.4).abs() < 0.01) as usize;
            }
        }
        assert!(near > 50, "the data should exercise the threshold: {near}");
        for thr in [0.3, 0.4, 0.65] {
            let kept = check(&sorted, thr, &format!("random, threshold {thr}"));
            assert!(kept.len() > 10 && kept.len() < sorted.len());
        }
    }

    #[test]
    fn nms_keeps_at_most_750() {
        // 5000 disjoint boxes on a grid (+ some overlapping duplicates): the keep limit, not
        // the IoU, ends the walk.
        let mut boxes = Vec::new();
        for i in 0..5000u32 {
            // Every 7th box repeats the previous one's cell, shifted by 1 px: IoU 110/132.
            let dup = i % 7 == 3;
            let cell = if dup { i - 1 } else { i };
            let (x, y) = ((cell % 100) as f32 * 20.0, (cell / 100) as f32 * 20.0);
            let o = if dup { 1.0 } else { 0.0 };
            boxes.push([x + o, y, x + 10.0 + o, y + 10.0]);
        }
        let kept = check(&ranked(&boxes), 0.4, "5000");
        assert_eq!(kept.len(), MAX_KEEP);
        // The duplicates (IoU 110/132 with their originals) are among the removed ones.
        assert!(kept.iter().all(|c| (c.prior_index / 5) % 7 != 3));
    }
}

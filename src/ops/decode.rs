//! Host side of `shaders/decode.wgsl`: two-way softmax score, prior decode, score threshold and
//! compaction of the survivors into a candidate list, one invocation per anchor.

use std::sync::Arc;

use super::{div_ceil, Kernel, Slot, Step, Workgroups};
use crate::gpu::{uniform_buffer, GpuContext};

pub const SOURCE: &str = include_str!("../../shaders/decode.wgsl");

/// Floats per raw head row: 2 class logits, 4 box deltas, 10 landmark deltas.
pub const RAW_ROW: usize = 16;
/// Words per candidate: score, prior index, box, 5 landmarks.
pub const CANDIDATE_WORDS: usize = 16;
/// Feature-map strides of the three levels, finest first.
pub const STRIDES: [u32; 3] = [8, 16, 32];
/// Anchor sizes of each level, in anchor order within a cell.
pub const MIN_SIZES: [[f32; 2]; 3] = [[16.0, 32.0], [64.0, 128.0], [256.0, 512.0]];
const VARIANCE: [f32; 2] = [0.1, 0.2];
/// Invocations per workgroup; must match the shader.
const WG: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    net_w: u32,
    net_h: u32,
    _pad0: u32,
    levels: [[u32; 2]; 3],
    _pad1: [u32; 2],
}

/// How a model's head outputs become faces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PostMode {
    /// Pytorch_Retinaface: priors at cell centres with variances (0.1, 0.2); score >
    /// threshold and IoU > NMS threshold (strict); nothing clipped.
    #[default]
    Priors = 0,
    /// retina-face / insightface: corner-form anchors with the "+1" size convention, centres
    /// at 7.5 px, no variances, the larger anchor first; boxes clipped to the network input;
    /// score >= threshold and IoU >= NMS threshold; coordinates divided by the resize factor.
    Anchors = 1,
}

/// The per-call settings, rewritten with `queue.write_buffer` before each run; bound by both
/// decode.wgsl (`threshold`, `scale`, `factor`, `mode`) and nms.wgsl (`nms_threshold`, `mode`).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct RunParams {
    pub threshold: f32,
    pub nms_threshold: f32,
    /// Output pixels per network-input pixel (multiplied, [`PostMode::Priors`]).
    pub scale: [f32; 2],
    /// The resize factor, network-input pixels per output pixel (divided by,
    /// [`PostMode::Anchors`], as the package does).
    pub factor: [f32; 2],
    pub mode: u32,
    pub _pad: u32,
}

impl RunParams {
    pub fn new(threshold: f32, nms_threshold: f32, scale: [f32; 2], mode: PostMode) -> Self {
        Self {
            threshold,
            nms_threshold,
            scale,
            factor: scale.map(|s| (1.0 / s as f64) as f32),
            mode: mode as u32,
            _pad: 0,
        }
    }
}

/// One decoded anchor above the threshold, in the coordinates of the output frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub score: f32,
    /// Row of the anchor in the head outputs.
    pub prior_index: u32,
    /// `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
    /// Five `[x, y]` points in the reference's order.
    pub landmarks: [[f32; 2]; 5],
}

impl Candidate {
    /// The shader's layout: floats as their bits, the prior index as an integer.
    pub fn to_words(&self) -> [u32; CANDIDATE_WORDS] {
        let mut w = [0u32; CANDIDATE_WORDS];
        w[0] = self.score.to_bits();
        w[1] = self.prior_index;
        for k in 0..4 {
            w[2 + k] = self.bbox[k].to_bits();
        }
        for (k, p) in self.landmarks.iter().enumerate() {
            w[6 + 2 * k] = p[0].to_bits();
            w[7 + 2 * k] = p[1].to_bits();
        }
        w
    }

    /// Inverse of [`Candidate::to_words`]; `w` holds at least 16 words.
    pub fn from_words(w: &[u32]) -> Self {
        let f = |i: usize| f32::from_bits(w[i]);
        Self {
            score: f(0),
            prior_index: w[1],
            bbox: [f(2), f(3), f(4), f(5)],
            landmarks: std::array::from_fn(|k| [f(6 + 2 * k), f(7 + 2 * k)]),
        }
    }
}

/// Anchors (head rows) of a network input whose three feature maps are `levels`.
pub fn anchors(levels: [(u32, u32); 3]) -> u32 {
    levels.iter().map(|(w, h)| 2 * w * h).sum()
}

pub(crate) fn kernel(ctx: &GpuContext) -> Arc<Kernel> {
    Kernel::new(
        ctx,
        "decode",
        SOURCE,
        "main",
        &[
            Slot::Uniform,
            Slot::Uniform,
            Slot::Read,
            Slot::ReadWrite,
            Slot::ReadWrite,
        ],
    )
}

/// Workgroups for `n` anchors: x up to the 65535 limit, the rest in y (the shader flattens).
fn grid(n: u32) -> [u32; 3] {
    let (x, y) = super::grid_2d(div_ceil(n, WG));
    [x, y, 1]
}

/// The decode dispatch for `raw` (`anchors(levels)` rows of 16 floats). `candidates` holds
/// 16 words per anchor; `state[0]` is the candidate counter, cleared by the host before a run.
#[allow(clippy::too_many_arguments)]
pub(crate) fn step(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    levels: [(u32, u32); 3],
    net_w: u32,
    net_h: u32,
    run: &wgpu::Buffer,
    raw: &wgpu::Buffer,
    candidates: &wgpu::Buffer,
    state: &wgpu::Buffer,
) -> Step {
    let n = anchors(levels);
    let params = Params {
        n,
        net_w,
        net_h,
        _pad0: 0,
        levels: levels.map(|(w, h)| [w, h]),
        _pad1: [0; 2],
    };
    let uniform = uniform_buffer(ctx, "decode", &params);
    Step {
        label: "decode".to_string(),
        kernel: kernel.clone(),
        bind_group: kernel.bind(ctx, &[&uniform, run, raw, candidates, state]),
        workgroups: Workgroups::Direct(grid(n)),
    }
}

/// CPU reference: the candidates above `threshold`, in anchor order, with the shader's f32
/// operations in the shader's order.
pub fn cpu(
    raw: &[f32],
    levels: [(u32, u32); 3],
    net_w: u32,
    net_h: u32,
    threshold: f32,
    scale: [f32; 2],
) -> Vec<Candidate> {
    cpu_with(
        PostMode::Priors,
        raw,
        levels,
        net_w,
        net_h,
        threshold,
        scale,
    )
}

/// [`cpu`] for either [`PostMode`].
pub fn cpu_with(
    mode: PostMode,
    raw: &[f32],
    levels: [(u32, u32); 3],
    net_w: u32,
    net_h: u32,
    threshold: f32,
    scale: [f32; 2],
) -> Vec<Candidate> {
    if mode == PostMode::Anchors {
        return cpu_anchors(raw, levels, net_w, net_h, threshold, scale);
    }
    let n = anchors(levels) as usize;
    assert_eq!(raw.len(), n * RAW_ROW, "raw rows");
    let net = [net_w as f32, net_h as f32];
    let mut out = Vec::new();
    for (a, l, x, y, k) in rows(levels) {
        let row = &raw[a * RAW_ROW..(a + 1) * RAW_ROW];
        let score = score(row);
        // Strict; a NaN score fails it too.
        if score.partial_cmp(&threshold) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        let (stride, size) = (STRIDES[l] as f32, MIN_SIZES[l][k]);
        let pc = [
            (x as f32 + 0.5) * stride / net[0],
            (y as f32 + 0.5) * stride / net[1],
        ];
        let pwh = [size / net[0], size / net[1]];
        let mut bbox = [0f32; 4];
        for d in 0..2 {
            let c = pc[d] + row[2 + d] * VARIANCE[0] * pwh[d];
            let s = pwh[d] * (row[4 + d] * VARIANCE[1]).exp();
            let p1 = c - s / 2.0;
            let p2 = p1 + s;
            bbox[d] = p1 * net[d] * scale[d];
            bbox[2 + d] = p2 * net[d] * scale[d];
        }
        let landmarks = std::array::from_fn(|k| {
            std::array::from_fn(|d| {
                (pc[d] + row[6 + 2 * k + d] * VARIANCE[0] * pwh[d]) * net[d] * scale[d]
            })
        });
        out.push(Candidate {
            score,
            prior_index: a as u32,
            bbox,
            landmarks,
        });
    }
    out
}

/// Every head row in order: (row, level, x, y, anchor within the cell).
fn rows(levels: [(u32, u32); 3]) -> impl Iterator<Item = (usize, usize, u32, u32, usize)> {
    levels
        .into_iter()
        .enumerate()
        .flat_map(|(l, (fw, fh))| {
            (0..fh).flat_map(move |y| (0..fw).flat_map(move |x| (0..2).map(move |k| (l, x, y, k))))
        })
        .enumerate()
        .map(|(a, (l, x, y, k))| (a, l, x, y, k))
}

/// The two-way softmax of a row's logits, in the shader's order of operations.
fn score(row: &[f32]) -> f32 {
    let m = row[0].max(row[1]);
    let (e0, e1) = ((row[0] - m).exp(), (row[1] - m).exp());
    e1 / (e0 + e1)
}

/// [`PostMode::Anchors`]' decode, as decode.wgsl computes it.
fn cpu_anchors(
    raw: &[f32],
    levels: [(u32, u32); 3],
    net_w: u32,
    net_h: u32,
    threshold: f32,
    scale: [f32; 2],
) -> Vec<Candidate> {
    let factor = RunParams::new(0.0, 0.0, scale, PostMode::Anchors).factor;
    let limit = [net_w as f32 - 1.0, net_h as f32 - 1.0];
    let mut out = Vec::new();
    for (a, l, x, y, k) in rows(levels) {
        let row = &raw[a * RAW_ROW..(a + 1) * RAW_ROW];
        let score = score(row);
        // Inclusive (retina-face); a NaN score fails it too.
        if score.is_nan() || score < threshold {
            continue;
        }
        let size = MIN_SIZES[l][1] / (1 + k) as f32;
        let stride = STRIDES[l] as f32;
        let ca = [x as f32 * stride + 7.5, y as f32 * stride + 7.5];
        let mut bbox = [0f32; 4];
        for d in 0..2 {
            let c = row[2 + d] * size + ca[d];
            let s = row[4 + d].exp() * size;
            let half = 0.5 * (s - 1.0);
            bbox[d] = (c - half).clamp(0.0, limit[d]) / factor[d];
            bbox[2 + d] = (c + half).clamp(0.0, limit[d]) / factor[d];
        }
        let landmarks = std::array::from_fn(|p| {
            std::array::from_fn(|d| (row[6 + 2 * p + d] * size + ca[d]) / factor[d])
        });
        out.push(Candidate {
            score,
            prior_index: a as u32,
            bbox,
            landmarks,
        });
    }
    out
}

/// GPU and CPU candidates agree: same anchors (order ignored: the GPU's is the order of its
/// atomic appends), scores and coordinates within `tol` of the largest magnitude.
#[cfg(test)]
pub(crate) fn assert_same_candidates(gpu: &[Candidate], cpu: &[Candidate], tol: f32, what: &str) {
    let ids = |v: &[Candidate]| v.iter().map(|c| c.prior_index).collect::<Vec<_>>();
    assert_eq!(ids(gpu), ids(cpu), "{what}: candidate anchors");
    let flat = |v: &[Candidate]| {
        v.iter()
            .flat_map(|c| {
                c.bbox
                    .into_iter()
                    .chain(c.landmarks.into_iter().flatten())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let scores = |v: &[Candidate]| v.iter().map(|c| c.score).collect::<Vec<_>>();
    super::testutil::assert_close(&scores(gpu), &scores(cpu), 1e-6, &format!("{what}: scores"));
    super::testutil::assert_close(&flat(gpu), &flat(cpu), tol, &format!("{what}: coordinates"));
}

/// A storage (and indirect) buffer holding `words`; for tests that feed a stage directly.
#[cfg(test)]
pub(crate) fn words_buffer(ctx: &GpuContext, label: &str, words: &[u32]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    let mut w = words.to_vec();
    w.resize(w.len().max(4), 0);
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(&w),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::INDIRECT,
        })
}

/// The first `n` words of `buffer`.
#[cfg(test)]
pub(crate) fn read_words(ctx: &GpuContext, buffer: &wgpu::Buffer, n: usize) -> Vec<u32> {
    crate::gpu::read_buffer(ctx, buffer, (n * 4) as u64)
        .unwrap()
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{storage_buffer, upload_f32};
    use crate::ops::run_steps;
    use crate::ops::testutil::{ctx, Rng};

    /// Runs decode alone and returns its candidates sorted by anchor.
    fn gpu_decode(
        raw: &[f32],
        levels: [(u32, u32); 3],
        net: (u32, u32),
        threshold: f32,
        scale: [f32; 2],
    ) -> Vec<Candidate> {
        gpu_decode_with(PostMode::Priors, raw, levels, net, threshold, scale)
    }

    fn gpu_decode_with(
        mode: PostMode,
        raw: &[f32],
        levels: [(u32, u32); 3],
        net: (u32, u32),
        threshold: f32,
        scale: [f32; 2],
    ) -> Vec<Candidate> {
        let ctx = ctx();
        let n = anchors(levels) as usize;
        let raw_buf = upload_f32(ctx, "raw", raw);
        // Poisoned so that a candidate written in the wrong place shows.
        let cand_buf = upload_f32(ctx, "candidates", &vec![f32::NAN; n * CANDIDATE_WORDS]);
        let state = storage_buffer(ctx, "state", 16);
        let run = uniform_buffer(ctx, "run", &RunParams::new(threshold, 0.4, scale, mode));
        let k = kernel(ctx);
        let s = step(
            ctx, &k, levels, net.0, net.1, &run, &raw_buf, &cand_buf, &state,
        );
        run_steps(ctx, &[s]);
        let count = read_words(ctx, &state, 1)[0] as usize;
        let words = read_words(ctx, &cand_buf, n * CANDIDATE_WORDS);
        let mut out: Vec<Candidate> = words
            .chunks_exact(CANDIDATE_WORDS)
            .take(count)
            .map(Candidate::from_words)
            .collect();
        out.sort_by_key(|c| c.prior_index);
        out
    }

    /// Random rows: logits spread over [-4, 4] so about half pass 0.5, box and landmark deltas
    /// as large as the network gives (|dw| up to 3 means sizes up to e^0.6).
    fn random_raw(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng(seed);
        let mut raw = rng.vec(n * RAW_ROW);
        for row in raw.chunks_exact_mut(RAW_ROW) {
            row[0] *= 4.0;
            row[1] *= 4.0;
            for v in &mut row[2..] {
                *v *= 3.0;
            }
        }
        raw
    }

    #[test]
    fn anchors_mode_matches_cpu_and_keeps_scores_at_the_threshold() {
        let levels = [(5, 3), (3, 2), (2, 1)];
        let mut raw = random_raw(anchors(levels) as usize, 13);
        // Row 3: equal logits, a score of exactly 0.5: kept with >=, dropped with >.
        raw[3 * RAW_ROW] = 0.25;
        raw[3 * RAW_ROW + 1] = 0.25;
        let scale = [1.0 / 2.73067, 1.0 / 2.73067];
        let gpu = gpu_decode_with(PostMode::Anchors, &raw, levels, (37, 23), 0.5, scale);
        let cpu = cpu_with(PostMode::Anchors, &raw, levels, 37, 23, 0.5, scale);
        assert!(cpu.iter().any(|c| c.prior_index == 3));
        assert!(!super::cpu(&raw, levels, 37, 23, 0.5, scale)
            .iter()
            .any(|c| c.prior_index == 3));
        assert_same_candidates(&gpu, &cpu, 2e-6, "anchors 37x23");
        // Boxes are clipped to the network input, then divided by the factor.
        let limit = 36.0 * scale[0] * 1.0001;
        assert!(cpu
            .iter()
            .all(|c| c.bbox.iter().all(|v| *v >= 0.0 && *v <= limit)));
        // The spec's anchors: stride 8, cell (0, 0), anchor 0 is 32 px centred at 7.5.
        let mut one = vec![0f32; anchors(levels) as usize * RAW_ROW];
        one[1] = 10.0;
        let c = cpu_with(PostMode::Anchors, &one, levels, 37, 23, 0.6, [1.0, 1.0]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].bbox, [0.0, 0.0, 23.0, 22.0]); // (-8, -8, 23, 23) clipped to 37x23
        assert_eq!(c[0].landmarks[0], [7.5, 7.5]);
    }

    #[test]
    fn decode_odd_sizes_matches_cpu() {
        // A 37x23 network input: levels 5x3, 3x2, 2x1, none a multiple of anything.
        let levels = [(5, 3), (3, 2), (2, 1)];
        let raw = random_raw(anchors(levels) as usize, 11);
        let scale = [1.7, 0.45];
        let gpu = gpu_decode(&raw, levels, (37, 23), 0.5, scale);
        let cpu = cpu(&raw, levels, 37, 23, 0.5, scale);
        assert!(
            cpu.len() > 5 && cpu.len() < anchors(levels) as usize,
            "{}",
            cpu.len()
        );
        assert_same_candidates(&gpu, &cpu, 1e-5, "37x23");
    }

    #[test]
    fn decode_larger_input_and_threshold_extremes() {
        // 203x97: 26x13, 13x7, 7x4 cells, 856 anchors (more than one workgroup).
        let levels = [(26, 13), (13, 7), (7, 4)];
        let n = anchors(levels) as usize;
        let raw = random_raw(n, 12);
        for threshold in [0.02, 0.5, 0.97] {
            let gpu = gpu_decode(&raw, levels, (203, 97), threshold, [1.0, 1.0]);
            let cpu = cpu(&raw, levels, 203, 97, threshold, [1.0, 1.0]);
            assert!(!cpu.is_empty());
            assert_same_candidates(&gpu, &cpu, 1e-5, &format!("threshold {threshold}"));
        }
        // Nothing passes a threshold of 1 (scores are at most 1): the counter stays at zero.
        assert!(gpu_decode(&raw, levels, (203, 97), 1.0, [1.0, 1.0]).is_empty());
        // Everything passes a negative one.
        assert_eq!(
            gpu_decode(&raw, levels, (203, 97), -1.0, [1.0, 1.0]).len(),
            n
        );
    }

    #[test]
    fn decode_threshold_is_strict_and_skips_nan() {
        // Equal logits give a score of exactly 0.5 (exp(0) / (exp(0) + exp(0))): not above a
        // threshold of 0.5, above the next float below it. A NaN logit never passes.
        let levels = [(3, 2), (2, 1), (1, 1)];
        let n = anchors(levels) as usize;
        let mut raw = vec![0f32; n * RAW_ROW];
        raw[5 * RAW_ROW + 1] = 1.0;
        raw[7 * RAW_ROW + 1] = f32::NAN;
        let ids = |v: Vec<Candidate>| v.iter().map(|c| c.prior_index).collect::<Vec<_>>();
        let one = [1.0, 1.0];
        for (threshold, want) in [
            (0.5, vec![5u32]),
            (
                f32::from_bits(0.5f32.to_bits() - 1),
                (0..n as u32).filter(|&a| a != 7).collect(),
            ),
            (-1.0, (0..n as u32).filter(|&a| a != 7).collect()),
        ] {
            let gpu = gpu_decode(&raw, levels, (21, 13), threshold, one);
            assert_eq!(ids(gpu), want, "gpu, threshold {threshold}");
            assert_eq!(ids(cpu(&raw, levels, 21, 13, threshold, one)), want, "cpu");
        }
    }

    #[test]
    fn decode_prior_layout() {
        // Zero deltas decode to the priors themselves: check the anchor order and prior
        // geometry against the README's formula, independently of `cpu`.
        let (net_w, net_h) = (37u32, 23u32);
        let levels = [(5, 3), (3, 2), (2, 1)];
        let n = anchors(levels) as usize;
        let mut raw = vec![0f32; n * RAW_ROW];
        for row in raw.chunks_exact_mut(RAW_ROW) {
            row[1] = 1.0;
        }
        let gpu = gpu_decode(&raw, levels, (net_w, net_h), 0.5, [1.0, 1.0]);
        assert_eq!(gpu.len(), n);
        let mut a = 0;
        for (l, (fw, fh)) in levels.iter().enumerate() {
            let s = STRIDES[l] as f64;
            for y in 0..*fh {
                for x in 0..*fw {
                    for m in MIN_SIZES[l] {
                        let c = &gpu[a];
                        assert_eq!(c.prior_index, a as u32);
                        let (cx, cy) = ((x as f64 + 0.5) * s, (y as f64 + 0.5) * s);
                        let want = [
                            cx - m as f64 / 2.0,
                            cy - m as f64 / 2.0,
                            cx + m as f64 / 2.0,
                            cy + m as f64 / 2.0,
                        ];
                        for k in 0..4 {
                            assert!(
                                (c.bbox[k] as f64 - want[k]).abs() < 1e-3,
                                "anchor {a}: {:?} vs {want:?}",
                                c.bbox
                            );
                        }
                        for p in c.landmarks {
                            assert!(
                                (p[0] as f64 - cx).abs() < 1e-3 && (p[1] as f64 - cy).abs() < 1e-3
                            );
                        }
                        let e = 1f64.exp();
                        assert!((c.score as f64 - e / (1.0 + e)).abs() < 1e-6);
                        a += 1;
                    }
                }
            }
        }
    }
}

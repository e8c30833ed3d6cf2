//! GPU post-processing of one input size: decode + threshold + compaction, sort, NMS, all in
//! the image's one compute pass; only the kept faces (`faces_bytes()`) come back to the CPU.
//!
//! ```text
//! raw [N x 16] --decode--> candidates [N x 16] + count --sort--> sorted [top_k x 16] + args
//!   --nms mask (indirect: args)--> IoU bitmask --nms scan--> faces [4 + 750 x 16]
//! ```
//! Buffers, bind groups and dispatches are made once per input size (a [`PostPlan`]); the
//! thresholds and the output scale live in one 16-byte uniform that [`PostPlan::set_run`]
//! rewrites before each submit, and [`PostPlan::reset`] clears the candidate counter.

use std::sync::Arc;

use crate::gpu::{storage_buffer, uniform_buffer, GpuContext};
pub use crate::ops::decode::PostMode;
use crate::ops::decode::{self, Candidate, RunParams, CANDIDATE_WORDS};
use crate::ops::{nms, sort, Kernel, Step};

/// One detection as the GPU leaves it: output-frame coordinates, the reference's landmark order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawFace {
    pub score: f32,
    /// Row of the anchor in the head outputs.
    pub prior_index: u32,
    /// `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
    pub landmarks: [[f32; 2]; 5],
}

impl From<Candidate> for RawFace {
    fn from(c: Candidate) -> Self {
        Self {
            score: c.score,
            prior_index: c.prior_index,
            bbox: c.bbox,
            landmarks: c.landmarks,
        }
    }
}

/// The post-processing pipelines, compiled once per detector.
pub(crate) struct PostKernels {
    decode: Arc<Kernel>,
    sort: Arc<Kernel>,
    nms_mask: Arc<Kernel>,
    nms_scan: Arc<Kernel>,
}

impl PostKernels {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            decode: decode::kernel(ctx),
            sort: sort::kernel(ctx),
            nms_mask: nms::mask_kernel(ctx),
            nms_scan: nms::scan_kernel(ctx),
        }
    }
}

/// Buffers and dispatches of the post-processing for one network input size.
pub(crate) struct PostPlan {
    mode: PostMode,
    run: wgpu::Buffer,
    /// `[candidates, top_k, 0, 0]`: decode counts, sort truncates.
    state: wgpu::Buffer,
    faces: wgpu::Buffer,
    /// The bind groups keep the other buffers alive.
    steps: Vec<Step>,
}

impl PostPlan {
    /// `raw`: the heads' `anchors(levels)` rows of 16 floats; `levels`: (w, h) of the stride
    /// 8, 16 and 32 feature maps of a `net_w` x `net_h` input.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &GpuContext,
        kernels: &PostKernels,
        mode: PostMode,
        raw: &wgpu::Buffer,
        levels: [(u32, u32); 3],
        net_w: u32,
        net_h: u32,
    ) -> Self {
        let n = decode::anchors(levels);
        let run = uniform_buffer(ctx, "post run", &RunParams::new(0.5, 0.4, [1.0, 1.0], mode));
        let state = storage_buffer(ctx, "post state", 16);
        let candidates = storage_buffer(
            ctx,
            "post candidates",
            n as u64 * (CANDIDATE_WORDS * 4) as u64,
        );
        let keys = storage_buffer(ctx, "post sort keys", sort::keys_bytes(n));
        let sorted = storage_buffer(ctx, "post sorted", sort::sorted_bytes(n));
        // Written by sort.wgsl, read as the NMS mask pass's indirect arguments.
        let args = storage_buffer(ctx, "post nms args", 16);
        let mask = storage_buffer(ctx, "post nms mask", nms::mask_bytes(n));
        let faces = storage_buffer(ctx, "post faces", nms::faces_bytes());

        let k = kernels;
        let mut steps = vec![
            decode::step(
                ctx,
                &k.decode,
                levels,
                net_w,
                net_h,
                &run,
                raw,
                &candidates,
                &state,
            ),
            sort::step(ctx, &k.sort, n, &candidates, &keys, &sorted, &state, &args),
        ];
        steps.extend(nms::steps(
            ctx,
            &k.nms_mask,
            &k.nms_scan,
            &run,
            &sorted,
            &state,
            &mask,
            &faces,
            &args,
        ));
        Self {
            mode,
            run,
            state,
            faces,
            steps,
        }
    }

    /// The dispatches, to record after the network's in the image's compute pass.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Per-call settings: score threshold, NMS IoU threshold (strict or not, as the plan's
    /// [`PostMode`] says), and the factor from network-input pixels to output pixels
    /// (1 / resize factor) per axis.
    pub fn set_run(
        &self,
        queue: &wgpu::Queue,
        threshold: f32,
        nms_threshold: f32,
        scale: [f32; 2],
    ) {
        let p = RunParams::new(threshold, nms_threshold, scale, self.mode);
        queue.write_buffer(&self.run, 0, bytemuck::bytes_of(&p));
    }

    /// Clears the candidate counter; record before the compute pass of every run.
    pub fn reset(&self, encoder: &mut wgpu::CommandEncoder) {
        encoder.clear_buffer(&self.state, 0, None);
    }

    /// `[kept, candidates, top_k, 0]` as u32, then `kept` faces of 16 words, best first.
    pub fn faces_buffer(&self) -> &wgpu::Buffer {
        &self.faces
    }

    /// Bytes to read back from [`PostPlan::faces_buffer`] (header and 750 faces).
    pub fn faces_bytes(&self) -> u64 {
        nms::faces_bytes()
    }

    /// Decodes the bytes of [`PostPlan::faces_buffer`].
    pub fn parse_faces(bytes: &[u8]) -> Vec<RawFace> {
        let words: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let Some(&kept) = words.first() else {
            return Vec::new();
        };
        words
            .get(nms::HEADER_WORDS..)
            .unwrap_or(&[])
            .chunks_exact(CANDIDATE_WORDS)
            .take((kept as usize).min(nms::MAX_KEEP))
            .map(|w| Candidate::from_words(w).into())
            .collect()
    }
}

/// CPU reference of the whole stage, from the three ops' references.
pub fn cpu_postprocess(
    raw: &[f32],
    levels: [(u32, u32); 3],
    net_w: u32,
    net_h: u32,
    threshold: f32,
    nms_threshold: f32,
    scale: [f32; 2],
) -> Vec<RawFace> {
    cpu_postprocess_with(
        PostMode::Priors,
        raw,
        levels,
        (net_w, net_h),
        threshold,
        nms_threshold,
        scale,
    )
}

/// [`cpu_postprocess`] for either [`PostMode`].
pub fn cpu_postprocess_with(
    mode: PostMode,
    raw: &[f32],
    levels: [(u32, u32); 3],
    net: (u32, u32),
    threshold: f32,
    nms_threshold: f32,
    scale: [f32; 2],
) -> Vec<RawFace> {
    let candidates = decode::cpu_with(mode, raw, levels, net.0, net.1, threshold, scale);
    let sorted = sort::cpu(&candidates);
    nms::cpu_with(mode, &sorted, nms_threshold)
        .into_iter()
        .map(RawFace::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{read_buffer, upload_f32};
    use crate::ops::decode::RAW_ROW;
    use crate::ops::testutil::{ctx, Rng};

    /// One run as the detector does it: set_run, reset, one pass, read the faces back.
    fn run(
        plan: &PostPlan,
        threshold: f32,
        nms_threshold: f32,
        scale: [f32; 2],
    ) -> (Vec<u32>, Vec<RawFace>) {
        let ctx = ctx();
        plan.set_run(&ctx.queue, threshold, nms_threshold, scale);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        plan.reset(&mut encoder);
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for s in plan.steps() {
                s.record(&mut pass);
            }
        }
        ctx.queue.submit([encoder.finish()]);
        let bytes = read_buffer(ctx, plan.faces_buffer(), plan.faces_bytes()).unwrap();
        let header = bytes[..16]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (header, PostPlan::parse_faces(&bytes))
    }

    fn levels_of(w: u32, h: u32) -> [(u32, u32); 3] {
        decode::STRIDES.map(|s| (w.div_ceil(s), h.div_ceil(s)))
    }

    /// Same faces in the same order; coordinates within `px`, scores within `score_tol`.
    fn assert_faces(got: &[RawFace], want: &[RawFace], score_tol: f32, px: f32, what: &str) {
        let ids = |v: &[RawFace]| v.iter().map(|f| f.prior_index).collect::<Vec<_>>();
        assert_eq!(ids(got), ids(want), "{what}: kept anchors, in order");
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g.score - w.score).abs() <= score_tol,
                "{what}: {g:?} vs {w:?}"
            );
            let coords = |f: &RawFace| {
                f.bbox
                    .into_iter()
                    .chain(f.landmarks.into_iter().flatten())
                    .collect::<Vec<_>>()
            };
            for (a, b) in coords(g).iter().zip(coords(w)) {
                assert!((a - b).abs() <= px, "{what}: {g:?} vs {w:?}");
            }
        }
    }

    /// Rows whose boxes cluster into overlapping groups, so NMS has real work.
    fn random_raw(n: usize, face_bias: f32, seed: u64) -> Vec<f32> {
        let mut rng = Rng(seed);
        let mut raw = rng.vec(n * RAW_ROW);
        for row in raw.chunks_exact_mut(RAW_ROW) {
            row[0] *= 3.0;
            row[1] = row[1] * 3.0 + face_bias;
            for v in &mut row[2..] {
                *v *= 2.0;
            }
        }
        raw
    }

    #[test]
    fn postprocess_odd_size_matches_cpu_and_reruns() {
        for mode in [PostMode::Priors, PostMode::Anchors] {
            odd_size_matches_cpu_and_reruns(mode);
        }
    }

    fn odd_size_matches_cpu_and_reruns(mode: PostMode) {
        let ctx = ctx();
        let (w, h) = (37, 23);
        let levels = levels_of(w, h);
        assert_eq!(levels, [(5, 3), (3, 2), (2, 1)]);
        let n = decode::anchors(levels) as usize;
        let raw = random_raw(n, 0.0, 31);
        let raw_buf = upload_f32(ctx, "raw", &raw);
        let kernels = PostKernels::new(ctx);
        let plan = PostPlan::new(ctx, &kernels, mode, &raw_buf, levels, w, h);
        // The same plan, different per-run settings each time (uniform rewritten, counter reset).
        for (thr, nms_thr, scale) in [
            (0.5, 0.4, [1.0, 1.0]),
            (0.3, 0.2, [2.5, 0.75]),
            (0.9, 0.4, [1.0, 1.0]),
            (0.999_999, 0.4, [1.0, 1.0]),
            (0.5, 0.4, [1.0, 1.0]),
        ] {
            let (header, got) = run(&plan, thr, nms_thr, scale);
            let want = cpu_postprocess_with(mode, &raw, levels, (w, h), thr, nms_thr, scale);
            let cands = decode::cpu_with(mode, &raw, levels, w, h, thr, scale).len();
            let what = format!("{mode:?} thr {thr} nms {nms_thr} scale {scale:?}");
            assert_eq!(
                header[..3],
                [want.len() as u32, cands as u32, cands as u32],
                "{what}"
            );
            assert_faces(&got, &want, 1e-6, 1e-3, &what);
            if thr < 0.9 {
                assert!(
                    want.len() >= 3 && want.len() < cands,
                    "{what}: {} of {cands}",
                    want.len()
                );
            }
        }
    }

    #[test]
    fn postprocess_more_than_5000_candidates() {
        // 453x331: 57x42, 29x21, 15x11 cells, 6336 anchors, nearly all above 0.5; only the
        // best 5000 go to NMS, and the tiny boxes of stride 8 keep more than 750 apart.
        let ctx = ctx();
        let (w, h) = (453, 331);
        let levels = levels_of(w, h);
        let n = decode::anchors(levels) as usize;
        assert_eq!(n, 6336);
        let raw = random_raw(n, 6.0, 32);
        let raw_buf = upload_f32(ctx, "raw", &raw);
        let kernels = PostKernels::new(ctx);
        let plan = PostPlan::new(ctx, &kernels, PostMode::Priors, &raw_buf, levels, w, h);
        let (header, got) = run(&plan, 0.5, 0.4, [1.0, 1.0]);
        let cands = decode::cpu(&raw, levels, w, h, 0.5, [1.0, 1.0]).len();
        assert!(cands > 5000, "{cands}");
        let want = cpu_postprocess(&raw, levels, w, h, 0.5, 0.4, [1.0, 1.0]);
        assert_eq!(want.len(), nms::MAX_KEEP);
        assert_eq!(header[..3], [750, cands as u32, 5000]);
        assert_faces(&got, &want, 1e-6, 1e-3, "6336 anchors");
    }

    #[test]
    fn postprocess_no_candidates() {
        let ctx = ctx();
        let levels = levels_of(37, 23);
        let raw = random_raw(decode::anchors(levels) as usize, -20.0, 33);
        let raw_buf = upload_f32(ctx, "raw", &raw);
        let plan = PostPlan::new(
            ctx,
            &PostKernels::new(ctx),
            PostMode::Priors,
            &raw_buf,
            levels,
            37,
            23,
        );
        let (header, got) = run(&plan, 0.5, 0.4, [1.0, 1.0]);
        assert_eq!(header, [0, 0, 0, 0]);
        assert!(got.is_empty());
        assert!(cpu_postprocess(&raw, levels, 37, 23, 0.5, 0.4, [1.0, 1.0]).is_empty());
    }

    #[test]
    fn parse_faces_handles_short_and_garbage() {
        assert!(PostPlan::parse_faces(&[]).is_empty());
        // A kept count larger than the bytes hold is clamped to what is there.
        let mut words = vec![9u32, 0, 0, 0];
        let f = Candidate {
            score: 0.9,
            prior_index: 42,
            bbox: [1.0, 2.0, 3.0, 4.0],
            landmarks: [[5.0, 6.0]; 5],
        };
        words.extend(f.to_words());
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(PostPlan::parse_faces(&bytes), vec![RawFace::from(f)]);
    }

    fn testdata() -> std::path::PathBuf {
        std::env::var_os("RETINAFACE_TESTDATA")
            .map(Into::into)
            .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata").into())
    }

    fn f32s(t: &safetensors::tensor::TensorView<'_>) -> Vec<f32> {
        t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    /// Golden: `test_raw.safetensors` holds the reference network's outputs for a 640x640
    /// input (worlds_largest_selfie.jpg resized), `test_640x640.json` the reference's
    /// detections for it (numpy/onnxruntime, threshold 0.5, NMS 0.4, float32); see
    /// shared/testdata/golden/README.md.
    #[test]
    fn postprocess_golden_640x640() {
        let dir = testdata().join("golden");
        let path = dir.join("test_raw.safetensors");
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (set RETINAFACE_TESTDATA)", path.display()));
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let loc = f32s(&st.tensor("loc").unwrap());
        let conf = f32s(&st.tensor("conf").unwrap());
        let landms = f32s(&st.tensor("landms").unwrap());
        let n = 16800;
        assert_eq!(
            (loc.len(), conf.len(), landms.len()),
            (n * 4, n * 2, n * 10)
        );
        // conf holds probabilities; logits ln(p) give them back through the softmax.
        let mut raw = Vec::with_capacity(n * RAW_ROW);
        for a in 0..n {
            raw.extend([conf[2 * a].ln(), conf[2 * a + 1].ln()]);
            raw.extend(&loc[4 * a..4 * a + 4]);
            raw.extend(&landms[10 * a..10 * a + 10]);
        }

        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("test_640x640.json")).unwrap()).unwrap();
        let num = |v: &serde_json::Value| v.as_f64().unwrap() as f32;
        let want: Vec<RawFace> = json["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let b = d["box"].as_array().unwrap();
                let l = d["landmarks"].as_array().unwrap();
                RawFace {
                    score: num(&d["score"]),
                    prior_index: d["prior_index"].as_u64().unwrap() as u32,
                    bbox: std::array::from_fn(|k| num(&b[k])),
                    landmarks: std::array::from_fn(|k| {
                        let p = l[k].as_array().unwrap();
                        [num(&p[0]), num(&p[1])]
                    }),
                }
            })
            .collect();
        assert_eq!(
            want.len(),
            json["num_detections"].as_u64().unwrap() as usize
        );
        assert_eq!(want.len(), 24);

        let ctx = ctx();
        let levels = levels_of(640, 640);
        let raw_buf = upload_f32(ctx, "raw", &raw);
        let plan = PostPlan::new(
            ctx,
            &PostKernels::new(ctx),
            PostMode::Priors,
            &raw_buf,
            levels,
            640,
            640,
        );
        let (header, got) = run(&plan, 0.5, 0.4, [1.0, 1.0]);
        let above = json["decision_margins"]["num_candidates_above_conf_threshold"]
            .as_u64()
            .unwrap() as u32;
        assert_eq!(header[..3], [24, above, above]);
        assert_faces(&got, &want, 1e-5, 0.01, "golden GPU");
        let cpu = cpu_postprocess(&raw, levels, 640, 640, 0.5, 0.4, [1.0, 1.0]);
        assert_faces(&cpu, &want, 1e-5, 0.01, "golden CPU reference");
    }
}

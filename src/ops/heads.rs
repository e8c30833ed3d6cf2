//! Host side of `shaders/heads.wgsl`: class, box and landmark 1x1 heads of one level, written
//! as 16 raw floats per anchor in the reference's anchor order.

use std::sync::Arc;

use super::{conv::PackedAt, div_ceil, Kernel, Slot, Step, Workgroups};
use crate::gpu::GpuContext;

pub const SOURCE: &str = include_str!("../../shaders/heads.wgsl");

pub const ANCHORS: usize = 2;
/// Raw outputs per anchor: 2 class logits, 4 box deltas, 10 landmark deltas.
pub const ROW: usize = 16;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    width: u32,
    height: u32,
    in_c4: u32,
    row_offset: u32,
    w_offset: u32,
    b_offset: u32,
    grid_x: u32,
    px0: u32,
    px_end: u32,
    src_base: u32,
    _pad: [u32; 2],
}

/// PyTorch-layout weights of one level's three heads (`ClassHead.l`, `BboxHead.l`,
/// `LandmarkHead.l`): `[2*k][in_c]` weights and `[2*k]` biases, k = 2, 4, 10.
pub struct HeadWeights<'a> {
    pub cls: (&'a [f32], &'a [f32]),
    pub bbox: (&'a [f32], &'a [f32]),
    pub landm: (&'a [f32], &'a [f32]),
    /// Score rows ordered `[bg a0, bg a1, face a0, face a1]` (retina-face's net3) instead of
    /// `[bg a0, face a0, bg a1, face a1]` (Pytorch_Retinaface).
    pub class_major: bool,
}

impl HeadWeights<'_> {
    /// Output `o` (0..16) of anchor `a`: its weight row and bias in the PyTorch tensors.
    fn source(&self, a: usize, o: usize) -> (&[f32], f32, usize) {
        let (t, k, j) = match o {
            0..2 => (&self.cls, 2, o),
            2..6 => (&self.bbox, 4, o - 2),
            _ => (&self.landm, 10, o - 6),
        };
        let row = if o < 2 && self.class_major {
            j * ANCHORS + a
        } else {
            a * k + j
        };
        (t.0, t.1[row], row)
    }

    /// `[ci][anchor][16]` weights followed by `[anchor][16]` biases.
    pub fn pack(&self, in_c: usize) -> (Vec<f32>, Vec<f32>) {
        let mut w = vec![0f32; in_c * ANCHORS * ROW];
        let mut b = vec![0f32; ANCHORS * ROW];
        for a in 0..ANCHORS {
            for o in 0..ROW {
                let (rows, bias, r) = self.source(a, o);
                b[a * ROW + o] = bias;
                for ci in 0..in_c {
                    w[(ci * ANCHORS + a) * ROW + o] = rows[r * in_c + ci];
                }
            }
        }
        (w, b)
    }
}

pub(crate) fn kernel(ctx: &GpuContext) -> Arc<Kernel> {
    Kernel::new(
        ctx,
        "heads",
        SOURCE,
        "main",
        &[Slot::Uniform, Slot::Read, Slot::Read, Slot::ReadWrite],
    )
}

/// The parameters and workgroups of the heads over input rows `y0..y1`.
fn params(
    size: (u32, u32),
    in_c: u32,
    row_offset: u32,
    at: PackedAt,
    (y0, y1): (u32, u32),
    src_base: u32,
) -> (Params, [u32; 3]) {
    debug_assert!(
        in_c.is_multiple_of(4),
        "head input channels must be a multiple of 4"
    );
    let groups = div_ceil(size.0 * (y1 - y0), 64);
    let (gx, gy) = super::grid_2d(groups);
    let params = Params {
        width: size.0,
        height: size.1,
        in_c4: in_c / 4,
        row_offset,
        w_offset: (at.weights / 4) as u32,
        b_offset: (at.bias / 4) as u32,
        grid_x: gx * 64,
        px0: y0 * size.0,
        px_end: y1 * size.0,
        src_base,
        _pad: [0; 2],
    };
    (params, [gx, gy, 1])
}

/// One level's heads; `row_offset` is the number of anchors of the finer levels.
#[allow(clippy::too_many_arguments)]
pub(crate) fn step(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    label: &str,
    size: (u32, u32),
    in_c: u32,
    row_offset: u32,
    src: &wgpu::Buffer,
    weights: &wgpu::Buffer,
    at: PackedAt,
    raw: &wgpu::Buffer,
) -> Step {
    let (params, workgroups) = params(size, in_c, row_offset, at, (0, size.1), 0);
    Step::with_uniform(
        ctx,
        kernel,
        label,
        &params,
        &[src, weights, raw],
        Workgroups::Direct(workgroups),
    )
}

/// The heads over bands of rows of their input, bound as windows (see [`super::band`]); the
/// raw outputs are bound whole (decode reads them whole, so they must fit a binding).
#[allow(clippy::too_many_arguments)]
pub(crate) fn banded_steps(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    limits: &super::band::BindLimits,
    label: &str,
    size: (u32, u32),
    in_c: u32,
    row_offset: u32,
    src: &wgpu::Buffer,
    weights: &wgpu::Buffer,
    at: PackedAt,
    raw: &wgpu::Buffer,
) -> Option<Vec<Step>> {
    let row = size.0 as u64 * in_c as u64 * 4;
    super::band::steps(
        ctx,
        kernel,
        limits,
        label,
        size.1,
        &[src, weights, raw],
        |y0, y1| vec![Some((y0 as u64 * row, y1 as u64 * row)), None, None],
        |y0, y1, off| params(size, in_c, row_offset, at, (y0, y1), (off[0] / 16) as u32),
    )
}

/// CPU reference: the level's raw rows (`w*h*2` rows of 16 floats).
pub fn cpu(size: (u32, u32), in_c: usize, src: &[f32], hw: &HeadWeights<'_>) -> Vec<f32> {
    let pixels = (size.0 * size.1) as usize;
    let mut out = vec![0f32; pixels * ANCHORS * ROW];
    for px in 0..pixels {
        let x = &src[px * in_c..(px + 1) * in_c];
        for a in 0..ANCHORS {
            for o in 0..ROW {
                let (rows, bias, r) = hw.source(a, o);
                let dot: f64 = x
                    .iter()
                    .zip(&rows[r * in_c..(r + 1) * in_c])
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum();
                out[(px * ANCHORS + a) * ROW + o] = (dot + bias as f64) as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{download_f32, upload_f32};
    use crate::ops::run_steps;
    use crate::ops::testutil::{assert_close, ctx, Rng};

    #[test]
    fn class_major_scores_pair_background_and_face_per_anchor() {
        // Score rows r0..r3 with weight 10 + r (input channel 0) and bias 20 + r.
        let cls_w: Vec<f32> = (0..4).map(|r| 10.0 + r as f32).collect();
        let cls_b: Vec<f32> = (0..4).map(|r| 20.0 + r as f32).collect();
        let (bw, bb, lw, lb) = (vec![0.0; 8], vec![0.0; 8], vec![0.0; 20], vec![0.0; 20]);
        for (class_major, pairs) in [(false, [[0, 1], [2, 3]]), (true, [[0, 2], [1, 3]])] {
            let hw = HeadWeights {
                cls: (&cls_w, &cls_b),
                bbox: (&bw, &bb),
                landm: (&lw, &lb),
                class_major,
            };
            let (w, b) = hw.pack(1);
            for (a, [bg, face]) in pairs.into_iter().enumerate() {
                assert_eq!(
                    [w[a * ROW], w[a * ROW + 1]],
                    [10.0 + bg as f32, 10.0 + face as f32]
                );
                assert_eq!(
                    [b[a * ROW], b[a * ROW + 1]],
                    [20.0 + bg as f32, 20.0 + face as f32]
                );
            }
        }
    }

    #[test]
    fn heads_match_cpu_with_row_offset() {
        let ctx = ctx();
        let mut rng = Rng(31);
        let (size, in_c, offset) = ((7u32, 5u32), 12usize, 3u32);
        let src = rng.vec((size.0 * size.1) as usize * in_c);
        let t: Vec<Vec<f32>> = [4, 8, 20]
            .iter()
            .flat_map(|k| [rng.vec(k * in_c), rng.vec(*k)])
            .collect();
        let hw = HeadWeights {
            cls: (&t[0], &t[1]),
            bbox: (&t[2], &t[3]),
            landm: (&t[4], &t[5]),
            class_major: false,
        };
        let (w, b) = hw.pack(in_c);
        let mut arena = vec![0f32; 4];
        let wat = arena.len();
        arena.extend(&w);
        let bat = arena.len();
        arena.extend(&b);
        let rows = offset as usize + (size.0 * size.1) as usize * ANCHORS;
        let (sb, wb) = (upload_f32(ctx, "s", &src), upload_f32(ctx, "w", &arena));
        let rb = upload_f32(ctx, "raw", &vec![-9.0; rows * ROW]);
        let at = PackedAt {
            weights: wat,
            bias: bat,
        };
        run_steps(
            ctx,
            &[step(
                ctx,
                &kernel(ctx),
                "heads",
                size,
                in_c as u32,
                offset,
                &sb,
                &wb,
                at,
                &rb,
            )],
        );
        let gpu = download_f32(ctx, &rb, rows * ROW).unwrap();
        assert!(
            gpu[..offset as usize * ROW].iter().all(|v| *v == -9.0),
            "wrote into a finer level's rows"
        );
        assert_close(
            &gpu[offset as usize * ROW..],
            &cpu(size, in_c, &src, &hw),
            1e-5,
            "heads",
        );
    }
}

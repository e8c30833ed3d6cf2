//! The whole network in plain Rust on the CPU, op by op over the same [`Graph`] the GPU plan
//! runs, with each op's CPU reference (`crate::ops::*::cpu`: f64 accumulation, f32 tensors).
//! Slow and simple on purpose: tests compare the GPU's feature maps and head outputs with it,
//! for ResNet50 (whose pretrained weights are not available offline, so with random weights of
//! the right names and shapes, [`random_state_dict`]) and for MobileNet0.25 at odd sizes.

use std::collections::HashMap;

use super::arch::{Graph, Model, Op};
use super::weights::{Tensor, Weights};
use crate::ops::{add_relu, affine, conv, depthwise, heads, maxpool, upsample_add};

/// Every tensor of the graph (channels-last, `w * h * c` floats) and the raw head outputs
/// (16 floats per anchor), as the GPU plan's buffers hold them.
pub struct Forward {
    pub graph: Graph,
    pub tensors: Vec<Vec<f32>>,
    pub raw: Vec<f32>,
}

impl Forward {
    /// A named tensor of the graph (`body.layer2`, `fpn.out1`, `ssh3`, ...).
    pub fn tensor(&self, name: &str) -> Option<&[f32]> {
        self.graph.find(name).map(|i| self.tensors[i].as_slice())
    }
}

/// Runs `w`'s network on a `net_w x net_h` input given as BGR minus the mean, channels-last
/// (`w * h * 3` floats), the layout [`crate::Detector::forward_tensors`] takes.
pub fn forward(w: &Weights, net_w: u32, net_h: u32, input_bgr: &[f32]) -> Forward {
    let graph = Graph::for_model(w.model, net_w, net_h);
    let mut tensors: Vec<Vec<f32>> = graph
        .tensors
        .iter()
        .map(|t| vec![0f32; (t.w * t.h * t.c) as usize])
        .collect();
    // The input tensor may carry more channels than B, G, R (zeros, for vec4 loads).
    let c0 = graph.tensors[0].c as usize;
    for (px, bgr) in input_bgr.chunks_exact(3).enumerate() {
        tensors[0][px * c0..px * c0 + 3].copy_from_slice(bgr);
    }
    let mut raw = vec![0f32; graph.anchors as usize * heads::ROW];
    for op in &graph.ops {
        match op {
            Op::Conv {
                layer,
                shape,
                src,
                dst,
                offset,
            } => {
                let f = w.conv(layer);
                let weight = pad_input_channels(&f.weight, layer.out_c, layer.in_c, shape);
                let out = conv::cpu(*shape, layer.act, &tensors[*src], &weight, &f.bias);
                let stride = graph.tensors[*dst].c as usize;
                let oc = shape.out_c as usize;
                let d = &mut tensors[*dst];
                for (px, v) in out.chunks_exact(oc).enumerate() {
                    let at = px * stride + *offset as usize;
                    d[at..at + oc].copy_from_slice(v);
                }
            }
            Op::Depthwise {
                layer,
                shape,
                src,
                dst,
            } => {
                let f = w.conv(layer);
                tensors[*dst] =
                    depthwise::cpu(*shape, layer.act, &tensors[*src], &f.weight, &f.bias);
            }
            Op::UpsampleAdd {
                shape,
                coarse,
                fine,
            } => {
                let c = tensors[*coarse].clone();
                upsample_add::cpu(*shape, &c, &mut tensors[*fine]);
            }
            Op::MaxPool { shape, src, dst } => {
                tensors[*dst] = maxpool::cpu(*shape, &tensors[*src]);
            }
            Op::AddRelu { identity, x, relu } => {
                let id = tensors[*identity].clone();
                add_relu::cpu(&id, &mut tensors[*x], *relu);
            }
            Op::Affine { layer, src, dst } => {
                let (scale, shift) = &w.affines[&layer.name];
                let c = graph.tensors[*dst].c as usize;
                let pad = |v: &[f32]| {
                    let mut v = v.to_vec();
                    v.resize(c, 0.0);
                    v
                };
                tensors[*dst] = affine::cpu(&tensors[*src], &pad(scale), &pad(shift), layer.relu);
            }
            Op::Heads {
                level,
                src,
                size,
                row_offset,
            } => {
                let in_c = graph.tensors[*src].c as usize;
                let rows = heads::cpu(*size, in_c, &tensors[*src], &w.head(*level));
                let at = *row_offset as usize * heads::ROW;
                raw[at..at + rows.len()].copy_from_slice(&rows);
            }
        }
    }
    Forward {
        graph,
        tensors,
        raw,
    }
}

/// PyTorch-layout weights `[co][in_c][k][k]` widened with zeros to the graph's input channels
/// (the network input has a zero fourth channel).
fn pad_input_channels(w: &[f32], out_c: usize, in_c: usize, shape: &conv::ConvShape) -> Vec<f32> {
    let (wide, kk) = (shape.in_c as usize, (shape.ksize * shape.ksize) as usize);
    if wide == in_c {
        return w.to_vec();
    }
    let mut out = vec![0f32; out_c * wide * kk];
    for co in 0..out_c {
        for ci in 0..in_c {
            let from = (co * in_c + ci) * kk;
            let to = (co * wide + ci) * kk;
            out[to..to + kk].copy_from_slice(&w[from..from + kk]);
        }
    }
    out
}

/// A state dict of `model`'s names and shapes filled with reproducible random values, scaled
/// so activations keep a magnitude near 1 through ResNet50's 50+ layers: convolution weights
/// uniform with variance 2 / fan-in (He), batch norms near identity, the residual branches'
/// last batch norm damped so the 16 joins do not blow up, and the heads damped so that on
/// inputs of pixel magnitude (~100) their outputs stay within a few units: box sizes of
/// `exp(0.2 * delta)` priors, which decode and NMS can be checked on.
#[doc(hidden)]
pub fn random_state_dict(model: Model, seed: u64) -> HashMap<String, Result<Tensor, String>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move |lo: f32, hi: f32| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        lo + (hi - lo) * ((state >> 40) as f32 / (1u64 << 24) as f32)
    };
    let mut out = HashMap::new();
    for (name, shape) in model.expected_tensors() {
        let n: usize = shape.iter().product();
        let fan_in: usize = shape[1..].iter().product::<usize>().max(1);
        let residual_last = name.contains(".bn3.") || name.contains(".downsample.1.");
        let (lo, hi) = if name.ends_with("running_var") {
            (0.5, 1.5)
        } else if name.ends_with("running_mean") || name.ends_with("bias") {
            (-0.1, 0.1)
        } else if shape.len() == 1 && residual_last {
            (0.2, 0.5)
        } else if shape.len() == 1 {
            (0.8, 1.2)
        } else if name.contains("Head") {
            let a = 0.02 * (3.0 / fan_in as f32).sqrt();
            (-a, a)
        } else {
            let a = (6.0 / fan_in as f32).sqrt();
            (-a, a)
        };
        let data = (0..n).map(|_| uniform(lo, hi)).collect();
        out.insert(name, Ok(Tensor { shape, data }));
    }
    out
}

//! The RetinaFace-MobileNet0.25 network (biubug6 Pytorch_Retinaface `cfg_mnet`): its layers,
//! and the graph of operations for one input size, shared by the GPU plan and the CPU forward.

use crate::ops::conv::ConvShape;
use crate::ops::depthwise::DwShape;
use crate::ops::upsample_add::UpShape;
use crate::ops::Activation;

/// Channels of the FPN/SSH features that the heads read.
pub const HEAD_IN: usize = 64;
pub const STRIDES: [u32; 3] = [8, 16, 32];
pub const MIN_SIZES: [[f32; 2]; 3] = [[16.0, 32.0], [64.0, 128.0], [256.0, 512.0]];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    Dense,
    Depthwise,
}

/// One convolution + batch norm of the state dict.
#[derive(Clone, Debug)]
pub struct ConvLayer {
    /// Our name for the layer (the state-dict prefix of its conv).
    pub name: String,
    /// Prefix of the conv weight and of the batch norm in the state dict.
    pub conv: String,
    pub bn: String,
    pub kind: LayerKind,
    pub in_c: usize,
    pub out_c: usize,
    pub k: usize,
    pub stride: u32,
    pub act: Activation,
}

#[allow(clippy::too_many_arguments)]
fn layer(
    conv: String,
    bn: String,
    kind: LayerKind,
    in_c: usize,
    out_c: usize,
    k: usize,
    stride: u32,
    act: Activation,
) -> ConvLayer {
    ConvLayer {
        name: conv.clone(),
        conv,
        bn,
        kind,
        in_c,
        out_c,
        k,
        stride,
        act,
    }
}

/// conv_bn / conv_bn_no_relu / conv_bn1X1: conv at `.0`, batch norm at `.1`.
fn conv_bn(
    prefix: &str,
    in_c: usize,
    out_c: usize,
    k: usize,
    stride: u32,
    act: Activation,
) -> ConvLayer {
    layer(
        format!("{prefix}.0"),
        format!("{prefix}.1"),
        LayerKind::Dense,
        in_c,
        out_c,
        k,
        stride,
        act,
    )
}

/// conv_dw: depthwise at `.0`/`.1`, pointwise at `.3`/`.4`, both LeakyReLU(0.1).
fn conv_dw(prefix: &str, in_c: usize, out_c: usize, stride: u32) -> [ConvLayer; 2] {
    [
        layer(
            format!("{prefix}.0"),
            format!("{prefix}.1"),
            LayerKind::Depthwise,
            in_c,
            in_c,
            3,
            stride,
            Activation::Leaky,
        ),
        layer(
            format!("{prefix}.3"),
            format!("{prefix}.4"),
            LayerKind::Dense,
            in_c,
            out_c,
            1,
            1,
            Activation::Leaky,
        ),
    ]
}

/// A backbone stage: its state-dict prefix and its conv_dw blocks as (in, out, stride).
type Stage = (&'static str, &'static [(usize, usize, u32)]);

const STAGES: [Stage; 3] = [
    (
        "body.stage1",
        &[
            (8, 16, 1),
            (16, 32, 2),
            (32, 32, 1),
            (32, 64, 2),
            (64, 64, 1),
        ],
    ),
    (
        "body.stage2",
        &[
            (64, 128, 2),
            (128, 128, 1),
            (128, 128, 1),
            (128, 128, 1),
            (128, 128, 1),
            (128, 128, 1),
        ],
    ),
    ("body.stage3", &[(128, 256, 2), (256, 256, 1)]),
];

/// Every convolution of the network, in execution order.
pub fn conv_layers() -> Vec<ConvLayer> {
    let mut out = vec![conv_bn("body.stage1.0", 3, 8, 3, 2, Activation::Leaky)];
    for (stage, blocks) in STAGES {
        // stage1's block 0 is the stem conv above; its dw blocks start at index 1.
        let first = if stage == "body.stage1" { 1 } else { 0 };
        for (i, (cin, cout, s)) in blocks.iter().enumerate() {
            out.extend(conv_dw(&format!("{stage}.{}", i + first), *cin, *cout, *s));
        }
    }
    for (i, cin) in [64, 128, 256].into_iter().enumerate() {
        out.push(conv_bn(
            &format!("fpn.output{}", i + 1),
            cin,
            64,
            1,
            1,
            Activation::Leaky,
        ));
    }
    out.push(conv_bn("fpn.merge2", 64, 64, 3, 1, Activation::Leaky));
    out.push(conv_bn("fpn.merge1", 64, 64, 3, 1, Activation::Leaky));
    for l in 1..=3 {
        out.extend(ssh_layers(l));
    }
    out
}

/// SSH's five convolutions. The ReLU after the concat is applied by each branch's last conv:
/// relu(concat(a, b, c)) = concat(relu(a), relu(b), relu(c)).
fn ssh_layers(level: usize) -> [ConvLayer; 5] {
    let p = format!("ssh{level}");
    [
        conv_bn(&format!("{p}.conv3X3"), 64, 32, 3, 1, Activation::Relu),
        conv_bn(&format!("{p}.conv5X5_1"), 64, 16, 3, 1, Activation::Leaky),
        conv_bn(&format!("{p}.conv5X5_2"), 16, 16, 3, 1, Activation::Relu),
        conv_bn(&format!("{p}.conv7X7_2"), 16, 16, 3, 1, Activation::Leaky),
        conv_bn(&format!("{p}.conv7x7_3"), 16, 16, 3, 1, Activation::Relu),
    ]
}

/// A tensor of the graph: channels-last `w x h x c` f32.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    pub w: u32,
    pub h: u32,
    pub c: u32,
}

impl TensorInfo {
    pub fn bytes(&self) -> u64 {
        self.w as u64 * self.h as u64 * self.c as u64 * 4
    }
}

pub type TensorId = usize;

#[derive(Clone, Debug)]
pub enum Op {
    Conv {
        layer: ConvLayer,
        shape: ConvShape,
        src: TensorId,
        dst: TensorId,
        /// First output channel in `dst` (SSH branches share one tensor).
        offset: u32,
    },
    Depthwise {
        layer: ConvLayer,
        shape: DwShape,
        src: TensorId,
        dst: TensorId,
    },
    UpsampleAdd {
        shape: UpShape,
        coarse: TensorId,
        fine: TensorId,
    },
    Heads {
        level: usize,
        src: TensorId,
        size: (u32, u32),
        row_offset: u32,
    },
}

/// Every tensor and operation for one network input size. Tensor 0 is the network input.
#[derive(Clone, Debug)]
pub struct Graph {
    pub tensors: Vec<TensorInfo>,
    pub ops: Vec<Op>,
    pub levels: [(u32, u32); 3],
    pub anchors: u32,
}

impl Graph {
    pub fn new(net_w: u32, net_h: u32) -> Self {
        let mut g = Builder {
            tensors: vec![TensorInfo {
                name: "input".into(),
                w: net_w,
                h: net_h,
                c: 3,
            }],
            ops: Vec::new(),
        };
        let layers = conv_layers();
        let by_name = |n: &str| layers.iter().find(|l| l.name == n).unwrap().clone();
        let mut x = 0;
        let mut taps = Vec::new();
        for l in layers.iter().filter(|l| l.name.starts_with("body.")) {
            x = g.layer(l, x, None);
            // The last layer of each stage feeds the FPN.
            if ["body.stage1.5.3", "body.stage2.5.3", "body.stage3.1.3"].contains(&l.name.as_str())
            {
                g.tensors[x].name = l.name[..11].to_string();
                taps.push(x);
            }
        }
        let lat: Vec<TensorId> = (0..3)
            .map(|i| g.layer(&by_name(&format!("fpn.output{}.0", i + 1)), taps[i], None))
            .collect();
        g.tensors[lat[2]].name = "fpn.out3".into();
        g.up_add(lat[2], lat[1]);
        let out2 = g.layer(&by_name("fpn.merge2.0"), lat[1], None);
        g.tensors[out2].name = "fpn.out2".into();
        g.up_add(out2, lat[0]);
        let out1 = g.layer(&by_name("fpn.merge1.0"), lat[0], None);
        g.tensors[out1].name = "fpn.out1".into();
        let mut levels = [(0, 0); 3];
        let mut rows = 0;
        for (i, feat) in [out1, out2, lat[2]].into_iter().enumerate() {
            let t = &g.tensors[feat];
            let (w, h) = (t.w, t.h);
            let ssh = g.tensor(format!("ssh{}", i + 1), w, h, 64);
            let l: Vec<ConvLayer> = ssh_layers(i + 1).into();
            g.layer(&l[0], feat, Some((ssh, 0)));
            let c5 = g.layer(&l[1], feat, None);
            g.layer(&l[2], c5, Some((ssh, 32)));
            let c7 = g.layer(&l[3], c5, None);
            g.layer(&l[4], c7, Some((ssh, 48)));
            g.ops.push(Op::Heads {
                level: i,
                src: ssh,
                size: (w, h),
                row_offset: rows,
            });
            levels[i] = (w, h);
            rows += w * h * 2;
        }
        Graph {
            tensors: g.tensors,
            ops: g.ops,
            levels,
            anchors: rows,
        }
    }

    pub fn find(&self, name: &str) -> Option<TensorId> {
        self.tensors.iter().position(|t| t.name == name)
    }
}

struct Builder {
    tensors: Vec<TensorInfo>,
    ops: Vec<Op>,
}

impl Builder {
    fn tensor(&mut self, name: String, w: u32, h: u32, c: u32) -> TensorId {
        self.tensors.push(TensorInfo { name, w, h, c });
        self.tensors.len() - 1
    }

    /// Applies `l` to `src`, into a new tensor or into `(tensor, channel offset)`.
    fn layer(&mut self, l: &ConvLayer, src: TensorId, into: Option<(TensorId, u32)>) -> TensorId {
        let s = self.tensors[src].clone();
        match l.kind {
            LayerKind::Depthwise => {
                let shape = DwShape {
                    in_w: s.w,
                    in_h: s.h,
                    channels: s.c,
                    stride: l.stride,
                };
                let dst = self.tensor(l.name.clone(), shape.out_w(), shape.out_h(), s.c);
                self.ops.push(Op::Depthwise {
                    layer: l.clone(),
                    shape,
                    src,
                    dst,
                });
                dst
            }
            LayerKind::Dense => {
                let shape = ConvShape {
                    in_w: s.w,
                    in_h: s.h,
                    in_c: s.c,
                    out_c: l.out_c as u32,
                    ksize: l.k as u32,
                    stride: l.stride,
                };
                let (dst, offset) = into.unwrap_or_else(|| {
                    (
                        self.tensor(l.name.clone(), shape.out_w(), shape.out_h(), l.out_c as u32),
                        0,
                    )
                });
                self.ops.push(Op::Conv {
                    layer: l.clone(),
                    shape,
                    src,
                    dst,
                    offset,
                });
                dst
            }
        }
    }

    fn up_add(&mut self, coarse: TensorId, fine: TensorId) {
        let (c, f) = (&self.tensors[coarse], &self.tensors[fine]);
        let shape = UpShape {
            fine: (f.w, f.h),
            coarse: (c.w, c.h),
            channels: f.c,
        };
        self.ops.push(Op::UpsampleAdd {
            shape,
            coarse,
            fine,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_shapes_at_640() {
        let g = Graph::new(640, 640);
        assert_eq!(g.anchors, 16800);
        assert_eq!(g.levels, [(80, 80), (40, 40), (20, 20)]);
        let t = |n: &str| {
            let t = &g.tensors[g.find(n).unwrap()];
            (t.w, t.h, t.c)
        };
        assert_eq!(t("body.stage1"), (80, 80, 64));
        assert_eq!(t("body.stage2"), (40, 40, 128));
        assert_eq!(t("body.stage3"), (20, 20, 256));
        assert_eq!(t("ssh3"), (20, 20, 64));
    }

    #[test]
    fn odd_sizes_follow_ceil() {
        // The golden README: N = 59500 at 1600x898, 26240 at 1024x624.
        assert_eq!(Graph::new(1600, 898).anchors, 59500);
        assert_eq!(Graph::new(1024, 624).anchors, 26240);
        assert_eq!(Graph::new(1, 1).levels, [(1, 1), (1, 1), (1, 1)]);
    }
}

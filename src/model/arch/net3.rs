//! retina-face's network (insightface RetinaFace-R50, "net3"; spec: shared/specs/
//! retinaface_r50_net3.md): a pre-activation ResNet-50 on raw RGB whose batch norms before a
//! ReLU and a conv run as [`Op::Affine`], the neck (`ssh_c*`) with top-left-cropped nearest
//! upsampling, SSH modules with 512 output channels, and 1x1 heads. Names are the state-dict
//! names of the package's PyTorch port (spec §6.3), which [`super::super::h5`] produces from
//! the Keras file.

use super::{
    AffineLayer, Builder, ConvLayer, Graph, LayerKind, Op, PoolShape, TensorId, TensorInfo,
};
use crate::ops::Activation;

/// Stages: (units, width m); the unit output is 4m; unit 1 of stages 2-4 has stride 2.
const STAGES: [(usize, usize); 4] = [(3, 64), (4, 128), (6, 256), (3, 512)];

#[allow(clippy::too_many_arguments)]
fn conv(
    name: String,
    bn: Option<String>,
    bias: bool,
    in_c: usize,
    out_c: usize,
    k: usize,
    stride: u32,
    act: Activation,
) -> ConvLayer {
    ConvLayer {
        name: name.clone(),
        conv: name,
        bn,
        bias,
        kind: LayerKind::Dense,
        in_c,
        out_c,
        k,
        stride,
        act,
    }
}

/// A neck or SSH conv: bias, then its `_bn` batch norm.
fn neck_conv(name: &str, bn: &str, in_c: usize, out_c: usize, k: usize) -> ConvLayer {
    conv(
        name.into(),
        Some(bn.into()),
        true,
        in_c,
        out_c,
        k,
        1,
        // Every neck conv ends in a ReLU; the SSH branches without one get the ReLU after
        // the concat instead: relu(concat(a, b, c)) = concat(relu(a), relu(b), relu(c)).
        Activation::Relu,
    )
}

fn unit_prefix(stage: usize, unit: usize) -> String {
    format!("stage{stage}.unit{unit}")
}

fn unit_stride(stage: usize, unit: usize) -> u32 {
    if stage > 1 && unit == 1 {
        2
    } else {
        1
    }
}

fn unit_in(stage: usize, unit: usize) -> usize {
    match (stage, unit) {
        (1, 1) => 64,
        (s, 1) => STAGES[s - 2].1 * 4,
        (s, _) => STAGES[s - 1].1 * 4,
    }
}

pub(super) fn conv_layers() -> Vec<ConvLayer> {
    let mut out = vec![conv(
        "conv0".into(),
        Some("bn0".into()),
        false,
        3,
        64,
        7,
        2,
        Activation::Relu,
    )];
    for (si, (units, m)) in STAGES.into_iter().enumerate() {
        let stage = si + 1;
        for unit in 1..=units {
            let p = unit_prefix(stage, unit);
            let (c_in, st) = (unit_in(stage, unit), unit_stride(stage, unit));
            let relu = Activation::Relu;
            out.push(conv(
                format!("{p}.conv1"),
                Some(format!("{p}.bn2")),
                false,
                c_in,
                m,
                1,
                1,
                relu,
            ));
            out.push(conv(
                format!("{p}.conv2"),
                Some(format!("{p}.bn3")),
                false,
                m,
                m,
                3,
                st,
                relu,
            ));
            out.push(conv(
                format!("{p}.conv3"),
                None,
                false,
                m,
                4 * m,
                1,
                1,
                Activation::None,
            ));
            if unit == 1 {
                out.push(conv(
                    format!("{p}.sc"),
                    None,
                    false,
                    c_in,
                    4 * m,
                    1,
                    st,
                    Activation::None,
                ));
            }
        }
    }
    out.push(neck_conv(
        "ssh_c3_lateral",
        "ssh_c3_lateral_bn",
        2048,
        256,
        1,
    ));
    out.push(neck_conv(
        "ssh_c2_lateral",
        "ssh_c2_lateral_bn",
        512,
        256,
        1,
    ));
    out.push(neck_conv("ssh_c2_aggr", "ssh_c2_aggr_bn", 256, 256, 3));
    out.push(neck_conv(
        "ssh_m1_red_conv",
        "ssh_m1_red_conv_bn",
        256,
        256,
        1,
    ));
    out.push(neck_conv("ssh_c1_aggr", "ssh_c1_aggr_bn", 256, 256, 3));
    for k in 1..=3 {
        out.extend(ssh_layers(k));
    }
    out
}

/// SSH module `k` (1: stride 8, 2: 16, 3: 32): conv1, context_conv1, context_conv2,
/// context_conv3_1, context_conv3_2.
fn ssh_layers(k: usize) -> [ConvLayer; 5] {
    let q = format!("ssh_m{k}_det");
    let c = |n: &str, i: usize, o: usize| {
        neck_conv(&format!("{q}.{n}"), &format!("{q}.{n}_bn"), i, o, 3)
    };
    [
        c("conv1", 256, 256),
        c("context_conv1", 256, 128),
        c("context_conv2", 128, 128),
        c("context_conv3_1", 128, 128),
        c("context_conv3_2", 128, 128),
    ]
}

fn affine(bn: String, channels: usize, relu: bool) -> AffineLayer {
    AffineLayer {
        name: bn.clone(),
        bn,
        channels,
        relu,
    }
}

pub(super) fn affine_layers() -> Vec<AffineLayer> {
    // bn_data normalises the raw pixels before conv0's zero padding: no ReLU.
    let mut out = vec![affine("bn_data".into(), 3, false)];
    for (si, (units, _)) in STAGES.into_iter().enumerate() {
        for unit in 1..=units {
            let stage = si + 1;
            out.push(affine(
                format!("{}.bn1", unit_prefix(stage, unit)),
                unit_in(stage, unit),
                true,
            ));
        }
    }
    out.push(affine("bn1".into(), 2048, true));
    out
}

impl Builder {
    /// Applies a standalone batch norm (and ReLU) to `src`, into a new tensor named `name`.
    fn affine(&mut self, layer: &AffineLayer, src: TensorId, name: &str) -> TensorId {
        let s = self.tensors[src].clone();
        let dst = self.tensor(name.into(), s.w, s.h, s.c);
        self.ops.push(Op::Affine {
            layer: layer.clone(),
            src,
            dst,
        });
        dst
    }
}

/// The graph for one network input size. Tensor names follow the Keras layer names of the
/// package (`pooling0`, `stage3_unit1_relu2`, `relu1`, `ssh_c1_aggr_relu`,
/// `ssh_m3_det_concat_relu`, ...), as the stand-in's stored tensors are named.
pub(super) fn graph(net_w: u32, net_h: u32) -> Graph {
    let input = TensorInfo {
        name: "input".into(),
        w: net_w,
        h: net_h,
        // R, G, B and a zero channel, so every pixel is whole vec4s.
        c: super::INPUT_CHANNELS,
    };
    let mut g = Builder {
        tensors: vec![input],
        ops: Vec::new(),
    };
    let convs = conv_layers();
    let affines = affine_layers();
    let c = |n: &str| convs.iter().find(|l| l.name == n).unwrap().clone();
    let a = |n: &str| affines.iter().find(|l| l.name == n).unwrap().clone();

    let x = g.affine(&a("bn_data"), 0, "bn_data");
    let stem = g.layer(&c("conv0"), x, None);
    g.tensors[stem].name = "relu0".into();
    let t = g.tensors[stem].clone();
    let shape = PoolShape {
        in_w: t.w,
        in_h: t.h,
        channels: t.c,
        ksize: 3,
        stride: 2,
        pad: 1,
    };
    let mut x = g.tensor("pooling0".into(), shape.out_w(), shape.out_h(), t.c);
    g.ops.push(Op::MaxPool {
        shape,
        src: stem,
        dst: x,
    });
    for (si, (units, _)) in STAGES.into_iter().enumerate() {
        let stage = si + 1;
        for unit in 1..=units {
            let p = unit_prefix(stage, unit);
            let keras = format!("stage{stage}_unit{unit}");
            let a1 = g.affine(&a(&format!("{p}.bn1")), x, &format!("{keras}_relu1"));
            let r2 = g.layer(&c(&format!("{p}.conv1")), a1, None);
            g.tensors[r2].name = format!("{keras}_relu2");
            let r3 = g.layer(&c(&format!("{p}.conv2")), r2, None);
            g.tensors[r3].name = format!("{keras}_relu3");
            let out = g.layer(&c(&format!("{p}.conv3")), r3, None);
            // The identity shortcut takes the raw unit input; the projection, the
            // pre-activated one.
            let identity = if unit == 1 {
                g.layer(&c(&format!("{p}.sc")), a1, None)
            } else {
                x
            };
            g.ops.push(Op::AddRelu {
                identity,
                x: out,
                relu: false,
            });
            g.tensors[out].name = keras;
            x = out;
        }
    }
    let relu1 = g.affine(&a("bn1"), x, "relu1");
    let c1 = g.find("stage3_unit1_relu2");
    let c2 = g.find("stage4_unit1_relu2");

    let lat3 = g.layer(&c("ssh_c3_lateral"), relu1, None);
    g.tensors[lat3].name = "ssh_c3_lateral_relu".into();
    let lat2 = g.layer(&c("ssh_c2_lateral"), c2, None);
    g.tensors[lat2].name = "ssh_c2_lateral_relu".into();
    // Nearest upsampling to the finer map's exact size is the spec's x2 + top-left crop.
    g.up_add(lat3, lat2);
    let aggr2 = g.layer(&c("ssh_c2_aggr"), lat2, None);
    g.tensors[aggr2].name = "ssh_c2_aggr_relu".into();
    let red1 = g.layer(&c("ssh_m1_red_conv"), c1, None);
    g.tensors[red1].name = "ssh_m1_red_conv_relu".into();
    g.up_add(aggr2, red1);
    let aggr1 = g.layer(&c("ssh_c1_aggr"), red1, None);
    g.tensors[aggr1].name = "ssh_c1_aggr_relu".into();

    let mut levels = [(0, 0); 3];
    let mut rows = 0;
    for (level, feat) in [aggr1, aggr2, lat3].into_iter().enumerate() {
        let k = level + 1;
        let t = g.tensors[feat].clone();
        let concat = g.tensor(format!("ssh_m{k}_det_concat_relu"), t.w, t.h, 512);
        let l = ssh_layers(k);
        g.layer(&l[0], feat, Some((concat, 0)));
        let ctx1 = g.layer(&l[1], feat, None);
        g.layer(&l[2], ctx1, Some((concat, 256)));
        let ctx3 = g.layer(&l[3], ctx1, None);
        g.layer(&l[4], ctx3, Some((concat, 384)));
        g.ops.push(Op::Heads {
            level,
            src: concat,
            size: (t.w, t.h),
            row_offset: rows,
        });
        levels[level] = (t.w, t.h);
        rows += t.w * t.h * 2;
    }
    Graph {
        tensors: g.tensors,
        ops: g.ops,
        levels,
        anchors: rows,
    }
}

impl Builder {
    fn find(&self, name: &str) -> TensorId {
        self.tensors
            .iter()
            .position(|t| t.name == name)
            .expect("a tensor the graph built")
    }
}

#[cfg(test)]
mod tests {
    use super::super::Model;
    use super::*;

    #[test]
    fn sizes_at_the_stand_ins_264x198() {
        let g = graph(264, 198);
        let t = |n: &str| {
            let t = &g.tensors[g.find(n).unwrap()];
            (t.w, t.h, t.c)
        };
        assert_eq!(t("pooling0"), (66, 50, 64));
        assert_eq!(t("stage3_unit1_relu2"), (33, 25, 256));
        assert_eq!(t("stage4_unit1_relu2"), (17, 13, 512));
        assert_eq!(t("relu1"), (9, 7, 2048));
        assert_eq!(t("ssh_c1_aggr_relu"), (33, 25, 256));
        assert_eq!(t("ssh_m3_det_concat_relu"), (9, 7, 512));
        assert_eq!(g.levels, [(33, 25), (17, 13), (9, 7)]);
        // The README's anchor count for this input.
        assert_eq!(g.anchors, 2218);
    }

    #[test]
    fn tensors_and_parameters_match_the_spec() {
        let t = Model::Net3.expected_tensors();
        // Spec §6.1: 395 tensors, 29,495,084 values.
        assert_eq!(t.len(), 395);
        let values: usize = t.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        assert_eq!(values, 29_495_084);
        let find = |n: &str| t.iter().find(|(name, _)| name == n).unwrap().1.clone();
        assert_eq!(find("stage4.unit1.sc.weight"), [2048, 1024, 1, 1]);
        assert_eq!(find("ssh_m1_det.conv1.bias"), [256]);
        assert_eq!(
            find("face_rpn_stride8.landmark_pred.weight"),
            [20, 512, 1, 1]
        );
        assert_eq!(find("bn_data.running_var"), [3]);
    }
}

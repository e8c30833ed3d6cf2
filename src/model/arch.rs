//! The RetinaFace-MobileNet0.25 network (biubug6 Pytorch_Retinaface `cfg_mnet`): its layers,
//! and the graph of operations for one input size, shared by the GPU plan and the CPU forward.

use crate::ops::conv::ConvShape;
use crate::ops::depthwise::DwShape;
use crate::ops::maxpool::PoolShape;
use crate::ops::upsample_add::UpShape;
use crate::ops::Activation;

mod net3;

/// Channels of the FPN/SSH features that the heads read.
pub const HEAD_IN: usize = 64;
/// Channels of the network input tensor: B, G, R minus the mean, and 0.
pub const INPUT_CHANNELS: u32 = 4;
pub const STRIDES: [u32; 3] = [8, 16, 32];
pub const MIN_SIZES: [[f32; 2]; 3] = [[16.0, 32.0], [64.0, 128.0], [256.0, 512.0]];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    Dense,
    Depthwise,
}

/// One convolution of the state dict, with the batch norm that follows it, if any.
#[derive(Clone, Debug)]
pub struct ConvLayer {
    /// Our name for the layer (the state-dict prefix of its conv).
    pub name: String,
    /// Prefix of the conv weight and of the batch norm in the state dict.
    pub conv: String,
    /// The batch norm folded into the conv (`None`: the conv's output is used as is).
    pub bn: Option<String>,
    /// Whether the conv has a bias tensor of its own (`{conv}.bias`).
    pub bias: bool,
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
        bn: Some(bn),
        bias: false,
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
    /// The buffer: the image plus one pixel of zeros at the end, which convolutions read for
    /// taps outside the image instead of branching per channel.
    pub fn bytes(&self) -> u64 {
        (self.w as u64 * self.h as u64 + 1) * self.c as u64 * 4
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
    /// A batch norm on its own, `x * scale + shift` per channel, then an optional ReLU: the
    /// pre-activation units of retina-face's ResNet-50, whose batch norms come before a ReLU
    /// and a conv (and `bn_data` before the zero padding), so they cannot be folded.
    Affine {
        layer: AffineLayer,
        src: TensorId,
        dst: TensorId,
    },
    /// `k x k` max pooling (ResNet's stem).
    MaxPool {
        shape: PoolShape,
        src: TensorId,
        dst: TensorId,
    },
    /// `x = x + identity` in place on `x`, then a ReLU where `relu` (ResNet's residual join;
    /// the pre-activation ResNet has none after the add).
    AddRelu {
        identity: TensorId,
        x: TensorId,
        relu: bool,
    },
}

/// A standalone batch norm (see [`Op::Affine`]).
#[derive(Clone, Debug)]
pub struct AffineLayer {
    pub name: String,
    /// Prefix of the batch norm's tensors in the state dict.
    pub bn: String,
    pub channels: usize,
    pub relu: bool,
}

/// What one operation costs: floating-point operations (a multiply-add is two) and the bytes
/// of tensors and weights it reads and writes at least once. For the profiler's GFLOP/s and GB/s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    pub flops: u64,
    pub bytes: u64,
}

impl Op {
    /// The tensors the op reads or writes.
    pub fn tensors(&self) -> Vec<TensorId> {
        match self {
            Op::Conv { src, dst, .. }
            | Op::Depthwise { src, dst, .. }
            | Op::MaxPool { src, dst, .. }
            | Op::Affine { src, dst, .. } => vec![*src, *dst],
            Op::UpsampleAdd { coarse, fine, .. } => vec![*coarse, *fine],
            Op::Heads { src, .. } => vec![*src],
            Op::AddRelu { identity, x, .. } => vec![*identity, *x],
        }
    }

    pub fn work(&self, g: &Graph) -> Work {
        let t = |id: &TensorId| {
            let t = &g.tensors[*id];
            t.w as u64 * t.h as u64 * t.c as u64 * 4
        };
        match self {
            Op::Conv { shape, src, .. } => {
                let out = shape.out_w() as u64 * shape.out_h() as u64 * shape.out_c as u64 * 4;
                let w = (shape.ksize * shape.ksize * shape.in_c * shape.out_c) as u64 * 4;
                Work {
                    flops: 2 * shape.macs(),
                    bytes: t(src) + out + w,
                }
            }
            Op::Depthwise {
                shape, src, dst, ..
            } => Work {
                flops: 2 * shape.macs(),
                bytes: t(src) + t(dst),
            },
            Op::UpsampleAdd { coarse, fine, .. } => Work {
                flops: t(fine) / 4,
                bytes: t(coarse) + 2 * t(fine),
            },
            Op::Heads { src, size, .. } => {
                let c = g.tensors[*src].c as u64;
                let outs = size.0 as u64 * size.1 as u64 * 2 * 16;
                Work {
                    flops: 2 * outs * c,
                    bytes: t(src) + outs * 4,
                }
            }
            Op::MaxPool { src, dst, .. } => Work {
                flops: 9 * t(dst) / 4,
                bytes: t(src) + t(dst),
            },
            Op::Affine { src, dst, .. } => Work {
                flops: 2 * t(dst) / 4,
                bytes: t(src) + t(dst),
            },
            Op::AddRelu { identity, x, .. } => Work {
                flops: 2 * t(x) / 4,
                bytes: t(identity) + 2 * t(x),
            },
        }
    }
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
                // BGR and a zero channel, so every tensor's pixel is whole vec4s.
                c: INPUT_CHANNELS,
            }],
            ops: Vec::new(),
        };
        let layers = conv_layers();
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
        neck(g, Model::Mnet025, &layers, [taps[0], taps[1], taps[2]])
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

/// The supported networks (biubug6 Pytorch_Retinaface `cfg_mnet` and `cfg_re50`), told apart
/// by the tensor names of their state dicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Model {
    /// MobileNetV1-0.25 backbone, FPN/SSH with 64 channels and LeakyReLU(0.1).
    #[default]
    Mnet025,
    /// torchvision ResNet-50 backbone, FPN/SSH with 256 channels and ReLU.
    Resnet50,
    /// retina-face's own network (insightface "net3", `retinaface.h5`): pre-activation
    /// ResNet-50 on raw RGB, neck and SSH at 256/512 channels, heads with class-major scores.
    Net3,
}

/// ResNet-50's four stages: (bottleneck blocks, width, stride of the first block).
const RESNET50_LAYERS: [(usize, usize, u32); 4] =
    [(3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)];
/// A bottleneck's output is 4x its width.
const EXPANSION: usize = 4;

impl Model {
    pub const ALL: [Model; 3] = [Model::Mnet025, Model::Resnet50, Model::Net3];

    /// The name used on the command line (`--model`, `fetch-weights`).
    pub fn name(self) -> &'static str {
        match self {
            Model::Mnet025 => "mnet025",
            Model::Resnet50 => "resnet50",
            Model::Net3 => "retinaface",
        }
    }

    /// Batch-norm epsilon: PyTorch's default for biubug6's models, mxnet's 2e-5 (as float32)
    /// for net3; no weight file stores it.
    pub fn bn_eps(self) -> f64 {
        match self {
            Model::Net3 => 2e-5f32 as f64,
            _ => 1e-5,
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Model::Mnet025 => "RetinaFace, MobileNet0.25 backbone",
            Model::Resnet50 => "RetinaFace, ResNet50 backbone",
            Model::Net3 => "RetinaFace-R50 of the retina-face package (insightface net3)",
        }
    }

    /// The safetensors file name looked for in the weight directories and the cache.
    pub fn file_name(self) -> &'static str {
        match self {
            Model::Mnet025 => "retinaface_mnet025.safetensors",
            Model::Resnet50 => "retinaface_resnet50.safetensors",
            Model::Net3 => "retinaface_r50_net3.safetensors",
        }
    }

    /// What the network takes as input: BGR minus the mean, or retina-face's raw RGB.
    pub fn input_format(self) -> crate::ops::preprocess::InputFormat {
        match self {
            Model::Net3 => crate::ops::preprocess::InputFormat::RgbRaw,
            _ => crate::ops::preprocess::InputFormat::BgrMinusMean,
        }
    }

    /// How the head outputs become faces: Pytorch_Retinaface's priors or insightface's anchors.
    pub fn post_mode(self) -> crate::ops::decode::PostMode {
        match self {
            Model::Net3 => crate::ops::decode::PostMode::Anchors,
            _ => crate::ops::decode::PostMode::Priors,
        }
    }

    /// Channels of the FPN/SSH features that the heads read.
    pub fn head_in(self) -> usize {
        match self {
            Model::Mnet025 => HEAD_IN,
            Model::Resnet50 => 256,
            Model::Net3 => 512,
        }
    }

    /// FPN/SSH activation: Pytorch_Retinaface uses LeakyReLU(0.1) when `out_channels <= 64`,
    /// else LeakyReLU(0), which is ReLU.
    pub fn neck_activation(self) -> Activation {
        if self.head_in() <= 64 {
            Activation::Leaky
        } else {
            Activation::Relu
        }
    }

    /// Every convolution of the network, in execution order.
    pub fn conv_layers(self) -> Vec<ConvLayer> {
        match self {
            Model::Mnet025 => conv_layers(),
            Model::Resnet50 => {
                let mut out = resnet50_body();
                out.extend(neck_layers(self, [512, 1024, 2048]));
                out
            }
            Model::Net3 => net3::conv_layers(),
        }
    }

    /// The batch norms applied on their own ([`Op::Affine`]), in execution order.
    pub fn affine_layers(self) -> Vec<AffineLayer> {
        match self {
            Model::Net3 => net3::affine_layers(),
            _ => Vec::new(),
        }
    }

    /// The state-dict names of level `level`'s (stride 8, 16, 32) class, box and landmark
    /// head weights, without `.weight` / `.bias`.
    pub fn head_names(self, level: usize) -> [String; 3] {
        match self {
            Model::Net3 => {
                let s = STRIDES[level];
                ["cls_score", "bbox_pred", "landmark_pred"]
                    .map(|h| format!("face_rpn_stride{s}.{h}"))
            }
            _ => ["ClassHead", "BboxHead", "LandmarkHead"].map(|h| format!("{h}.{level}.conv1x1")),
        }
    }

    /// Every tensor of the state dict with its shape, in execution order (without
    /// `num_batches_tracked`, which the network does not use).
    pub fn expected_tensors(self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let bn = |out: &mut Vec<(String, Vec<usize>)>, prefix: &str, c: usize| {
            for p in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{prefix}.{p}"), vec![c]));
            }
        };
        for a in self.affine_layers() {
            bn(&mut out, &a.bn, a.channels);
        }
        for l in self.conv_layers() {
            let in_per_group = if l.kind == LayerKind::Depthwise {
                1
            } else {
                l.in_c
            };
            out.push((
                format!("{}.weight", l.conv),
                vec![l.out_c, in_per_group, l.k, l.k],
            ));
            if l.bias {
                out.push((format!("{}.bias", l.conv), vec![l.out_c]));
            }
            if let Some(b) = &l.bn {
                bn(&mut out, b, l.out_c);
            }
        }
        for level in 0..3 {
            for (name, k) in self.head_names(level).into_iter().zip([2, 4, 10]) {
                let n = k * 2;
                out.push((format!("{name}.weight"), vec![n, self.head_in(), 1, 1]));
                out.push((format!("{name}.bias"), vec![n]));
            }
        }
        out
    }

    /// Learned parameters (convolution and head weights and biases, batch-norm scale and
    /// shift), and all tensor values (adding the batch-norm running statistics).
    pub fn parameter_counts(self) -> (usize, usize) {
        let mut learned = 0;
        let mut all = 0;
        for (name, shape) in self.expected_tensors() {
            let n: usize = shape.iter().product();
            all += n;
            if !name.ends_with("running_mean") && !name.ends_with("running_var") {
                learned += n;
            }
        }
        (learned, all)
    }

    /// Which network a state dict is for, from its tensor names (a `module.` prefix allowed).
    pub fn detect<'a>(names: impl IntoIterator<Item = &'a str>) -> crate::Result<Model> {
        let mut count = 0;
        for name in names {
            count += 1;
            let n = name.strip_prefix("module.").unwrap_or(name);
            if n.starts_with("body.stage") {
                return Ok(Model::Mnet025);
            }
            if n.starts_with("body.layer") || n.starts_with("body.conv1.") {
                return Ok(Model::Resnet50);
            }
            if n.starts_with("bn_data.") || n.starts_with("stage1.unit1.") {
                return Ok(Model::Net3);
            }
        }
        Err(crate::Error::UnknownModel {
            reason: format!(
                "none of its {count} tensors is named like MobileNet0.25's `body.stage1...`, ResNet50's `body.conv1...` / `body.layer1...` or retina-face's `bn_data...` / `stage1.unit1...`"
            ),
        })
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Model {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mnet025" | "mobilenet0.25" | "mobilenet" | "mnet" => Ok(Model::Mnet025),
            "resnet50" | "re50" | "resnet" => Ok(Model::Resnet50),
            "retinaface" | "net3" | "retina-face" => Ok(Model::Net3),
            _ => Err(crate::Error::InvalidOption(format!(
                "unknown model `{s}`; expected mnet025, resnet50 or retinaface"
            ))),
        }
    }
}

/// torchvision ResNet-50 as `IntermediateLayerGetter` keeps it (`body.conv1` ... `body.layer4`):
/// conv1 7x7/2 + bn1 + ReLU (the maxpool between is not a layer), then bottlenecks whose
/// stride sits on the 3x3 (torchvision's "v1.5"); each stage's first block has a 1x1
/// downsample. conv3 and the downsample have no activation: the join applies the ReLU.
fn resnet50_body() -> Vec<ConvLayer> {
    let dense = |conv: String, bn: String, i: usize, o: usize, k: usize, s: u32, act| {
        layer(conv, bn, LayerKind::Dense, i, o, k, s, act)
    };
    let mut out = vec![dense(
        "body.conv1".into(),
        "body.bn1".into(),
        3,
        64,
        7,
        2,
        Activation::Relu,
    )];
    let mut in_c = 64;
    for (li, (blocks, width, stride)) in RESNET50_LAYERS.into_iter().enumerate() {
        for b in 0..blocks {
            let p = format!("body.layer{}.{b}", li + 1);
            let s = if b == 0 { stride } else { 1 };
            let out_c = width * EXPANSION;
            let c = |i: usize| (format!("{p}.conv{i}"), format!("{p}.bn{i}"));
            let (c1, b1) = c(1);
            out.push(dense(c1, b1, in_c, width, 1, 1, Activation::Relu));
            let (c2, b2) = c(2);
            out.push(dense(c2, b2, width, width, 3, s, Activation::Relu));
            let (c3, b3) = c(3);
            out.push(dense(c3, b3, width, out_c, 1, 1, Activation::None));
            if b == 0 {
                out.push(dense(
                    format!("{p}.downsample.0"),
                    format!("{p}.downsample.1"),
                    in_c,
                    out_c,
                    1,
                    s,
                    Activation::None,
                ));
            }
            in_c = out_c;
        }
    }
    out
}

/// FPN (three 1x1 laterals, two 3x3 merges) and the three SSH modules for `model`'s width.
fn neck_layers(model: Model, in_channels: [usize; 3]) -> Vec<ConvLayer> {
    let (ch, act) = (model.head_in(), model.neck_activation());
    let mut out: Vec<ConvLayer> = in_channels
        .iter()
        .enumerate()
        .map(|(i, cin)| conv_bn(&format!("fpn.output{}", i + 1), *cin, ch, 1, 1, act))
        .collect();
    out.push(conv_bn("fpn.merge2", ch, ch, 3, 1, act));
    out.push(conv_bn("fpn.merge1", ch, ch, 3, 1, act));
    for level in 1..=3 {
        out.extend(ssh_layers_for(model, level));
    }
    out
}

/// SSH's five convolutions at `model`'s width: 3x3 -> ch/2, and ch/4 for the 5x5 and 7x7
/// branches. The ReLU after the concat is applied by each branch's last conv.
fn ssh_layers_for(model: Model, level: usize) -> [ConvLayer; 5] {
    let (ch, act) = (model.head_in(), model.neck_activation());
    let (half, quarter) = (ch / 2, ch / 4);
    let p = format!("ssh{level}");
    [
        conv_bn(&format!("{p}.conv3X3"), ch, half, 3, 1, Activation::Relu),
        conv_bn(&format!("{p}.conv5X5_1"), ch, quarter, 3, 1, act),
        conv_bn(
            &format!("{p}.conv5X5_2"),
            quarter,
            quarter,
            3,
            1,
            Activation::Relu,
        ),
        conv_bn(&format!("{p}.conv7X7_2"), quarter, quarter, 3, 1, act),
        conv_bn(
            &format!("{p}.conv7x7_3"),
            quarter,
            quarter,
            3,
            1,
            Activation::Relu,
        ),
    ]
}

impl Graph {
    /// The graph of `model` for one network input size.
    pub fn for_model(model: Model, net_w: u32, net_h: u32) -> Self {
        match model {
            Model::Mnet025 => Graph::new(net_w, net_h),
            Model::Resnet50 => resnet50_graph(net_w, net_h),
            Model::Net3 => net3::graph(net_w, net_h),
        }
    }
}

fn resnet50_graph(net_w: u32, net_h: u32) -> Graph {
    // The input tensor is laid out as for every model (it is the preprocess shader's output).
    let input = Graph::new(net_w, net_h).tensors.swap_remove(0);
    let mut g = Builder {
        tensors: vec![input],
        ops: Vec::new(),
    };
    let model = Model::Resnet50;
    let layers = model.conv_layers();
    let by_name = |n: &str| layers.iter().find(|l| l.name == n).unwrap().clone();
    let stem = g.layer(&by_name("body.conv1"), 0, None);
    let t = g.tensors[stem].clone();
    let shape = PoolShape {
        in_w: t.w,
        in_h: t.h,
        channels: t.c,
        ksize: 3,
        stride: 2,
        pad: 1,
    };
    let mut x = g.tensor("body.maxpool".into(), shape.out_w(), shape.out_h(), t.c);
    g.ops.push(Op::MaxPool {
        shape,
        src: stem,
        dst: x,
    });
    let mut taps = Vec::new();
    for (li, (blocks, _, _)) in RESNET50_LAYERS.into_iter().enumerate() {
        for b in 0..blocks {
            let p = format!("body.layer{}.{b}", li + 1);
            let a = g.layer(&by_name(&format!("{p}.conv1")), x, None);
            let a = g.layer(&by_name(&format!("{p}.conv2")), a, None);
            let out = g.layer(&by_name(&format!("{p}.conv3")), a, None);
            let identity = if b == 0 {
                g.layer(&by_name(&format!("{p}.downsample.0")), x, None)
            } else {
                x
            };
            g.ops.push(Op::AddRelu {
                identity,
                x: out,
                relu: true,
            });
            x = out;
        }
        g.tensors[x].name = format!("body.layer{}", li + 1);
        if li >= 1 {
            taps.push(x);
        }
    }
    neck(g, model, &layers, [taps[0], taps[1], taps[2]])
}

/// FPN, SSH and heads on the three backbone taps (strides 8, 16, 32). Tensor names as in the
/// MobileNet graph: `fpn.out1..3`, `ssh1..3`.
fn neck(mut g: Builder, model: Model, layers: &[ConvLayer], taps: [TensorId; 3]) -> Graph {
    let ch = model.head_in() as u32;
    let by_name = |n: &str| layers.iter().find(|l| l.name == n).unwrap().clone();
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
        let ssh = g.tensor(format!("ssh{}", i + 1), w, h, ch);
        let l = ssh_layers_for(model, i + 1);
        g.layer(&l[0], feat, Some((ssh, 0)));
        let c5 = g.layer(&l[1], feat, None);
        g.layer(&l[2], c5, Some((ssh, ch / 2)));
        let c7 = g.layer(&l[3], c5, None);
        g.layer(&l[4], c7, Some((ssh, ch / 2 + ch / 4)));
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

#[cfg(test)]
mod model_tests {
    use super::*;

    #[test]
    fn resnet50_graph_shapes_at_640() {
        let g = Graph::for_model(Model::Resnet50, 640, 640);
        assert_eq!(g.anchors, 16800);
        assert_eq!(g.levels, [(80, 80), (40, 40), (20, 20)]);
        let t = |n: &str| {
            let t = &g.tensors[g.find(n).unwrap()];
            (t.w, t.h, t.c)
        };
        assert_eq!(t("body.conv1"), (320, 320, 64));
        assert_eq!(t("body.maxpool"), (160, 160, 64));
        assert_eq!(t("body.layer1"), (160, 160, 256));
        assert_eq!(t("body.layer2"), (80, 80, 512));
        assert_eq!(t("body.layer3"), (40, 40, 1024));
        assert_eq!(t("body.layer4"), (20, 20, 2048));
        assert_eq!(t("fpn.out1"), (80, 80, 256));
        assert_eq!(t("ssh3"), (20, 20, 256));
        // 16 residual joins, one maxpool.
        let joins = g
            .ops
            .iter()
            .filter(|o| matches!(o, Op::AddRelu { .. }))
            .count();
        assert_eq!(joins, 16);
    }

    #[test]
    fn resnet50_odd_sizes_have_the_mobilenet_levels() {
        for (w, h) in [(75, 53), (1600, 898), (1, 1), (17, 33)] {
            let (r, m) = (Graph::for_model(Model::Resnet50, w, h), Graph::new(w, h));
            assert_eq!((r.levels, r.anchors), (m.levels, m.anchors), "{w}x{h}");
        }
    }

    #[test]
    fn resnet50_tensors_and_parameters() {
        let t = Model::Resnet50.expected_tensors();
        let find = |n: &str| t.iter().find(|(name, _)| name == n).unwrap().1.clone();
        assert_eq!(find("body.conv1.weight"), [64, 3, 7, 7]);
        assert_eq!(find("body.layer1.0.downsample.0.weight"), [256, 64, 1, 1]);
        assert_eq!(find("body.layer4.2.conv3.weight"), [2048, 512, 1, 1]);
        assert_eq!(find("fpn.output3.0.weight"), [256, 2048, 1, 1]);
        assert_eq!(find("ssh1.conv3X3.0.weight"), [128, 256, 3, 3]);
        assert_eq!(find("ssh1.conv7x7_3.0.weight"), [64, 64, 3, 3]);
        assert_eq!(find("LandmarkHead.2.conv1x1.weight"), [20, 256, 1, 1]);
        // torchvision's ResNet-50 without fc has 23,508,032 parameters (25,557,032 - 2,049,000).
        let body: usize = t
            .iter()
            .filter(|(n, _)| n.starts_with("body.") && !n.contains("running_"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(body, 23_508_032);
        // The counts in weights/README.md.
        assert_eq!(Model::Mnet025.parameter_counts(), (426_608, 433_296));
        assert_eq!(Model::Resnet50.parameter_counts(), (27_293_600, 27_351_584));
        assert_eq!(Model::Mnet025.expected_tensors().len(), 253);
        assert_eq!(t.len(), 383);
    }

    #[test]
    fn model_is_picked_from_tensor_names() {
        let names = |m: Model| m.expected_tensors().into_iter().map(|(n, _)| n);
        for m in Model::ALL {
            let v: Vec<String> = names(m).collect();
            assert_eq!(Model::detect(v.iter().map(|s| s.as_str())).unwrap(), m);
            let prefixed: Vec<String> = names(m).map(|n| format!("module.{n}")).collect();
            assert_eq!(
                Model::detect(prefixed.iter().map(|s| s.as_str())).unwrap(),
                m
            );
            assert_eq!(m.name().parse::<Model>().unwrap(), m);
        }
        let e = Model::detect(["fc.weight", "fc.bias"]).unwrap_err();
        assert!(e.to_string().contains("2 tensors"), "{e}");
        assert!("vgg".parse::<Model>().is_err());
    }

    #[test]
    fn mobilenet_layers_are_the_generic_neck_at_64() {
        // The MobileNet FPN/SSH list equals the generic builder's at 64 channels, LeakyReLU.
        let all = conv_layers();
        let neck = neck_layers(Model::Mnet025, [64, 128, 256]);
        let tail = &all[all.len() - neck.len()..];
        for (a, b) in tail.iter().zip(&neck) {
            assert_eq!(
                (&a.name, &a.bn, a.in_c, a.out_c, a.k, a.stride, a.act),
                (&b.name, &b.bn, b.in_c, b.out_c, b.k, b.stride, b.act),
            );
        }
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

//! The plan for one input size: every buffer, bind group and dispatch, built once and replayed
//! for each image of that size in a single command encoder and a single submit.

use std::sync::Arc;

use super::arch::{Graph, Model, Op, Work};
use super::postprocess::{PostKernels, PostPlan, RawFace};
use super::weights::Packed;
use crate::error::{Error, Result};
use crate::gpu::profiler::Timestamps;
use crate::gpu::{callback, storage_buffer, Callback, GpuContext, KernelPath};
use crate::ops::band::BindLimits;
use crate::ops::conv::ConvShape;
use crate::ops::heads::ROW;
use crate::ops::preprocess::Resample;
use crate::ops::{
    add_relu, affine, conv, depthwise, heads, maxpool, preprocess, upsample_add, Activation,
    Kernel, Step,
};
use crate::tuning::Tuning;

/// The pipelines of banded runs (see [`crate::ops::band`]): compiled on first use, since
/// only inputs whose tensors exceed a binding need them.
pub(crate) struct BandedKernels {
    pub conv: conv::ConvKernels,
    pub depthwise: Arc<Kernel>,
}

/// Every pipeline, compiled once per detector.
pub(crate) struct Kernels {
    pub preprocess: Arc<Kernel>,
    pub preprocess_texture: Arc<Kernel>,
    pub conv: conv::ConvKernels,
    pub depthwise: Arc<Kernel>,
    pub upsample_add: Arc<Kernel>,
    pub heads: Arc<Kernel>,
    pub post: PostKernels,
    /// ResNet50 only (lavapipe and most drivers compile a pipeline at its first dispatch).
    pub maxpool: Arc<Kernel>,
    pub add_relu: Arc<Kernel>,
    /// retina-face's network only.
    pub affine: Arc<Kernel>,
    banded: std::sync::OnceLock<BandedKernels>,
}

impl Kernels {
    pub fn new(ctx: &GpuContext, path: KernelPath) -> Self {
        Self {
            preprocess: preprocess::kernel(ctx),
            preprocess_texture: preprocess::texture_kernel(ctx),
            conv: conv::kernels(ctx, path, false),
            depthwise: depthwise::kernel(ctx, false),
            upsample_add: upsample_add::kernel(ctx),
            heads: heads::kernel(ctx),
            post: PostKernels::new(ctx),
            maxpool: maxpool::kernel(ctx),
            add_relu: add_relu::kernel(ctx),
            affine: affine::kernel(ctx),
            banded: std::sync::OnceLock::new(),
        }
    }

    /// The banded pipelines of the same family, compiled the first time a plan needs them.
    pub fn banded(&self, ctx: &GpuContext) -> &BandedKernels {
        self.banded.get_or_init(|| BandedKernels {
            conv: conv::kernels(ctx, self.conv.path, true),
            depthwise: depthwise::kernel(ctx, true),
        })
    }
}

/// Per-call settings of a run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunSettings {
    pub threshold: f32,
    pub nms_threshold: f32,
    /// Network-input pixels to original-image pixels (1 / resize factor).
    pub scale: [f32; 2],
}

/// Which buffer each tensor of a graph lives in. A tensor's buffer is free again once the
/// last op that touches it has run, so a later tensor can take it: the memory is the largest
/// set of tensors alive at once, not their sum (ResNet-50 at 1365x1024: 1.5 GB -> a few
/// hundred MB). Each buffer ends with a pixel of zeros as wide as its widest tensor, which
/// convolutions read for taps outside the image; no tensor writes there.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Slots {
    /// Per tensor: its buffer.
    pub slot_of: Vec<usize>,
    /// Per buffer: bytes of its largest tensor (where the zero pixel starts) and of the
    /// zero pixel (its widest tensor's channels).
    pub data_bytes: Vec<u64>,
    pub zero_bytes: Vec<u64>,
}

impl Slots {
    /// Buffers shared by tensors whose lifetimes do not overlap (`reuse`), or one per tensor.
    pub fn new(graph: &Graph, reuse: bool) -> Self {
        let n = graph.tensors.len();
        let (mut first, mut last) = (vec![usize::MAX; n], vec![0usize; n]);
        // The input is written before the first op (preprocess, or the caller's upload).
        first[0] = 0;
        for (i, op) in graph.ops.iter().enumerate() {
            for t in op.tensors() {
                first[t] = first[t].min(i);
                last[t] = last[t].max(i);
            }
        }
        let data = |t: usize| {
            let ti = &graph.tensors[t];
            ti.w as u64 * ti.h as u64 * ti.c as u64 * 4
        };
        let zero = |t: usize| graph.tensors[t].c as u64 * 4;
        let mut slots = Slots {
            slot_of: vec![usize::MAX; n],
            data_bytes: Vec::new(),
            zero_bytes: Vec::new(),
        };
        let mut free: Vec<usize> = Vec::new();
        let mut order: Vec<usize> = (0..n).collect();
        // Tensors no op touches still get a buffer (and keep it).
        order.sort_by_key(|&t| (first[t], t));
        let mut next = 0;
        for i in 0..graph.ops.len().max(1) {
            while next < n && (first[order[next]] <= i || first[order[next]] == usize::MAX) {
                let t = order[next];
                next += 1;
                let need = data(t);
                // The smallest free buffer that holds it, else the largest (grown), else new.
                let fit = free
                    .iter()
                    .enumerate()
                    .filter(|(_, &s)| slots.data_bytes[s] >= need)
                    .min_by_key(|(_, &s)| slots.data_bytes[s])
                    .or_else(|| {
                        free.iter()
                            .enumerate()
                            .max_by_key(|(_, &s)| slots.data_bytes[s])
                    })
                    .map(|(k, _)| k);
                let s = match fit {
                    Some(k) if reuse => free.swap_remove(k),
                    _ => {
                        slots.data_bytes.push(0);
                        slots.zero_bytes.push(0);
                        slots.data_bytes.len() - 1
                    }
                };
                slots.data_bytes[s] = slots.data_bytes[s].max(need);
                slots.zero_bytes[s] = slots.zero_bytes[s].max(zero(t));
                slots.slot_of[t] = s;
            }
            if reuse {
                for t in 0..n {
                    if first[t] != usize::MAX && last[t] == i && !free.contains(&slots.slot_of[t]) {
                        free.push(slots.slot_of[t]);
                    }
                }
            }
        }
        slots
    }

    /// Bytes of all buffers.
    pub fn total_bytes(&self) -> u64 {
        self.data_bytes
            .iter()
            .zip(&self.zero_bytes)
            .map(|(d, z)| d + z)
            .sum()
    }

    /// The vec4 index of tensor `t`'s zero pixel in its buffer.
    pub fn zero_of(&self, t: usize) -> u32 {
        (self.data_bytes[self.slot_of[t]] / 16) as u32
    }
}

/// The network's buffers and dispatches for one input size, from the input tensor to the raw
/// head outputs.
pub(crate) struct NetPlan {
    pub graph: Graph,
    /// Per tensor: its buffer (tensors with disjoint lifetimes share one; see [`Slots`]).
    pub buffers: Vec<wgpu::Buffer>,
    pub raw: wgpu::Buffer,
    pub steps: Vec<Step>,
    /// The known cost of each step, for the profiler.
    pub work: Vec<Work>,
}

/// The first buffer of a plan that the device cannot hold, if any: an activation buffer (or
/// the source pixels) over `max_buffer_size`, or the raw head outputs, which the
/// post-processing binds whole, over a binding. Other tensors over a binding run in bands.
pub(crate) fn oversized(
    graph: &Graph,
    src_pixels: u64,
    limits: &BindLimits,
) -> Option<(String, u64, u64, &'static str)> {
    let slots = Slots::new(graph, true);
    let mut largest = vec![(0u64, 0usize); slots.data_bytes.len()];
    for (t, &s) in slots.slot_of.iter().enumerate() {
        let bytes = graph.tensors[t].bytes();
        if bytes >= largest[s].0 {
            largest[s] = (bytes, t);
        }
    }
    let buffers = largest.iter().enumerate().map(|(s, &(_, t))| {
        (
            graph.tensors[t].name.clone(),
            slots.data_bytes[s] + slots.zero_bytes[s],
            limits.max_buffer,
            "per buffer (max_buffer_size)",
        )
    });
    let anchors_bytes = graph.anchors as u64 * (ROW * 4) as u64;
    let extra = [
        (
            "source pixels".to_string(),
            src_pixels * 4,
            limits.max_buffer,
            "per buffer (max_buffer_size)",
        ),
        (
            "head outputs".to_string(),
            anchors_bytes,
            limits.max_binding,
            "per storage binding (max_storage_buffer_binding_size)",
        ),
    ];
    buffers.chain(extra).find(|(_, b, limit, _)| b > limit)
}

/// The error for an input too large for the device, with the largest side that would fit.
pub(crate) fn too_large(
    model: Model,
    net_w: u32,
    net_h: u32,
    src_pixels: u64,
    limits: &BindLimits,
) -> Option<Error> {
    let graph = Graph::for_model(model, net_w, net_h);
    let (tensor, bytes, limit, which) = oversized(&graph, src_pixels, limits)?;
    let long = net_w.max(net_h);
    let mut side = ((long as f64) * (limit as f64 / bytes as f64).sqrt()) as u32;
    while side > 16 {
        let f = side as f64 / long as f64;
        let (w, h) = (
            ((net_w as f64) * f).round().max(1.0) as u32,
            ((net_h as f64) * f).round().max(1.0) as u32,
        );
        // The source image is still uploaded whole; only the network input shrinks.
        let src = if tensor == "source pixels" {
            0
        } else {
            src_pixels
        };
        if oversized(&Graph::for_model(model, w, h), src, limits).is_none() {
            break;
        }
        side -= side / 64 + 1;
    }
    Some(Error::ImageTooLarge {
        width: net_w,
        height: net_h,
        tensor,
        bytes,
        limit,
        which: which.to_string(),
        suggested_max_side: side,
    })
}

/// The steps of one op: one dispatch over whole buffers where they all fit a binding, else
/// bands (see [`crate::ops::band`]); an error naming `tensor` when not even one row of a
/// `size` network input's op fits.
fn op_steps(
    size: (u32, u32),
    tensor: impl FnOnce() -> String,
    buffers: &[&wgpu::Buffer],
    limits: &BindLimits,
    whole: impl FnOnce() -> Step,
    banded: impl FnOnce() -> Option<Vec<Step>>,
) -> Result<Vec<Step>> {
    if buffers.iter().all(|b| limits.binds_whole(b)) {
        return Ok(vec![whole()]);
    }
    banded().ok_or_else(|| Error::ImageTooLarge {
        width: size.0,
        height: size.1,
        tensor: tensor(),
        bytes: buffers.iter().map(|b| b.size()).max().unwrap_or(0),
        limit: limits.max_binding,
        which: "per storage binding, even for one row".into(),
        suggested_max_side: size.0.max(size.1) / 2,
    })
}

impl NetPlan {
    /// Buffers, bind groups and dispatches for one input size. Ops whose buffers exceed one
    /// binding of `limits` run in bands.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &GpuContext,
        k: &Kernels,
        weights: &wgpu::Buffer,
        packed: &Packed,
        tuning: &Tuning,
        net_w: u32,
        net_h: u32,
        reuse: bool,
        limits: &BindLimits,
    ) -> Result<Self> {
        let graph = Graph::for_model(packed.model, net_w, net_h);
        let slots = Slots::new(&graph, reuse);
        let shared: Vec<wgpu::Buffer> = (0..slots.data_bytes.len())
            .map(|s| {
                let bytes = slots.data_bytes[s] + slots.zero_bytes[s];
                storage_buffer(ctx, &format!("activations {s}"), bytes)
            })
            .collect();
        let buffers: Vec<wgpu::Buffer> = slots.slot_of.iter().map(|&s| shared[s].clone()).collect();
        let source = |t: usize| conv::Source {
            buffer: &buffers[t],
            zero: slots.zero_of(t),
        };
        let raw = storage_buffer(
            ctx,
            "raw head outputs",
            graph.anchors as u64 * (ROW * 4) as u64,
        );
        // The tensor an error about an op names: the one it writes.
        let tensor_name = |op: &Op| {
            let t = op.tensors().last().copied();
            t.map(|t| graph.tensors[t].name.clone()).unwrap_or_default()
        };
        // A convolution (a layer, or the heads on the subgroup path) from tensor `src`.
        #[allow(clippy::too_many_arguments)]
        let conv_steps = |op: &Op,
                          label: &str,
                          shape: ConvShape,
                          act: Activation,
                          src: usize,
                          at: conv::PackedAt,
                          target: conv::Target<'_>| {
            let variant = tuning.variant(k.conv.path, &shape);
            op_steps(
                (net_w, net_h),
                || tensor_name(op),
                &[&buffers[src], target.buffer],
                limits,
                || {
                    let (kernels, source) = (&k.conv, source(src));
                    conv::step(
                        ctx, kernels, label, shape, variant, act, source, weights, at, target,
                    )
                },
                || {
                    let (kernels, input) = (&k.banded(ctx).conv, &buffers[src]);
                    conv::banded_steps(
                        ctx, kernels, limits, label, shape, variant, act, input, weights, at,
                        target,
                    )
                },
            )
        };
        let mut steps = Vec::new();
        let mut work = Vec::new();
        for op in &graph.ops {
            let op_steps = match op {
                Op::Conv {
                    layer,
                    shape,
                    src,
                    dst,
                    offset,
                } => {
                    let target = conv::Target {
                        buffer: &buffers[*dst],
                        channels: graph.tensors[*dst].c,
                        offset: *offset,
                    };
                    let at = packed.at[&layer.name];
                    conv_steps(op, &layer.name, *shape, layer.act, *src, at, target)?
                }
                Op::Depthwise {
                    layer,
                    shape,
                    src,
                    dst,
                } => {
                    let at = packed.at[&layer.name];
                    op_steps(
                        (net_w, net_h),
                        || tensor_name(op),
                        &[&buffers[*src], &buffers[*dst]],
                        limits,
                        || {
                            depthwise::step(
                                ctx,
                                &k.depthwise,
                                &layer.name,
                                *shape,
                                layer.act,
                                source(*src),
                                weights,
                                at,
                                &buffers[*dst],
                            )
                        },
                        || {
                            depthwise::banded_steps(
                                ctx,
                                &k.banded(ctx).depthwise,
                                limits,
                                &layer.name,
                                *shape,
                                layer.act,
                                &buffers[*src],
                                weights,
                                at,
                                &buffers[*dst],
                            )
                        },
                    )?
                }
                Op::UpsampleAdd {
                    shape,
                    coarse,
                    fine,
                } => {
                    let (c, f) = (&buffers[*coarse], &buffers[*fine]);
                    let label = "fpn.upsample_add";
                    let kernel = &k.upsample_add;
                    op_steps(
                        (net_w, net_h),
                        || tensor_name(op),
                        &[c, f],
                        limits,
                        || upsample_add::step(ctx, kernel, label, *shape, c, f),
                        || upsample_add::banded_steps(ctx, kernel, limits, label, *shape, c, f),
                    )?
                }
                // The heads are a 1x1 conv with 32 outputs per pixel (2 anchors x 16) whose
                // rows are the raw buffer's rows: the subgroup conv kernel runs them.
                Op::Heads {
                    level,
                    src,
                    size,
                    row_offset,
                } if k.conv.path == KernelPath::Subgroup => {
                    let shape = head_shape(size, graph.tensors[*src].c);
                    let target = conv::Target {
                        buffer: &raw,
                        channels: (heads::ANCHORS * ROW) as u32,
                        offset: *row_offset * ROW as u32,
                    };
                    let (label, at) = (format!("heads.{level}"), packed.heads[*level]);
                    conv_steps(op, &label, shape, Activation::None, *src, at, target)?
                }
                Op::Heads {
                    level,
                    src,
                    size,
                    row_offset,
                } => {
                    let label = format!("heads.{level}");
                    let c = graph.tensors[*src].c;
                    let (at, input) = (packed.heads[*level], &buffers[*src]);
                    op_steps(
                        (net_w, net_h),
                        || tensor_name(op),
                        &[input, &raw],
                        limits,
                        || {
                            heads::step(
                                ctx,
                                &k.heads,
                                &label,
                                *size,
                                c,
                                *row_offset,
                                input,
                                weights,
                                at,
                                &raw,
                            )
                        },
                        || {
                            heads::banded_steps(
                                ctx,
                                &k.heads,
                                limits,
                                &label,
                                *size,
                                c,
                                *row_offset,
                                input,
                                weights,
                                at,
                                &raw,
                            )
                        },
                    )?
                }
                Op::MaxPool { shape, src, dst } => {
                    let label = &graph.tensors[*dst].name;
                    let (a, b) = (&buffers[*src], &buffers[*dst]);
                    op_steps(
                        (net_w, net_h),
                        || tensor_name(op),
                        &[a, b],
                        limits,
                        || maxpool::step(ctx, &k.maxpool, label, *shape, a, b),
                        || maxpool::banded_steps(ctx, &k.maxpool, limits, label, *shape, a, b),
                    )?
                }
                Op::AddRelu { identity, x, relu } => {
                    let t = &graph.tensors[*x];
                    let label = format!("{}.add", t.name);
                    let n = t.w * t.h * t.c;
                    let (a, b) = (&buffers[*identity], &buffers[*x]);
                    let kernel = &k.add_relu;
                    op_steps(
                        (net_w, net_h),
                        || tensor_name(op),
                        &[a, b],
                        limits,
                        || add_relu::step(ctx, kernel, &label, n, *relu, a, b),
                        || add_relu::banded_steps(ctx, kernel, limits, &label, n, *relu, a, b),
                    )?
                }
                Op::Affine { layer, src, dst } => {
                    let t = &graph.tensors[*dst];
                    let at = packed.at[&layer.name];
                    let (a, b) = (&buffers[*src], &buffers[*dst]);
                    let (name, px, relu) = (&layer.name, t.w * t.h, layer.relu);
                    op_steps(
                        (net_w, net_h),
                        || tensor_name(op),
                        &[a, b],
                        limits,
                        || affine::step(ctx, &k.affine, name, px, t.c, relu, a, weights, at, b),
                        || {
                            affine::banded_steps(
                                ctx, &k.affine, limits, name, px, t.c, relu, a, weights, at, b,
                            )
                        },
                    )?
                }
            };
            // A banded op's known cost is shared by its bands, for the profiler.
            let w = op.work(&graph);
            let n = op_steps.len() as u64;
            work.extend(op_steps.iter().map(|_| Work {
                flops: w.flops / n,
                bytes: w.bytes / n,
            }));
            steps.extend(op_steps);
        }
        Ok(Self {
            graph,
            buffers,
            raw,
            steps,
            work,
        })
    }
}

/// The heads of one level as a 1x1 conv: 32 outputs per pixel (2 anchors x 16).
pub(crate) fn head_shape(size: &(u32, u32), in_c: u32) -> ConvShape {
    ConvShape {
        in_w: size.0,
        in_h: size.1,
        in_c,
        out_c: (heads::ANCHORS * ROW) as u32,
        ksize: 1,
        stride: 1,
    }
}

/// What a run starts from.
#[derive(Clone, Copy)]
pub(crate) enum Input<'a> {
    /// RGBA8 pixels of the source image, preprocessed on the GPU.
    Rgba(&'a [u8]),
    /// The network input itself (HWC, BGR minus mean), written over the preprocess output.
    Tensor(&'a [f32]),
    /// A texture on the same device, preprocessed on the GPU with no CPU round trip.
    Texture(&'a wgpu::TextureView),
}

/// Everything needed to turn one image of a given size into faces.
/// A submitted run whose faces have not been read yet.
struct Pending {
    index: wgpu::SubmissionIndex,
    mapped: Callback<Result<(), wgpu::BufferAsyncError>>,
    timed_steps: Option<u32>,
}

pub(crate) struct Plan {
    resample: Resample,
    texture_kernel: Arc<Kernel>,
    pending: Option<Pending>,
    pixels: wgpu::Buffer,
    preprocess: Vec<Step>,
    pub net: NetPlan,
    limits: BindLimits,
    post: PostPlan,
    staging: wgpu::Buffer,
}

impl Plan {
    pub fn new(
        ctx: &GpuContext,
        k: &Kernels,
        weights: &wgpu::Buffer,
        packed: &Packed,
        tuning: &Tuning,
        r: Resample,
        limits: &BindLimits,
    ) -> Result<Self> {
        let net = NetPlan::new(
            ctx, k, weights, packed, tuning, r.dst_w, r.dst_h, true, limits,
        )?;
        let pixels = storage_buffer(ctx, "source pixels", r.src_w as u64 * r.src_h as u64 * 4);
        let input = &net.buffers[0];
        let preprocess = op_steps(
            (r.dst_w, r.dst_h),
            || "source pixels".into(),
            &[&pixels, input],
            limits,
            || preprocess::step(ctx, &k.preprocess, r, &pixels, input),
            || preprocess::banded_steps(ctx, &k.preprocess, limits, r, &pixels, input),
        )?;
        let post = PostPlan::new(
            ctx,
            &k.post,
            packed.model.post_mode(),
            &net.raw,
            net.graph.levels,
            r.dst_w,
            r.dst_h,
        );
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("faces readback"),
            size: post.faces_bytes(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Self {
            resample: r,
            texture_kernel: k.preprocess_texture.clone(),
            pending: None,
            pixels,
            preprocess,
            net,
            limits: *limits,
            post,
            staging,
        })
    }

    /// Uploads the input, records the whole pipeline in one encoder and submits it once,
    /// then asks for the kept faces to be mapped; returns at once. [`Plan::collect`] waits for
    /// them. With `timestamps`, every step gets a pass of its own, timed.
    pub fn submit(
        &mut self,
        ctx: &GpuContext,
        input: Input<'_>,
        s: RunSettings,
        timestamps: Option<&Timestamps>,
    ) {
        let texture_steps;
        let pre: &[Step] = match input {
            Input::Rgba(rgba) => {
                ctx.queue.write_buffer(&self.pixels, 0, rgba);
                &self.preprocess
            }
            Input::Tensor(x) => {
                ctx.queue
                    .write_buffer(&self.net.buffers[0], 0, bytemuck::cast_slice(x));
                &[]
            }
            Input::Texture(view) => {
                let (k, dst) = (&self.texture_kernel, &self.net.buffers[0]);
                texture_steps =
                    preprocess::texture_steps(ctx, k, &self.limits, self.resample, view, dst);
                &texture_steps
            }
        };
        self.post
            .set_run(&ctx.queue, s.threshold, s.nms_threshold, s.scale);
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("detect"),
            });
        self.post.reset(&mut encoder);
        let steps: Vec<&Step> = pre
            .iter()
            .chain(&self.net.steps)
            .chain(self.post.steps())
            .collect();
        let timed = timestamps.filter(|ts| steps.len() as u32 <= ts.capacity());
        match timed {
            Some(ts) => {
                for (i, step) in steps.iter().enumerate() {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&step.label),
                        timestamp_writes: Some(ts.writes(i as u32)),
                    });
                    step.record(&mut pass);
                }
                ts.resolve(&mut encoder, steps.len() as u32);
            }
            None => {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("detect"),
                    timestamp_writes: None,
                });
                for step in &steps {
                    step.record(&mut pass);
                }
            }
        }
        let timed_steps = timed.map(|_| steps.len() as u32);
        encoder.copy_buffer_to_buffer(
            self.post.faces_buffer(),
            0,
            &self.staging,
            0,
            self.post.faces_bytes(),
        );
        let index = ctx.queue.submit([encoder.finish()]);
        let (done, mapped) = callback();
        self.staging.slice(..).map_async(wgpu::MapMode::Read, done);
        self.pending = Some(Pending {
            index,
            mapped,
            timed_steps,
        });
    }

    /// Waits for the last [`Plan::submit`] and reads its faces (and timings, if it was timed).
    #[cfg(feature = "native")]
    pub fn collect(
        &mut self,
        ctx: &GpuContext,
        timestamps: Option<&Timestamps>,
    ) -> Result<(Vec<RawFace>, Vec<f64>)> {
        pollster::block_on(self.collect_async(ctx, timestamps))
    }

    /// [`Plan::collect`] for async callers. Natively the poll below runs the mapping callback
    /// before the await; in a browser the poll returns at once and the await yields to the
    /// event loop until the mapping is done.
    pub async fn collect_async(
        &mut self,
        ctx: &GpuContext,
        timestamps: Option<&Timestamps>,
    ) -> Result<(Vec<RawFace>, Vec<f64>)> {
        let Some(p) = self.pending.take() else {
            return Ok((Vec::new(), Vec::new()));
        };
        // Every failure is DeviceLost once the device is gone (`GpuContext::fault`).
        let gpu_err = |e: String| ctx.fault("readback", e);
        ctx.wait_for(Some(p.index), "readback")?;
        // A device destroyed while this frame ran may still have finished it, but WebGPU
        // rejects mappings pending at a loss, and wgpu frees the buffers once the queue is
        // empty: the frame gets DeviceLost, whatever the timing. Checked before waiting for
        // the mapping too, whose callback a lost device may never call.
        ctx.check_alive()?;
        p.mapped
            .await
            .ok_or_else(|| gpu_err("the mapping callback was dropped".into()))?
            .map_err(|e| gpu_err(e.to_string()))?;
        let bytes = {
            let view = self
                .staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| gpu_err(e.to_string()))?;
            view[..self.post.faces_bytes() as usize].to_vec()
        };
        self.staging.unmap();
        let times = match (timestamps, p.timed_steps) {
            (Some(ts), Some(n)) => ts.read(ctx, n).await?,
            _ => Vec::new(),
        };
        Ok((PostPlan::parse_faces(&bytes), times))
    }

    /// The cost of each step of [`Plan::steps`], where known (zero for the post-processing,
    /// whose work depends on the number of candidates).
    pub fn work(&self, from_pixels: bool) -> impl Iterator<Item = Work> + '_ {
        let r = &self.resample;
        let pre = Work {
            flops: r.dst_w as u64 * r.dst_h as u64 * 3 * 8,
            bytes: (r.src_w as u64 * r.src_h as u64 + r.dst_w as u64 * r.dst_h as u64 * 4) * 4,
        };
        let n = self.preprocess.len() as u64;
        let pre = Work {
            flops: pre.flops / n,
            bytes: pre.bytes / n,
        };
        let pre = std::iter::repeat_n(pre, if from_pixels { n as usize } else { 0 });
        pre.chain(self.net.work.iter().copied())
            .chain(self.post.steps().iter().map(|_| Work::default()))
    }

    /// The steps of a run, in order; the preprocess steps only when starting from pixels.
    pub fn steps(&self, from_pixels: bool) -> impl Iterator<Item = &Step> {
        let pre: &[Step] = if from_pixels { &self.preprocess } else { &[] };
        pre.iter().chain(&self.net.steps).chain(self.post.steps())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch::Model;

    /// Tensors that share a buffer are never alive at the same op, and a shared buffer
    /// holds each of its tensors and the widest zero pixel after the largest.
    fn check(model: Model, w: u32, h: u32) -> (u64, u64) {
        let g = Graph::for_model(model, w, h);
        let s = Slots::new(&g, true);
        let n = g.tensors.len();
        let mut alive: Vec<Vec<usize>> = vec![Vec::new(); g.ops.len()];
        for (i, op) in g.ops.iter().enumerate() {
            for t in op.tensors() {
                alive[i].push(t);
            }
        }
        let span = |t: usize| {
            let uses: Vec<usize> = (0..g.ops.len())
                .filter(|&i| alive[i].contains(&t))
                .collect();
            let first = if t == 0 { 0 } else { uses[0] };
            (first, *uses.last().unwrap())
        };
        for a in 0..n {
            let t = &g.tensors[a];
            assert!(s.data_bytes[s.slot_of[a]] >= t.w as u64 * t.h as u64 * t.c as u64 * 4);
            assert!(s.zero_bytes[s.slot_of[a]] >= t.c as u64 * 4);
            for b in a + 1..n {
                if s.slot_of[a] == s.slot_of[b] {
                    let ((fa, la), (fb, lb)) = (span(a), span(b));
                    assert!(
                        la < fb || lb < fa,
                        "{model:?}: {} and {} overlap",
                        t.name,
                        g.tensors[b].name
                    );
                }
            }
        }
        (s.total_bytes(), Slots::new(&g, false).total_bytes())
    }

    #[test]
    fn shared_buffers_never_overlap_and_save_memory() {
        for (model, w, h) in [
            (Model::Mnet025, 640, 640),
            (Model::Mnet025, 37, 23),
            (Model::Resnet50, 1365, 1024),
            (Model::Net3, 1365, 1024),
            (Model::Net3, 264, 198),
        ] {
            let (shared, own) = check(model, w, h);
            eprintln!(
                "{model:?} {w}x{h}: {} MiB shared, {} MiB one buffer per tensor",
                shared >> 20,
                own >> 20
            );
            assert!(shared * 2 < own, "{model:?} {w}x{h}: {shared} vs {own}");
        }
    }
}

//! Host side of `shaders/conv.wgsl` and `shaders/conv_subgroup.wgsl`: dense k x k convolution,
//! stride 1 or 2, fused bias and activation, output into a channel slice. The two shaders are
//! one job in two kernel families (portable, subgroup) with the same weight layout and CPU
//! reference.

use std::sync::Arc;

use super::{div_ceil, Activation, Kernel, Slot, Step, Workgroups};
use crate::gpu::{GpuContext, KernelPath};

pub const SOURCE: &str = include_str!("../../shaders/conv.wgsl");
pub const SUBGROUP_SOURCE: &str = include_str!("../../shaders/conv_subgroup.wgsl");

/// The shape of one convolution applied to one input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvShape {
    pub in_w: u32,
    pub in_h: u32,
    pub in_c: u32,
    pub out_c: u32,
    pub ksize: u32,
    pub stride: u32,
}

impl ConvShape {
    pub fn pad(&self) -> u32 {
        self.ksize / 2
    }
    pub fn out_w(&self) -> u32 {
        (self.in_w + 2 * self.pad() - self.ksize) / self.stride + 1
    }
    pub fn out_h(&self) -> u32 {
        (self.in_h + 2 * self.pad() - self.ksize) / self.stride + 1
    }
    /// Multiply-accumulates of one application, for the profiler and benchmarks.
    pub fn macs(&self) -> u64 {
        self.out_w() as u64
            * self.out_h() as u64
            * self.out_c as u64
            * self.in_c as u64
            * (self.ksize * self.ksize) as u64
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    in_w: u32,
    in_h: u32,
    in_c4: u32,
    out_w: u32,
    out_h: u32,
    out_c: u32,
    out_c_stride: u32,
    out_c_offset: u32,
    ksize: u32,
    stride: u32,
    pad: u32,
    act: u32,
    w_offset: u32,
    b_offset: u32,
    groups: u32,
    w_row: u32,
    // Subgroup kernels only: 4-pixel tiles per row and in the map.
    tiles_x: u32,
    tiles: u32,
    zero: u32,
    oy0: u32,
    rows: u32,
    src_base: u32,
    dst_base: u32,
    _pad: [u32; 2],
}

/// The conv pipelines of one kernel family, compiled once.
pub(crate) struct ConvKernels {
    pub path: KernelPath,
    /// 8 output channels per invocation.
    pub narrow: Arc<Kernel>,
    /// 16 output channels per invocation.
    pub wide: Arc<Kernel>,
    /// The family's 3x3 stride-1 specialisation, if it has one.
    pub k3s1: Option<Arc<Kernel>>,
    /// The family's 1x1 stride-1 specialisation, if it has one.
    pub k1s1: Option<Arc<Kernel>>,
}

/// Which kernel a layer runs: its family and its tile (pixels x output channels per
/// invocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Portable, 4 pixels x 8 channels, 8x8 workgroups over (x, y).
    Portable4x8,
    /// Portable, 2 pixels x 16 channels: for narrow maps.
    Portable2x16,
    /// Subgroup weights, 4 pixels x 8 channels: layers of at most 8 output channels.
    Subgroup4x8,
    /// Subgroup weights, 4 pixels x 16 channels.
    Subgroup4x16,
    /// Subgroup weights, 4 pixels x 16 channels, 3x3 stride 1 only: input columns shared
    /// by the taps of a kernel row.
    Subgroup3x3s1,
    /// Subgroup weights, 8 pixels x 16 channels, 1x1 stride 1 only: a matrix product over
    /// the flattened pixels.
    Subgroup1x1,
}

impl Variant {
    /// Every variant a family has.
    pub fn of(path: KernelPath) -> Vec<Variant> {
        match path {
            KernelPath::Portable => vec![Variant::Portable4x8, Variant::Portable2x16],
            KernelPath::Subgroup => vec![
                Variant::Subgroup4x8,
                Variant::Subgroup4x16,
                Variant::Subgroup3x3s1,
                Variant::Subgroup1x1,
            ],
        }
    }

    /// The variant for a layer.
    ///
    /// Portable: invocations of a workgroup row (8) run as one SIMD group on lavapipe and side
    /// by side on GPUs; 4-pixel tiles fill that row only when the map is at least 32 pixels
    /// wide, so narrower maps take 2-pixel tiles with 16 channels, which fill it twice as
    /// soon and still do 16 FMAs per gathered input value.
    ///
    /// Subgroup: tiles are flattened over the map, so no lane idles on narrow maps; 16
    /// channels per tile halve the input gathers per FMA, except where the layer has at most
    /// 8 channels and half of them would be padding; 3x3 stride 1 and 1x1 stride 1 layers
    /// have kernels of their own.
    ///
    /// `RETINAFACE_CONV_TILE=4x8|2x16|4x16` forces a tile of the family, for benchmarking.
    pub fn for_shape(path: KernelPath, shape: &ConvShape) -> Variant {
        let forced = std::env::var("RETINAFACE_CONV_TILE");
        match (path, forced.as_deref()) {
            (KernelPath::Portable, Ok("4x8")) => return Variant::Portable4x8,
            (KernelPath::Portable, Ok("2x16")) => return Variant::Portable2x16,
            (KernelPath::Subgroup, Ok("4x8")) => return Variant::Subgroup4x8,
            (KernelPath::Subgroup, Ok("4x16")) => return Variant::Subgroup4x16,
            _ => {}
        }
        match path {
            KernelPath::Portable if shape.out_w() < 32 && shape.out_c >= 16 => {
                Variant::Portable2x16
            }
            KernelPath::Portable => Variant::Portable4x8,
            KernelPath::Subgroup if shape.out_c <= 8 => Variant::Subgroup4x8,
            KernelPath::Subgroup if shape.ksize == 3 && shape.stride == 1 => Variant::Subgroup3x3s1,
            KernelPath::Subgroup if shape.ksize == 1 && shape.stride == 1 => Variant::Subgroup1x1,
            KernelPath::Subgroup => Variant::Subgroup4x16,
        }
    }

    /// The variant's name in the tuning cache and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Portable4x8 => "portable_4x8",
            Variant::Portable2x16 => "portable_2x16",
            Variant::Subgroup4x8 => "subgroup_4x8",
            Variant::Subgroup4x16 => "subgroup_4x16",
            Variant::Subgroup3x3s1 => "subgroup_3x3s1",
            Variant::Subgroup1x1 => "subgroup_1x1",
        }
    }

    pub fn from_name(name: &str) -> Option<Variant> {
        [KernelPath::Portable, KernelPath::Subgroup]
            .into_iter()
            .flat_map(Variant::of)
            .find(|v| v.name() == name)
    }

    pub fn path(self) -> KernelPath {
        match self {
            Variant::Portable4x8 | Variant::Portable2x16 => KernelPath::Portable,
            Variant::Subgroup4x8
            | Variant::Subgroup4x16
            | Variant::Subgroup3x3s1
            | Variant::Subgroup1x1 => KernelPath::Subgroup,
        }
    }

    fn pixels(self) -> u32 {
        match self {
            Variant::Portable2x16 => 2,
            Variant::Subgroup1x1 => 8,
            _ => 4,
        }
    }

    fn channels(self) -> u32 {
        match self {
            Variant::Portable4x8 | Variant::Subgroup4x8 => 8,
            Variant::Portable2x16
            | Variant::Subgroup4x16
            | Variant::Subgroup3x3s1
            | Variant::Subgroup1x1 => 16,
        }
    }

    /// Whether the variant can run `shape`.
    pub fn runs(self, shape: &ConvShape) -> bool {
        match self {
            Variant::Subgroup3x3s1 => shape.ksize == 3 && shape.stride == 1,
            Variant::Subgroup1x1 => shape.ksize == 1 && shape.stride == 1,
            _ => true,
        }
    }
}

/// Compiles the conv pipelines of `path`'s family; `banded` ones read windows of tensors
/// larger than a binding (see [`super::band`]).
pub(crate) fn kernels(ctx: &GpuContext, path: KernelPath, banded: bool) -> ConvKernels {
    let slots = [Slot::Uniform, Slot::Read, Slot::Read, Slot::ReadWrite];
    let constants: &[(&str, f64)] = if banded { &[("BANDED", 1.0)] } else { &[] };
    let k =
        |name, source, entry| Kernel::with_constants(ctx, name, source, entry, &slots, constants);
    match path {
        KernelPath::Portable => ConvKernels {
            path,
            narrow: k("conv_4x8", SOURCE, "main_4x8"),
            wide: k("conv_2x16", SOURCE, "main_2x16"),
            k3s1: None,
            k1s1: None,
        },
        KernelPath::Subgroup => ConvKernels {
            path,
            narrow: k("conv_sg_4x8", SUBGROUP_SOURCE, "main_4x8"),
            wide: k("conv_sg_4x16", SUBGROUP_SOURCE, "main_4x16"),
            k3s1: Some(k("conv_sg_3x3s1", SUBGROUP_SOURCE, "main_3x3s1_4x16")),
            k1s1: Some(k("conv_sg_1x1", SUBGROUP_SOURCE, "main_1x1_8x16")),
        },
    }
}

/// Where a layer's packed weights live in the weight buffer, in f32 units (multiples of 4).
#[derive(Clone, Copy, Debug)]
pub struct PackedAt {
    pub weights: usize,
    pub bias: usize,
}

/// Input of a convolution: a buffer holding the image and, at vec4 index `zero`, a pixel of
/// zeros that taps outside the image read.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub zero: u32,
}

impl<'a> Source<'a> {
    /// A buffer of its own: the zero pixel right after the image.
    // Only the tuner (native: it times dispatches on the wall clock) and tests build one.
    #[cfg(any(test, feature = "native"))]
    pub fn after_image(buffer: &'a wgpu::Buffer, w: u32, h: u32, channels: u32) -> Self {
        Self {
            buffer,
            zero: w * h * channels / 4,
        }
    }
}

/// Output of a convolution: a buffer of `channels` channels per pixel, written from `offset` on.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub channels: u32,
    pub offset: u32,
}

/// Tiles of 64 invocations per workgroup in the subgroup kernels (their `@workgroup_size`).
const SUBGROUP_WORKGROUP: u32 = 64;

/// Output rows `y0..y1` of a dispatch, and where the bound windows start in the input (vec4s)
/// and output (floats) tensors: the whole map through whole buffers, or one band.
#[derive(Clone, Copy, Debug)]
struct Rows {
    y0: u32,
    y1: u32,
    src_base: u32,
    dst_base: u32,
}

/// What one dispatch of a layer needs besides its bindings.
struct Layer<'a> {
    kernels: &'a ConvKernels,
    shape: ConvShape,
    variant: Variant,
    act: Activation,
    at: PackedAt,
    dst_channels: u32,
    dst_offset: u32,
}

impl Layer<'_> {
    fn kernel(&self) -> &Arc<Kernel> {
        let k = self.kernels;
        match self.variant {
            Variant::Subgroup3x3s1 => k.k3s1.as_ref().expect("the subgroup family"),
            Variant::Subgroup1x1 => k.k1s1.as_ref().expect("the subgroup family"),
            v if v.channels() == 8 => &k.narrow,
            _ => &k.wide,
        }
    }

    fn params(&self, zero: u32, r: Rows) -> (Params, [u32; 3]) {
        let (shape, variant) = (self.shape, self.variant);
        let rows = r.y1 - r.y0;
        let groups = div_ceil(shape.out_c, variant.channels());
        let tiles_x = div_ceil(shape.out_w(), variant.pixels());
        let tiles = match variant {
            // Tiles run over the flattened pixels, rows ignored.
            Variant::Subgroup1x1 => div_ceil(shape.out_w() * rows, variant.pixels()),
            _ => tiles_x * rows,
        };
        let params = Params {
            in_w: shape.in_w,
            in_h: shape.in_h,
            in_c4: shape.in_c / 4,
            out_w: shape.out_w(),
            out_h: shape.out_h(),
            out_c: shape.out_c,
            out_c_stride: self.dst_channels,
            out_c_offset: self.dst_offset,
            ksize: shape.ksize,
            stride: shape.stride,
            pad: shape.pad(),
            act: self.act as u32,
            w_offset: (self.at.weights / 4) as u32,
            b_offset: (self.at.bias / 4) as u32,
            groups,
            w_row: shape.out_c.next_multiple_of(16) / 4,
            tiles_x,
            tiles,
            zero,
            oy0: r.y0,
            rows,
            src_base: r.src_base,
            dst_base: r.dst_base,
            _pad: [0; 2],
        };
        let workgroups = match variant.path() {
            KernelPath::Portable => [div_ceil(tiles_x, 8), div_ceil(rows, 8), groups],
            KernelPath::Subgroup => [div_ceil(tiles, SUBGROUP_WORKGROUP), groups, 1],
        };
        (params, workgroups)
    }

    /// Bytes `start..end` of the input rows that output rows `y0..y1` read.
    fn src_bytes(&self, y0: u32, y1: u32) -> (u64, u64) {
        let s = self.shape;
        let (first, last) = super::band::input_rows(y0, y1, s.ksize, s.stride, s.pad(), s.in_h);
        let row = s.in_w as u64 * s.in_c as u64 * 4;
        (first as u64 * row, last as u64 * row)
    }

    /// Bytes `start..end` of the output that rows `y0..y1` write.
    fn dst_bytes(&self, y0: u32, y1: u32) -> (u64, u64) {
        let w = self.shape.out_w() as u64;
        let (c, off) = (self.dst_channels as u64, self.dst_offset as u64);
        let start = (y0 as u64 * w * c + off) * 4;
        let end = ((y1 as u64 * w - 1) * c + off + self.shape.out_c as u64) * 4;
        (start, end)
    }
}

impl<'a> Layer<'a> {
    /// A layer of `kernels`' family writing into `dst`'s channel slice; panics on a variant
    /// of another family or one that cannot run the shape (the plan picks only runnable ones).
    fn new(
        kernels: &'a ConvKernels,
        shape: ConvShape,
        variant: Variant,
        act: Activation,
        at: PackedAt,
        dst: &Target<'_>,
    ) -> Self {
        debug_assert!(
            shape.in_c.is_multiple_of(4),
            "conv input channels must be padded to a multiple of 4"
        );
        assert_eq!(
            variant.path(),
            kernels.path,
            "conv variant {variant:?} is not of the compiled family"
        );
        assert!(variant.runs(&shape), "{variant:?} cannot run {shape:?}");
        Self {
            kernels,
            shape,
            variant,
            act,
            at,
            dst_channels: dst.channels,
            dst_offset: dst.offset,
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn step(
    ctx: &GpuContext,
    kernels: &ConvKernels,
    label: &str,
    shape: ConvShape,
    variant: Variant,
    act: Activation,
    src: Source<'_>,
    weights: &wgpu::Buffer,
    at: PackedAt,
    dst: Target<'_>,
) -> Step {
    let layer = Layer::new(kernels, shape, variant, act, at, &dst);
    let whole = Rows {
        y0: 0,
        y1: shape.out_h(),
        src_base: 0,
        dst_base: 0,
    };
    let (params, workgroups) = layer.params(src.zero, whole);
    Step::with_uniform(
        ctx,
        layer.kernel(),
        label,
        &params,
        &[src.buffer, weights, dst.buffer],
        Workgroups::Direct(workgroups),
    )
}

/// The layer as dispatches over bands of output rows, each binding only the input rows it
/// reads and the output rows it writes; `kernels` are the banded family (taps outside the
/// image read zeros without a zero pixel). `None` when not even one output row fits.
#[allow(clippy::too_many_arguments)]
pub(crate) fn banded_steps(
    ctx: &GpuContext,
    kernels: &ConvKernels,
    limits: &super::band::BindLimits,
    label: &str,
    shape: ConvShape,
    variant: Variant,
    act: Activation,
    src: &wgpu::Buffer,
    weights: &wgpu::Buffer,
    at: PackedAt,
    dst: Target<'_>,
) -> Option<Vec<Step>> {
    let layer = Layer::new(kernels, shape, variant, act, at, &dst);
    super::band::steps(
        ctx,
        layer.kernel(),
        limits,
        label,
        shape.out_h(),
        &[src, weights, dst.buffer],
        |y0, y1| {
            vec![
                Some(layer.src_bytes(y0, y1)),
                None,
                Some(layer.dst_bytes(y0, y1)),
            ]
        },
        |y0, y1, off| {
            let rows = Rows {
                y0,
                y1,
                src_base: (off[0] / 16) as u32,
                dst_base: (off[2] / 4) as u32,
            };
            layer.params(0, rows)
        },
    )
}

/// Repacks PyTorch's `[co][ci][ky][kx]` weights into the shader's
/// `[ky][kx][ci padded to in_c_pad][co padded to 16]`; the padding is zeros.
pub fn pack_weights(w: &[f32], out_c: usize, in_c: usize, in_c_pad: usize, k: usize) -> Vec<f32> {
    let co_p = out_c.next_multiple_of(16);
    let mut out = vec![0f32; k * k * in_c_pad * co_p];
    for co in 0..out_c {
        for ci in 0..in_c {
            for ky in 0..k {
                for kx in 0..k {
                    out[((ky * k + kx) * in_c_pad + ci) * co_p + co] =
                        w[((co * in_c + ci) * k + ky) * k + kx];
                }
            }
        }
    }
    out
}

/// Bias padded with zeros to a multiple of 16 channels.
pub fn pack_bias(b: &[f32]) -> Vec<f32> {
    let mut out = b.to_vec();
    out.resize(b.len().next_multiple_of(16), 0.0);
    out
}

/// CPU reference: HWC input, PyTorch-layout weights, HWC output of `shape.out_c` channels.
pub fn cpu(shape: ConvShape, act: Activation, src: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let (iw, ih, ic, oc, k, s, pad) = (
        shape.in_w as i64,
        shape.in_h as i64,
        shape.in_c as usize,
        shape.out_c as usize,
        shape.ksize as i64,
        shape.stride as i64,
        shape.pad() as i64,
    );
    let (ow, oh) = (shape.out_w() as usize, shape.out_h() as usize);
    let mut out = vec![0f32; ow * oh * oc];
    for oy in 0..oh {
        for ox in 0..ow {
            for co in 0..oc {
                let mut acc = b[co] as f64;
                for ky in 0..k {
                    let iy = oy as i64 * s + ky - pad;
                    if iy < 0 || iy >= ih {
                        continue;
                    }
                    for kx in 0..k {
                        let ix = ox as i64 * s + kx - pad;
                        if ix < 0 || ix >= iw {
                            continue;
                        }
                        let base = ((iy * iw + ix) as usize) * ic;
                        for ci in 0..ic {
                            let wv = w[((co * ic + ci) * k as usize + ky as usize) * k as usize
                                + kx as usize];
                            acc += src[base + ci] as f64 * wv as f64;
                        }
                    }
                }
                out[(oy * ow + ox) * oc + co] = act.apply(acc as f32);
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

    /// `shape.in_c` is the real channel count: the GPU gets it padded to a multiple of 4 with
    /// zero channels, and the input gets the zero pixel at its end, as the plan lays them out.
    fn check(shape: ConvShape, act: Activation, slice: Option<(u32, u32)>, seed: u64) {
        let ctx = ctx();
        let mut rng = Rng(seed);
        let k = shape.ksize as usize;
        let (ic, oc) = (shape.in_c as usize, shape.out_c as usize);
        let ic_pad = ic.next_multiple_of(4);
        let pixels_in = (shape.in_w * shape.in_h) as usize;
        let src = rng.vec(pixels_in * ic);
        let mut src_pad = vec![0f32; (pixels_in + 1) * ic_pad];
        for px in 0..pixels_in {
            src_pad[px * ic_pad..px * ic_pad + ic].copy_from_slice(&src[px * ic..(px + 1) * ic]);
        }
        let w = rng.vec(oc * ic * k * k);
        let b = rng.vec(oc);
        // Weights start at a non-zero offset, as they do inside the model's weight buffer.
        let mut arena = vec![0f32; 8];
        let wat = arena.len();
        arena.extend(pack_weights(&w, oc, ic, ic_pad, k));
        let bat = arena.len();
        arena.extend(pack_bias(&b));
        let (channels, offset) = slice.unwrap_or((shape.out_c, 0));
        let pixels = (shape.out_w() * shape.out_h()) as usize;
        let src_buf = upload_f32(ctx, "src", &src_pad);
        let gpu_shape = ConvShape {
            in_c: ic_pad as u32,
            ..shape
        };
        let w_buf = upload_f32(ctx, "w", &arena);
        let sentinel = vec![7.5f32; pixels * channels as usize];
        let families: Vec<KernelPath> = [KernelPath::Portable, KernelPath::Subgroup]
            .into_iter()
            .filter(|p| p.supported_by(&ctx.device))
            .collect();
        // CI's adapter (lavapipe) has subgroups: both families must be tested there.
        if ctx.device.adapter_info().device_type == wgpu::DeviceType::Cpu {
            assert_eq!(
                families.len(),
                2,
                "lavapipe should run the subgroup kernels"
            );
        }
        // Bands of one or two output rows through windows at 256-byte offsets.
        let in_row = (shape.in_w as usize * ic_pad * 4) as u64;
        let out_row = (shape.out_w() * channels * 4) as u64;
        let limits = crate::ops::band::BindLimits {
            max_buffer: 1 << 30,
            max_binding: ((shape.ksize + shape.stride) as u64 * in_row).max(2 * out_row) + 512,
            align: 256,
        };
        for path in families {
            let kern = kernels(ctx, path, false);
            let banded = kernels(ctx, path, true);
            for tile in Variant::of(path).into_iter().filter(|v| v.runs(&shape)) {
                let dst_buf = upload_f32(ctx, "dst", &sentinel);
                let target = Target {
                    buffer: &dst_buf,
                    channels,
                    offset,
                };
                let at = PackedAt {
                    weights: wat,
                    bias: bat,
                };
                run_steps(
                    ctx,
                    &[step(
                        ctx,
                        &kern,
                        "conv",
                        gpu_shape,
                        tile,
                        act,
                        Source::after_image(&src_buf, shape.in_w, shape.in_h, ic_pad as u32),
                        &w_buf,
                        at,
                        target,
                    )],
                );
                let gpu = download_f32(ctx, &dst_buf, sentinel.len()).unwrap();
                // The same layer in bands: the same arithmetic, so the same bits.
                let band_buf = upload_f32(ctx, "dst", &sentinel);
                let target = Target {
                    buffer: &band_buf,
                    channels,
                    offset,
                };
                let steps = banded_steps(
                    ctx, &banded, &limits, "conv", gpu_shape, tile, act, &src_buf, &w_buf, at,
                    target,
                )
                .expect("a row fits");
                assert!(
                    steps.len() > 1 || in_row * shape.in_h as u64 <= limits.max_binding,
                    "{shape:?}: one band"
                );
                run_steps(ctx, &steps);
                let by_band = download_f32(ctx, &band_buf, sentinel.len()).unwrap();
                assert!(
                    gpu.iter()
                        .zip(&by_band)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{shape:?} {tile:?}: banded run differs from the whole one"
                );
                let cpu = cpu(shape, act, &src, &w, &b);
                let mut got = Vec::with_capacity(cpu.len());
                for px in 0..pixels {
                    for c in 0..channels as usize {
                        let v = gpu[px * channels as usize + c];
                        if c >= offset as usize && c < (offset + shape.out_c) as usize {
                            got.push(v);
                        } else {
                            assert_eq!(v, 7.5, "conv wrote outside its channel slice");
                        }
                    }
                }
                assert_close(&got, &cpu, 1e-4, &format!("{shape:?} {tile:?}"));
            }
        }
    }

    #[test]
    fn conv7x7_stride2() {
        let s = ConvShape {
            in_w: 23,
            in_h: 19,
            in_c: 3,
            out_c: 16,
            ksize: 7,
            stride: 2,
        };
        check(s, Activation::Relu, None, 5);
    }

    #[test]
    fn conv3x3_stride1_odd_sizes() {
        let s = ConvShape {
            in_w: 13,
            in_h: 7,
            in_c: 5,
            out_c: 7,
            ksize: 3,
            stride: 1,
        };
        check(s, Activation::Leaky, None, 1);
    }

    #[test]
    fn conv3x3_stride2_odd_sizes() {
        let s = ConvShape {
            in_w: 17,
            in_h: 11,
            in_c: 3,
            out_c: 10,
            ksize: 3,
            stride: 2,
        };
        check(s, Activation::Relu, None, 2);
    }

    #[test]
    fn conv1x1_into_channel_slice() {
        let s = ConvShape {
            in_w: 9,
            in_h: 5,
            in_c: 19,
            out_c: 6,
            ksize: 1,
            stride: 1,
        };
        check(s, Activation::None, Some((15, 5)), 3);
    }

    #[test]
    fn conv3x3_many_workgroups_and_channel_groups() {
        // 10 x 23 tiles (4 workgroups of 64), 3 groups of 16 output channels, the last one
        // half padding.
        let s = ConvShape {
            in_w: 37,
            in_h: 23,
            in_c: 20,
            out_c: 40,
            ksize: 3,
            stride: 1,
        };
        check(s, Activation::Relu, Some((44, 4)), 6);
    }

    #[test]
    fn conv3x3_wide_channels() {
        let s = ConvShape {
            in_w: 21,
            in_h: 6,
            in_c: 67,
            out_c: 33,
            ksize: 3,
            stride: 1,
        };
        check(s, Activation::Leaky, None, 4);
    }
}

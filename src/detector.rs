//! The detector: weights on the GPU once, a cached plan per input size, one submit per image.

#[cfg(feature = "native")]
use std::path::Path;
#[cfg(feature = "native")]
use std::sync::OnceLock;
use std::sync::{Arc, Mutex, RwLock};

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::face::{Face, Landmarks};
use crate::gpu::profiler::Timestamps;
use crate::gpu::{GpuContext, KernelPath};
use crate::model::arch::Model;
#[cfg(feature = "native")]
use crate::model::plan::NetPlan;
use crate::model::plan::{too_large, Input, Kernels, Plan, RunSettings};
use crate::model::postprocess::RawFace;
#[cfg(feature = "native")]
use crate::model::weights;
use crate::model::weights::{Packed, Weights};
use crate::ops::band::BindLimits;
use crate::ops::preprocess::{InputFormat, Resample};
#[cfg(feature = "native")]
use crate::ops::{warp, Kernel};
use crate::options::DetectOptions;
use crate::profile::{Profile, StepTime};
#[cfg(feature = "native")]
use crate::tuning::TunedShape;
use crate::tuning::Tuning;

/// Images smaller than this on either side are refused: the smallest anchor is 16 px.
pub const MIN_SIDE: u32 = 16;
/// Plans (buffers for one input size) kept at most; the least recently used goes first.
const MAX_PLANS: usize = 6;

/// Idle plans, least recently used first.
type PlanCache = Vec<(Resample, Plan)>;

/// A RetinaFace detector (MobileNet0.25 or ResNet50, as the weights say) bound to one wgpu
/// device.
///
/// `Send + Sync`: share it between threads; each call takes buffers of its own (a cached
/// plan per input size, or a new one while another call uses it), so calls never wait for
/// each other's detections.
///
/// # GPU faults
/// A lost or destroyed device makes every call, and every frame in flight in a [`Stream`],
/// return [`Error::DeviceLost`]; a failed allocation returns [`Error::OutOfMemory`]. Neither
/// panics, and the detector stays usable after recovery, without restarting the process:
///
/// ```no_run
/// # use retinaface::{Detector, Error};
/// # let mut detector = Detector::new(None)?;
/// # let image = image::RgbaImage::new(64, 64);
/// let faces = match detector.detect(&image) {
///     Err(Error::DeviceLost { .. }) => {
///         // A new device, the weights uploaded again, the old buffers dropped.
///         detector.recover()?;
///         detector.detect(&image)?
///     }
///     other => other?,
/// };
/// # Ok::<(), Error>(())
/// ```
/// A detector shared between threads (`Arc<Detector>`) is replaced instead: build its
/// successor with [`Detector::rebuild`] and swap it in. On a device you provided
/// ([`GpuContext::from_device`]), make a new device and call [`Detector::recover_on`] or
/// [`Detector::rebuild_on`].
pub struct Detector {
    ctx: GpuContext,
    kernels: Kernels,
    weights: wgpu::Buffer,
    /// The packed weights, kept on the host so a recovery can upload them again.
    packed: Arc<Packed>,
    plans: Mutex<PlanCache>,
    options: DetectOptions,
    timestamps: Mutex<Option<Timestamps>>,
    /// The crop shader (`align.rs`), compiled on first use: detection alone never needs it.
    #[cfg(feature = "native")]
    warp: OnceLock<Arc<Kernel>>,
    /// Which conv kernel each layer shape runs (the rule table, or measured choices).
    tuning: RwLock<Tuning>,
    /// Smaller binding limits than the device's, set by [`Detector::set_binding_limit`].
    bind_limits: RwLock<Option<BindLimits>>,
}

impl Detector {
    /// Opens the default GPU and loads the weights from `weights` or the usual places
    /// (`RETINAFACE_WEIGHTS`, `./weights`, the per-user cache).
    #[cfg(feature = "native")]
    pub fn new(weights: Option<&Path>) -> Result<Self> {
        Self::for_model(Model::Mnet025, weights)
    }

    /// Like [`Detector::new`], but the usual places are searched for `model`'s file
    /// ([`Model::file_name`], as `retinaface fetch-weights MODEL` installs it). A file named
    /// by `weights` or `RETINAFACE_WEIGHTS` is used whatever model it holds. `.pth`
    /// checkpoints are converted in memory.
    #[cfg(feature = "native")]
    pub fn for_model(model: Model, weights: Option<&Path>) -> Result<Self> {
        let path = weights::resolve_for(model, weights)?;
        let w = Weights::load(&path)?;
        Self::with_context(GpuContext::new()?, &w)
    }

    /// The network the detector runs.
    pub fn model(&self) -> Model {
        self.packed.model
    }

    /// Runs on the caller's device and queue, with the fastest kernels the device supports
    /// ([`GpuContext::kernel_path`]). Fails with [`Error::OutOfMemory`] when the weights do
    /// not fit the device, and with [`Error::DeviceLost`] on a lost device.
    #[cfg(feature = "native")]
    pub fn with_context(ctx: GpuContext, w: &Weights) -> Result<Self> {
        pollster::block_on(Self::with_context_async(ctx, w))
    }

    /// [`Detector::with_context`] without blocking: the constructor for a browser, where the
    /// upload's errors arrive through promises (`ctx` from [`GpuContext::new_async`]).
    pub async fn with_context_async(ctx: GpuContext, w: &Weights) -> Result<Self> {
        let path = ctx.kernel_path();
        Self::build_async(ctx, Arc::new(w.pack()), path).await
    }

    /// Like [`Detector::with_context`] with a chosen kernel family: to compare the families,
    /// or to run the portable one where a driver's subgroups misbehave. Detections are the
    /// same either way within float rounding.
    #[cfg(feature = "native")]
    pub fn with_kernel_path(ctx: GpuContext, w: &Weights, path: KernelPath) -> Result<Self> {
        if !path.supported_by(&ctx.device) {
            return Err(Error::InvalidOption(format!(
                "this device cannot run the {path:?} kernels (they need Features::SUBGROUP and \
                 subgroups of at least 8 lanes); use KernelPath::Portable"
            )));
        }
        Self::build(ctx, Arc::new(w.pack()), path)
    }

    /// The kernel family the detector's convolutions run.
    pub fn kernel_path(&self) -> KernelPath {
        self.kernels.conv.path
    }

    /// Reads the choices `retinaface bench --tune` saved for this adapter, if any
    /// (`RETINAFACE_TUNING=off` ignores them).
    #[cfg(feature = "native")]
    fn with_cached_tuning(self) -> Self {
        if std::env::var("RETINAFACE_TUNING").as_deref() == Ok("off") {
            return self;
        }
        if let Some(file) = Tuning::default_file() {
            let t = Tuning::load(&file, &self.tuning_key());
            *self.tuning.write().unwrap_or_else(|e| e.into_inner()) = t;
        }
        self
    }

    /// Without files there is no saved tuning: the rule table chooses.
    #[cfg(not(feature = "native"))]
    fn with_cached_tuning(self) -> Self {
        self
    }

    /// GPU memory of the activations of a `net_w x net_h` network input: with buffers shared
    /// by tensors whose lifetimes do not overlap (what a detection allocates), and with one
    /// buffer per tensor (what it would take without sharing).
    pub fn activation_bytes(&self, net_w: u32, net_h: u32) -> (u64, u64) {
        let g = crate::model::arch::Graph::for_model(self.packed.model, net_w, net_h);
        (
            crate::model::plan::Slots::new(&g, true).total_bytes(),
            crate::model::plan::Slots::new(&g, false).total_bytes(),
        )
    }

    /// The key of this adapter, driver and kernel family in the tuning cache.
    pub fn tuning_key(&self) -> String {
        Tuning::adapter_key(&self.ctx, self.kernel_path())
    }

    /// The kernel choices in use.
    pub fn tuning(&self) -> Tuning {
        self.tuning
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the kernel choices; plans built before are dropped so the next run uses them.
    pub fn set_tuning(&self, tuning: Tuning) {
        *self.tuning.write().unwrap_or_else(|e| e.into_inner()) = tuning;
        self.plans.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Times every conv kernel of the detector's family on every conv shape of a
    /// `net_w x net_h` network input, on this device, and uses the fastest from now on
    /// (spending at most about `budget`; shapes not reached keep the rule table's choice).
    /// Returns the measurements; [`Tuning::save`] with [`Detector::tuning_key`] keeps them
    /// for later detectors on this adapter (`retinaface bench --tune` does both).
    #[cfg(feature = "native")]
    pub fn tune(
        &self,
        net_w: u32,
        net_h: u32,
        budget: std::time::Duration,
    ) -> Result<Vec<TunedShape>> {
        if net_w < MIN_SIDE || net_h < MIN_SIDE {
            return Err(Error::ImageTooSmall {
                width: net_w,
                height: net_h,
                min: MIN_SIDE,
            });
        }
        // Tuning times whole-map dispatches: every buffer must fit one binding.
        let limits = self.bind_limits();
        let whole = BindLimits {
            max_buffer: limits.max_binding,
            ..limits
        };
        if let Some(e) = too_large(self.packed.model, net_w, net_h, 0, &whole) {
            return Err(e);
        }
        let graph = crate::model::arch::Graph::for_model(self.packed.model, net_w, net_h);
        let measured = self.scoped("tuning", || {
            crate::tuning::measure(
                &self.ctx,
                &self.kernels,
                &self.weights,
                &self.packed,
                &graph,
                budget,
            )
        })??;
        let mut tuning = self.tuning();
        for m in &measured {
            tuning.set(m.shape, m.chosen);
        }
        self.set_tuning(tuning);
        Ok(measured)
    }

    #[cfg(feature = "native")]
    fn build(ctx: GpuContext, packed: Arc<Packed>, path: KernelPath) -> Result<Self> {
        pollster::block_on(Self::build_async(ctx, packed, path))
    }

    async fn build_async(ctx: GpuContext, packed: Arc<Packed>, path: KernelPath) -> Result<Self> {
        ctx.check_alive()?;
        // The weights are one storage binding: a device whose limits cannot hold it (a
        // caller's device opened with small limits) gets a typed error, not wgpu's panic.
        let bytes = (packed.data.len() * 4) as u64;
        let limit = ctx.max_binding_bytes();
        if bytes > limit {
            return Err(Error::OutOfMemory {
                what: format!("the {} weights", packed.model.name()),
                bytes: Some(bytes),
                reason: format!(
                    "they are one storage buffer, over this device's limit of {limit} bytes \
                     (max_storage_buffer_binding_size / max_buffer_size)"
                ),
            });
        }
        let (kernels, weights) = ctx
            .scoped_async("uploading the weights", Some(bytes), async || {
                let weights = ctx
                    .device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("weights"),
                        contents: bytemuck::cast_slice(&packed.data),
                        usage: wgpu::BufferUsages::STORAGE,
                    });
                (Kernels::new(&ctx, path), weights)
            })
            .await?;
        Ok(Self {
            kernels,
            ctx,
            weights,
            packed,
            plans: Mutex::new(Vec::new()),
            options: DetectOptions::default(),
            timestamps: Mutex::new(None),
            #[cfg(feature = "native")]
            warp: OnceLock::new(),
            tuning: RwLock::new(Tuning::default()),
            bind_limits: RwLock::new(None),
        }
        .with_cached_tuning())
    }

    /// The binding limits plans are built for: the device's, or those of
    /// [`Detector::set_binding_limit`].
    fn bind_limits(&self) -> BindLimits {
        let device = BindLimits::of(&self.ctx);
        let set = *self.bind_limits.read().unwrap_or_else(|e| e.into_inner());
        set.unwrap_or(device)
    }

    /// Builds later plans as if one storage binding held at most `max_binding` bytes (never
    /// more than the device allows) at offsets that are multiples of `align` (a power of two,
    /// never less than the device's alignment); `None` restores the device's limits. Tensors
    /// over the limit run in bands of rows (see `ops::band`), which gives the same results:
    /// for tests of the banded path on small images, and to work around a driver whose large
    /// bindings misbehave. Drops the cached plans.
    #[doc(hidden)]
    pub fn set_binding_limit(&self, limit: Option<(u64, u64)>) {
        let device = BindLimits::of(&self.ctx);
        let limits = limit.map(|(max_binding, align)| BindLimits {
            max_binding: max_binding.clamp(1024, device.max_binding),
            align: align.next_power_of_two().max(device.align),
            ..device
        });
        *self.bind_limits.write().unwrap_or_else(|e| e.into_inner()) = limits;
        self.plans.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// After [`Error::DeviceLost`]: opens a new device, uploads the weights again and drops
    /// the buffers of the lost one; options, kernel family and tuning carry over. Frames of
    /// a [`Stream`] must be finished first (the borrow checker sees to it). Only for a
    /// detector on a device this crate opened ([`Detector::new`], [`GpuContext::new`]): on
    /// yours, call [`Detector::recover_on`] with a new device.
    #[cfg(feature = "native")]
    pub fn recover(&mut self) -> Result<()> {
        if !self.ctx.owns_device() {
            return Err(Error::InvalidOption(
                "this detector runs on a device you provided (GpuContext::from_device); \
                 request a new device and call Detector::recover_on(GpuContext::from_device(..))"
                    .into(),
            ));
        }
        *self = self.rebuild()?;
        Ok(())
    }

    /// Like [`Detector::recover`], on the device and queue of `ctx` (the caller's new device).
    #[cfg(feature = "native")]
    pub fn recover_on(&mut self, ctx: GpuContext) -> Result<()> {
        *self = self.rebuild_on(ctx)?;
        Ok(())
    }

    /// A new detector like this one (weights, options, kernel family, tuning) on a new
    /// device of its own: the successor of a detector shared between threads whose device
    /// was lost, swapped in where it is shared (an `Arc<Detector>` behind a lock).
    #[cfg(feature = "native")]
    pub fn rebuild(&self) -> Result<Detector> {
        self.rebuild_on(GpuContext::new()?)
    }

    /// Like [`Detector::rebuild`], on the device and queue of `ctx`.
    #[cfg(feature = "native")]
    pub fn rebuild_on(&self, ctx: GpuContext) -> Result<Detector> {
        let path = if self.kernel_path().supported_by(&ctx.device) {
            self.kernel_path()
        } else {
            ctx.kernel_path()
        };
        let mut next = Self::build(ctx, self.packed.clone(), path)?;
        next.options = self.options;
        *next
            .bind_limits
            .get_mut()
            .unwrap_or_else(|e| e.into_inner()) =
            *self.bind_limits.read().unwrap_or_else(|e| e.into_inner());
        // Choices measured here (saved or not) hold for the same adapter and family.
        if next.tuning_key() == self.tuning_key() {
            *next.tuning.get_mut().unwrap_or_else(|e| e.into_inner()) = self.tuning();
        }
        Ok(next)
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    pub fn options(&self) -> &DetectOptions {
        &self.options
    }

    /// Sets the options used by [`Detector::detect`].
    pub fn with_options(mut self, options: DetectOptions) -> Result<Self> {
        options.validate()?;
        self.options = options;
        Ok(self)
    }

    /// Detects faces with the detector's options; sorted by score, highest first.
    #[cfg(feature = "native")]
    pub fn detect(&self, image: &image::RgbaImage) -> Result<Vec<Face>> {
        self.detect_with(image, &self.options)
    }

    #[cfg(feature = "native")]
    pub fn detect_path(&self, path: &Path) -> Result<Vec<Face>> {
        self.detect_path_with(path, &self.options)
    }

    #[cfg(feature = "native")]
    pub fn detect_path_with(&self, path: &Path, opts: &DetectOptions) -> Result<Vec<Face>> {
        self.detect_with(&crate::image_io::load_path(path)?, opts)
    }

    /// Detects on an already preprocessed network input: `w x h x 3` floats, channels-last, in
    /// the model's input format ([`Model::input_format`]): BGR minus (104, 117, 123) for
    /// Pytorch_Retinaface's networks, raw RGB 0..255 for retina-face's. `opts.resize` is
    /// ignored: boxes are in input pixels.
    #[cfg(feature = "native")]
    pub fn detect_tensor(
        &self,
        input_hwc: &[f32],
        w: u32,
        h: u32,
        opts: &DetectOptions,
    ) -> Result<Vec<Face>> {
        pollster::block_on(self.detect_tensor_async(input_hwc, w, h, opts))
    }

    /// [`Detector::detect_tensor`] without blocking the thread (see
    /// [`Detector::detect_texture_async`]).
    pub async fn detect_tensor_async(
        &self,
        input_hwc: &[f32],
        w: u32,
        h: u32,
        opts: &DetectOptions,
    ) -> Result<Vec<Face>> {
        opts.validate()?;
        let expected = w as usize * h as usize * 3;
        if input_hwc.len() != expected {
            return Err(Error::PixelBufferSize {
                width: w,
                height: h,
                channels: 3,
                expected,
                found: input_hwc.len(),
            });
        }
        let r = Resample {
            src_w: w,
            src_h: h,
            dst_w: w,
            dst_h: h,
            scale_x: 1.0,
            scale_y: 1.0,
            format: self.packed.model.input_format(),
        };
        let input = with_zero_channel(input_hwc);
        Ok(self
            .run_async(r, Input::Tensor(&input), opts, 1.0, false)
            .await?
            .0)
    }

    #[cfg(feature = "native")]
    pub fn detect_with(&self, image: &image::RgbaImage, opts: &DetectOptions) -> Result<Vec<Face>> {
        pollster::block_on(self.detect_with_async(image, opts))
    }

    /// [`Detector::detect_with`] without blocking the thread (see
    /// [`Detector::detect_texture_async`]). For pixels already on the CPU, and for
    /// retina-face's network, whose exact resize runs on the host (the texture path
    /// approximates it).
    pub async fn detect_with_async(
        &self,
        image: &image::RgbaImage,
        opts: &DetectOptions,
    ) -> Result<Vec<Face>> {
        let (r, step, pixels) = self.check_image(image, opts)?;
        Ok(self
            .run_async(r, Input::Rgba(&pixels), opts, step, false)
            .await?
            .0)
    }

    /// Detects on a texture already on the detector's device (a game's render target, a
    /// decoded video frame): the preprocess shader reads it directly, with no CPU round trip.
    /// For retina-face's network the resize is then the shader's bilinear one rounded to
    /// 8 bits, within a grey level of OpenCV's, not its exact arithmetic (images go through
    /// [`crate::cv_resize`] on the host).
    /// The texture must be `Rgba8Unorm` or `Bgra8Unorm` with `TEXTURE_BINDING` usage.
    #[cfg(feature = "native")]
    pub fn detect_texture(
        &self,
        texture: &wgpu::Texture,
        opts: &DetectOptions,
    ) -> Result<Vec<Face>> {
        pollster::block_on(self.detect_texture_async(texture, opts))
    }

    /// [`Detector::detect_texture`] without blocking the thread: the way to detect in a
    /// browser, where the picture (an `ImageBitmap`, a `<video>` frame) is copied into a
    /// texture with `Queue::copy_external_image_to_texture` and the faces arrive when the
    /// page's event loop has run the readback. Natively it waits for the GPU inside, as the
    /// blocking call does.
    pub async fn detect_texture_async(
        &self,
        texture: &wgpu::Texture,
        opts: &DetectOptions,
    ) -> Result<Vec<Face>> {
        let (r, step, view) = self.texture_input(texture, opts)?;
        Ok(self
            .run_async(r, Input::Texture(&view), opts, step, false)
            .await?
            .0)
    }

    /// [`Detector::detect_texture_async`] with every dispatch timed by GPU timestamps, as
    /// [`Detector::detect_profiled`] does (the profile is empty without `TIMESTAMP_QUERY`).
    pub async fn detect_texture_profiled_async(
        &self,
        texture: &wgpu::Texture,
        opts: &DetectOptions,
    ) -> Result<(Vec<Face>, Profile)> {
        let (r, step, view) = self.texture_input(texture, opts)?;
        self.run_async(r, Input::Texture(&view), opts, step, true)
            .await
    }

    /// Checks a texture and works out its resampling.
    fn texture_input(
        &self,
        texture: &wgpu::Texture,
        opts: &DetectOptions,
    ) -> Result<(Resample, f32, wgpu::TextureView)> {
        let format = texture.format();
        if !matches!(
            format,
            wgpu::TextureFormat::Rgba8Unorm | wgpu::TextureFormat::Bgra8Unorm
        ) {
            return Err(Error::UnsupportedPixelFormat {
                path: None,
                format: format!("texture {format:?} (expected Rgba8Unorm or Bgra8Unorm)"),
            });
        }
        if !texture
            .usage()
            .contains(wgpu::TextureUsages::TEXTURE_BINDING)
        {
            return Err(Error::InvalidOption(
                "the texture needs TEXTURE_BINDING usage to be read by the detector".into(),
            ));
        }
        opts.validate()?;
        let (w, h) = (texture.width(), texture.height());
        if w < MIN_SIDE || h < MIN_SIDE {
            return Err(Error::ImageTooSmall {
                width: w,
                height: h,
                min: MIN_SIDE,
            });
        }
        let (r, step, _) = resample(opts, self.packed.model, w, h);
        Ok((r, step, texture.create_view(&Default::default())))
    }

    /// Detects like [`Detector::detect_with`] and times every dispatch with GPU timestamps.
    /// Each dispatch then runs in a pass of its own, which costs a little; use for profiling.
    /// The profile is empty when the device lacks `TIMESTAMP_QUERY`.
    #[cfg(feature = "native")]
    pub fn detect_profiled(
        &self,
        image: &image::RgbaImage,
        opts: &DetectOptions,
    ) -> Result<(Vec<Face>, Profile)> {
        let (r, step, pixels) = self.check_image(image, opts)?;
        self.run(r, Input::Rgba(&pixels), opts, step, true)
    }

    /// Checks an image and works out its resampling; returns the RGBA pixels to upload.
    /// retina-face's network sees the image after OpenCV's 8-bit resize, so for it the resize
    /// runs here, on the host, with OpenCV's integer arithmetic ([`crate::cv_resize`]), and
    /// the GPU gets the resized pixels.
    fn check_image<'a>(
        &self,
        image: &'a image::RgbaImage,
        opts: &DetectOptions,
    ) -> Result<(Resample, f32, std::borrow::Cow<'a, [u8]>)> {
        opts.validate()?;
        let (w, h) = image.dimensions();
        if w < MIN_SIDE || h < MIN_SIDE {
            return Err(Error::ImageTooSmall {
                width: w,
                height: h,
                min: MIN_SIDE,
            });
        }
        let (r, step, factor) = resample(opts, self.packed.model, w, h);
        if r.format != InputFormat::RgbRaw || (r.dst_w, r.dst_h) == (w, h) {
            return Ok((r, step, std::borrow::Cow::Borrowed(image.as_raw())));
        }
        let bgr: Vec<u8> = image.pixels().flat_map(|p| [p[2], p[1], p[0]]).collect();
        let src = crate::cv_resize::Image {
            data: &bgr,
            width: w as usize,
            height: h as usize,
            channels: 3,
        };
        let out = crate::cv_resize::resize_linear(
            &src,
            r.dst_w as usize,
            r.dst_h as usize,
            factor,
            factor,
        );
        let rgba = out
            .chunks_exact(3)
            .flat_map(|p| [p[2], p[1], p[0], 255])
            .collect();
        let identity = Resample {
            src_w: r.dst_w,
            src_h: r.dst_h,
            scale_x: 1.0,
            scale_y: 1.0,
            ..r
        };
        Ok((identity, step, std::borrow::Cow::Owned(rgba)))
    }

    #[cfg(feature = "native")]
    fn run(
        &self,
        r: Resample,
        input: Input<'_>,
        opts: &DetectOptions,
        step: f32,
        profile: bool,
    ) -> Result<(Vec<Face>, Profile)> {
        pollster::block_on(self.run_async(r, input, opts, step, profile))
    }

    async fn run_async(
        &self,
        r: Resample,
        input: Input<'_>,
        opts: &DetectOptions,
        step: f32,
        profile: bool,
    ) -> Result<(Vec<Face>, Profile)> {
        let run = settings(opts, step);
        let mut plan = self.checkout_async(r).await?;
        let from_pixels = !matches!(input, Input::Tensor(_));
        // A profiled run borrows the detector's query set; it is taken out of the lock rather
        // than locked across the await, and a concurrent profiled run makes its own. Plain
        // detections never touch the lock.
        let ts = if profile {
            // A pass per step: banded plans of large inputs have more than the usual ~100.
            let needed =
                (plan.steps(from_pixels).count() as u32).min(wgpu::QUERY_SET_MAX_QUERIES / 2);
            let cached = self
                .timestamps
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .filter(|t| t.capacity() >= needed);
            match cached {
                Some(ts) => Some(ts),
                None => {
                    self.ctx
                        .scoped_async("timestamp queries", None, async || {
                            Timestamps::new(&self.ctx, needed.max(256))
                        })
                        .await?
                }
            }
        } else {
            None
        };
        let result = self
            .ctx
            .scoped_async("detection", None, async || {
                plan.submit(&self.ctx, input, run, ts.as_ref());
                plan.collect_async(&self.ctx, ts.as_ref()).await
            })
            .await;
        if let Some(ts) = ts {
            *self.timestamps.lock().unwrap_or_else(|e| e.into_inner()) = Some(ts);
        }
        let steps = match &result {
            Ok(Ok((_, times))) => plan
                .steps(from_pixels)
                .zip(plan.work(from_pixels))
                .zip(times)
                .map(|((s, work), ns)| StepTime {
                    label: s.label.clone(),
                    shader: s.kernel.name.to_string(),
                    ms: ns / 1e6,
                    flops: work.flops,
                    bytes: work.bytes,
                })
                .collect(),
            _ => Vec::new(),
        };
        let (raw, _) = result??;
        self.checkin(r, plan);
        Ok((raw.into_iter().map(to_face).collect(), Profile { steps }))
    }

    /// An idle plan for this input size: a cached one, or a new one. The caller owns it until
    /// [`Detector::checkin`], so concurrent calls and frames in flight never share buffers.
    /// Sizes are checked against the device's limits only when a plan has to be built: a
    /// cached plan already fits.
    #[cfg(feature = "native")]
    fn checkout(&self, r: Resample) -> Result<Plan> {
        pollster::block_on(self.checkout_async(r))
    }

    async fn checkout_async(&self, r: Resample) -> Result<Plan> {
        // A lost device accepts work silently and never returns it: refuse before starting.
        self.ctx.check_alive()?;
        {
            let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = plans.iter().rposition(|(k, _)| *k == r) {
                return Ok(plans.remove(i).1);
            }
        }
        let src_pixels = r.src_w as u64 * r.src_h as u64;
        let limits = self.bind_limits();
        if let Some(e) = too_large(self.packed.model, r.dst_w, r.dst_h, src_pixels, &limits) {
            return Err(e);
        }
        let what = format!("the buffers of a {}x{} network input", r.dst_w, r.dst_h);
        let bytes = self.activation_bytes(r.dst_w, r.dst_h).0 + src_pixels * 4;
        self.ctx
            .scoped_async(&what, Some(bytes), async || {
                let tuning = self.tuning.read().unwrap_or_else(|e| e.into_inner());
                Plan::new(
                    &self.ctx,
                    &self.kernels,
                    &self.weights,
                    &self.packed,
                    &tuning,
                    r,
                    &limits,
                )
            })
            .await?
    }

    /// Returns a plan to the cache after a successful run (a failed one may have left a
    /// mapping pending: it is dropped instead), dropping the least recently used beyond
    /// `MAX_PLANS`, so memory stays bounded whatever sequence of sizes comes in.
    fn checkin(&self, r: Resample, plan: Plan) {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        plans.push((r, plan));
        while plans.len() > MAX_PLANS {
            plans.remove(0);
        }
    }

    /// Detects on many images of any sizes, keeping up to `depth` of them on the GPU at
    /// once so that uploading one overlaps computing another. Results are in input order; a
    /// bad image gets its error and the others go on.
    #[cfg(feature = "native")]
    pub fn detect_batch(
        &self,
        images: &[image::RgbaImage],
        opts: &DetectOptions,
    ) -> Vec<Result<Vec<Face>>> {
        let mut stream = self.stream(opts, 2);
        let mut out: Vec<Option<Result<Vec<Face>>>> = (0..images.len()).map(|_| None).collect();
        let mut queued = std::collections::VecDeque::new();
        for (i, img) in images.iter().enumerate() {
            match stream.push(img) {
                Err(e) => out[i] = Some(Err(e)),
                Ok(done) => {
                    queued.push_back(i);
                    if let Some(faces) = done {
                        let j = queued.pop_front().unwrap_or(i);
                        out[j] = Some(faces);
                    }
                }
            }
        }
        while let Some(faces) = stream.pop() {
            if let Some(j) = queued.pop_front() {
                out[j] = Some(faces);
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Ok(Vec::new())))
            .collect()
    }

    /// Idle plans in the cache (each holds the buffers of one input size); for tests and
    /// memory accounting.
    pub fn cached_plans(&self) -> usize {
        self.plans.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// A stream for video: frames go in with [`Stream::push`], and each push returns the
    /// faces of the oldest frame once `depth` frames are in flight (`depth` >= 1; 2 or 3
    /// keeps the GPU busy while the caller decodes the next frame).
    #[cfg(feature = "native")]
    pub fn stream(&self, opts: &DetectOptions, depth: usize) -> Stream<'_> {
        Stream {
            detector: self,
            opts: *opts,
            depth: depth.max(1),
            in_flight: std::collections::VecDeque::new(),
        }
    }

    /// Runs `f` with wgpu's errors turned into ours ([`GpuContext::scoped`]) instead of
    /// wgpu's default panic.
    #[cfg(feature = "native")]
    pub(crate) fn scoped<T>(&self, stage: &str, f: impl FnOnce() -> T) -> Result<T> {
        self.ctx.scoped(stage, None, f)
    }

    /// Runs the network on an already preprocessed input (HWC, BGR minus mean) and reads back
    /// the named intermediate tensors (channels-last) and the raw head outputs (16 per anchor).
    /// For tests and debugging: it reads back intermediates, which detection never does.
    #[doc(hidden)]
    #[cfg(feature = "native")]
    pub fn forward_tensors(
        &self,
        input_hwc: &[f32],
        w: u32,
        h: u32,
        names: &[&str],
    ) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
        let net = self.scoped("building buffers", || {
            let tuning = self.tuning.read().unwrap_or_else(|e| e.into_inner());
            NetPlan::new(
                &self.ctx,
                &self.kernels,
                &self.weights,
                &self.packed,
                &tuning,
                w,
                h,
                // Every tensor keeps its own buffer: the caller reads named ones afterwards.
                false,
                &self.bind_limits(),
            )
        })??;
        self.ctx.queue.write_buffer(
            &net.buffers[0],
            0,
            bytemuck::cast_slice(&with_zero_channel(input_hwc)),
        );
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for s in &net.steps {
                s.record(&mut pass);
            }
        }
        self.ctx.queue.submit([encoder.finish()]);
        let mut out = Vec::new();
        for name in names {
            let id = net
                .graph
                .find(name)
                .ok_or_else(|| Error::InvalidOption(format!("no tensor named {name}")))?;
            let t = &net.graph.tensors[id];
            out.push(crate::gpu::download_f32(
                &self.ctx,
                &net.buffers[id],
                (t.w * t.h * t.c) as usize,
            )?);
        }
        let raw = crate::gpu::download_f32(
            &self.ctx,
            &net.raw,
            net.graph.anchors as usize * crate::ops::heads::ROW,
        )?;
        Ok((out, raw))
    }

    /// The pipeline of `shaders/warp.wgsl` (face crops), compiled on first use.
    #[cfg(feature = "native")]
    pub(crate) fn warp_kernel(&self) -> &Arc<Kernel> {
        self.warp.get_or_init(|| warp::kernel(&self.ctx))
    }
}

/// The resampling of a `w x h` image under `opts`, and original pixels per network pixel.
/// Also the resize factor in f64, as the package computes it (OpenCV resizes with it).
fn resample(opts: &DetectOptions, model: Model, w: u32, h: u32) -> (Resample, f32, f64) {
    let s = opts.scaling(w, h);
    let step = 1.0 / s.factor;
    let r = Resample {
        src_w: w,
        src_h: h,
        dst_w: s.net_w,
        dst_h: s.net_h,
        scale_x: step,
        scale_y: step,
        format: model.input_format(),
    };
    (r, step, s.exact_factor)
}

/// BGR pixels to the network input's layout, which has a fourth, zero channel.
fn with_zero_channel(bgr: &[f32]) -> Vec<f32> {
    bgr.chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 0.0])
        .collect()
}

/// The per-run settings of `opts`; `step`: original-image pixels per network pixel.
fn settings(opts: &DetectOptions, step: f32) -> RunSettings {
    RunSettings {
        threshold: opts.threshold,
        nms_threshold: opts.nms_threshold,
        scale: [step, step],
    }
}

fn to_face(r: RawFace) -> Face {
    Face {
        score: r.score,
        facial_area: r.bbox,
        landmarks: Landmarks::from_points(r.landmarks),
    }
}

/// Frames in flight on the GPU, oldest first; see [`Detector::stream`].
#[cfg(feature = "native")]
pub struct Stream<'a> {
    detector: &'a Detector,
    opts: DetectOptions,
    depth: usize,
    in_flight: std::collections::VecDeque<(Resample, Plan)>,
}

#[cfg(feature = "native")]
impl Stream<'_> {
    /// Submits a frame. Once `depth` frames are in flight, waits for the oldest and returns
    /// its faces (`Some(Err(..))` if its readback failed). An invalid frame, or any frame once
    /// the device is lost ([`Error::DeviceLost`]), is refused with an error and nothing is
    /// queued; frames already in flight then each return that error from [`Stream::pop`].
    pub fn push(&mut self, image: &image::RgbaImage) -> Result<Option<Result<Vec<Face>>>> {
        let d = self.detector;
        let (r, step, pixels) = d.check_image(image, &self.opts)?;
        let run = settings(&self.opts, step);
        let mut plan = d.checkout(r)?;
        d.scoped("detection", || {
            plan.submit(&d.ctx, Input::Rgba(&pixels), run, None)
        })?;
        self.in_flight.push_back((r, plan));
        Ok(if self.in_flight.len() >= self.depth {
            self.pop()
        } else {
            None
        })
    }

    /// Waits for the oldest frame in flight; `None` when there is none. After a device loss
    /// every frame still in flight returns [`Error::DeviceLost`], none waits forever.
    pub fn pop(&mut self) -> Option<Result<Vec<Face>>> {
        let (r, mut plan) = self.in_flight.pop_front()?;
        let d = self.detector;
        Some(match d.scoped("detection", || plan.collect(&d.ctx, None)) {
            Ok(Ok((raw, _))) => {
                d.checkin(r, plan);
                Ok(raw.into_iter().map(to_face).collect())
            }
            Ok(Err(e)) | Err(e) => Err(e),
        })
    }

    /// Frames submitted and not yet returned.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Waits for every frame still in flight, oldest first.
    pub fn finish(mut self) -> Vec<Result<Vec<Face>>> {
        std::iter::from_fn(|| self.pop()).collect()
    }
}

#[cfg(feature = "native")]
impl Drop for Stream<'_> {
    fn drop(&mut self) {
        // Plans must not go back to the cache with a readback still pending.
        while self.pop().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detector_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Detector>();
    }
}

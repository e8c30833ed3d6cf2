//! The detector in a web page: WebGPU through wgpu, the weights as bytes the page fetched, and
//! the picture copied from an `ImageBitmap`, a `<video>` or a canvas straight into a texture
//! with `copyExternalImageToTexture` (the browser decodes it; no pixels pass through wasm).
//!
//! JavaScript sees one class, `WebDetector` (see `web/main.js`):
//! ```js
//! const detector = await WebDetector.create(new Uint8Array(weightBytes));
//! const { faces, gpuMs } = JSON.parse(await detector.detect(bitmap, 0.9, "default", true));
//! ```
//! `faces` is retina-face's `{"face_1": {score, facial_area, landmarks}, ...}` with each face's
//! unrounded box added as `box`, as the CLI's `--output jsonl` writes it.

// Natively there is nothing to build: the crate is a workspace member only so that its
// wasm32 build shares the workspace's Cargo.lock (and so its wasm-bindgen version).
#![cfg(target_arch = "wasm32")]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use retinaface::wgpu;
use retinaface::{DetectOptions, Detector, Face, GpuContext, Resize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen]
extern "C" {
    /// The browser's `GPUQueue`, bound here only for the one call wgpu would unwrap: the
    /// copy throws for a source that is not origin-clean or is detached, and that must
    /// come back as an error, not abort the module.
    type JsGpuQueue;

    #[wasm_bindgen(method, catch, js_name = copyExternalImageToTexture)]
    fn copy_external_image_to_texture(
        this: &JsGpuQueue,
        source: &js_sys::Object,
        destination: &js_sys::Object,
        size: &js_sys::Array,
    ) -> Result<(), JsValue>;
}

/// A RetinaFace detector on the page's WebGPU device.
#[wasm_bindgen]
pub struct WebDetector {
    inner: Rc<Inner>,
}

struct Inner {
    detector: Detector,
    /// The texture frames are copied into, kept while they keep their size (a webcam's do).
    frame: RefCell<Option<wgpu::Texture>>,
    /// WebGPU error scopes are one stack per device: two detections awaiting at once would
    /// pop each other's scopes, so one runs at a time.
    busy: Cell<bool>,
}

#[wasm_bindgen]
impl WebDetector {
    /// Opens WebGPU and loads the weights: the bytes of a `.safetensors` file (a PyTorch
    /// `.pth` or retina-face's `.h5` work too; they are converted in memory).
    pub async fn create(weights: Vec<u8>) -> Result<WebDetector, JsError> {
        let w = retinaface::model::weights::Weights::from_bytes(&weights).map_err(js_error)?;
        let ctx = GpuContext::new_async().await.map_err(js_error)?;
        if ctx.device.as_webgpu().is_none() {
            return Err(JsError::new(
                "the device is not a WebGPU one (this build only drives the browser's WebGPU)",
            ));
        }
        let detector = Detector::with_context_async(ctx, &w)
            .await
            .map_err(js_error)?;
        Ok(WebDetector {
            inner: Rc::new(Inner {
                detector,
                frame: RefCell::new(None),
                busy: Cell::new(false),
            }),
        })
    }

    /// The adapter's description as the browser gives it (often empty: the page asks the
    /// browser for its vendor and architecture too).
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.inner.detector.context().device.adapter_info().name
    }

    /// `Portable` or `Subgroup`: the family of conv kernels the device runs.
    #[wasm_bindgen(getter, js_name = kernelPath)]
    pub fn kernel_path(&self) -> String {
        format!("{:?}", self.inner.detector.kernel_path())
    }

    /// The network the weights are for (`mnet025`, `resnet50`, `net3`).
    #[wasm_bindgen(getter)]
    pub fn model(&self) -> String {
        self.inner.detector.model().name().to_string()
    }

    /// Whether `detect(.., true)` can time the GPU (the device has timestamp queries).
    #[wasm_bindgen(getter, js_name = canTime)]
    pub fn can_time(&self) -> bool {
        self.inner
            .detector
            .context()
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Detects the faces in `source` (an `ImageBitmap`, `HTMLVideoElement`,
    /// `HTMLCanvasElement`, `HTMLImageElement`, `VideoFrame`, `ImageData` or
    /// `OffscreenCanvas`) with score threshold `threshold` and network size `resize` as the
    /// CLI's `--resize` takes it (`default`: retina-face's short side 1024; `original`;
    /// `max:N`). Resolves to a JSON string `{"faces": {...}, "gpuMs": ms or null, "width",
    /// "height", "netWidth", "netHeight"}`; with `timed`, every dispatch gets GPU timestamps
    /// and `gpuMs` is their sum.
    pub fn detect(
        &self,
        source: JsValue,
        threshold: f32,
        resize: String,
        timed: bool,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            if inner.busy.replace(true) {
                return Err(JsError::new(
                    "a detection is already running on this detector; await it first",
                )
                .into());
            }
            let out = inner.detect(&source, threshold, &resize, timed).await;
            inner.busy.set(false);
            out.map(JsValue::from).map_err(|e| JsError::new(&e).into())
        })
    }
}

impl Inner {
    async fn detect(
        &self,
        source: &JsValue,
        threshold: f32,
        resize: &str,
        timed: bool,
    ) -> Result<String, String> {
        let (width, height) = source_size(source)?;
        let opts = DetectOptions {
            threshold,
            resize: resize.parse::<Resize>().map_err(|e| e.to_string())?,
            ..Default::default()
        };
        opts.validate().map_err(|e| e.to_string())?;
        let net = opts.scaling(width, height);
        let texture = self.frame_texture(width, height);
        copy_to_texture(&self.detector.context().queue, source, &texture)?;
        let (faces, gpu_ms) = if timed {
            let (faces, profile) = self
                .detector
                .detect_texture_profiled_async(&texture, &opts)
                .await
                .map_err(|e| e.to_string())?;
            let ms = (!profile.steps.is_empty()).then(|| profile.total_ms());
            (faces, ms)
        } else {
            let faces = self
                .detector
                .detect_texture_async(&texture, &opts)
                .await
                .map_err(|e| e.to_string())?;
            (faces, None)
        };
        let out = serde_json::json!({
            "faces": faces_json(&faces),
            "gpuMs": gpu_ms,
            "width": width,
            "height": height,
            "netWidth": net.net_w,
            "netHeight": net.net_h,
        });
        Ok(out.to_string())
    }

    /// An RGBA8 texture of this size that the browser can copy a picture into and the
    /// detector can read.
    fn frame_texture(&self, width: u32, height: u32) -> wgpu::Texture {
        let mut slot = self.frame.borrow_mut();
        if let Some(t) = slot.as_ref() {
            if (t.width(), t.height()) == (width, height) {
                return t.clone();
            }
        }
        let t = self
            .detector
            .context()
            .device
            .create_texture(&wgpu::TextureDescriptor {
                label: Some("frame"),
                size: wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba8Unorm,
                // copyExternalImageToTexture needs RENDER_ATTACHMENT as well as COPY_DST
                // (browsers may implement it as a draw).
                usage: wgpu::TextureUsages::TEXTURE_BINDING
                    | wgpu::TextureUsages::COPY_DST
                    | wgpu::TextureUsages::RENDER_ATTACHMENT,
                view_formats: &[],
            });
        *slot = Some(t.clone());
        t
    }
}

/// The pixel size of a picture source; an error for anything else, or for one with no
/// pixels yet (a `<video>` before its first frame).
fn source_size(source: &JsValue) -> Result<(u32, u32), String> {
    let size = if let Some(b) = source.dyn_ref::<web_sys::ImageBitmap>() {
        (b.width(), b.height())
    } else if let Some(v) = source.dyn_ref::<web_sys::HtmlVideoElement>() {
        (v.video_width(), v.video_height())
    } else if let Some(c) = source.dyn_ref::<web_sys::HtmlCanvasElement>() {
        (c.width(), c.height())
    } else if let Some(i) = source.dyn_ref::<web_sys::HtmlImageElement>() {
        (i.natural_width(), i.natural_height())
    } else if let Some(f) = source.dyn_ref::<web_sys::VideoFrame>() {
        (f.display_width(), f.display_height())
    } else if let Some(d) = source.dyn_ref::<web_sys::ImageData>() {
        (d.width(), d.height())
    } else if let Some(c) = source.dyn_ref::<web_sys::OffscreenCanvas>() {
        (c.width(), c.height())
    } else {
        return Err(
            "detect() takes an ImageBitmap, HTMLVideoElement, HTMLCanvasElement, \
                    HTMLImageElement, VideoFrame, ImageData or OffscreenCanvas"
                .into(),
        );
    };
    if size.0 == 0 || size.1 == 0 {
        return Err("the picture has no pixels yet (a video before its first frame?)".into());
    }
    Ok(size)
}

/// Queues the browser's copy of `source` into `texture`, before the detection's submit.
/// The pixels are taken as they are: sRGB, not premultiplied, top row first.
fn copy_to_texture(
    queue: &wgpu::Queue,
    source: &JsValue,
    texture: &wgpu::Texture,
) -> Result<(), String> {
    let (Some(queue), Some(gpu_texture)) = (queue.as_webgpu(), texture.as_webgpu()) else {
        return Err("not a WebGPU device".into());
    };
    let set = |o: &js_sys::Object, k: &str, v: &JsValue| {
        js_sys::Reflect::set(o, &k.into(), v)
            .map(|_| ())
            .map_err(|e| format!("cannot build the copy's arguments: {e:?}"))
    };
    let src = js_sys::Object::new();
    set(&src, "source", source)?;
    set(&src, "flipY", &false.into())?;
    let dst = js_sys::Object::new();
    set(&dst, "texture", gpu_texture.as_ref())?;
    set(&dst, "colorSpace", &"srgb".into())?;
    set(&dst, "premultipliedAlpha", &false.into())?;
    let size = js_sys::Array::of2(&texture.width().into(), &texture.height().into());
    queue
        .unchecked_ref::<JsGpuQueue>()
        .copy_external_image_to_texture(&src, &dst, &size)
        .map_err(|e| {
            let message = e
                .dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
                .unwrap_or_else(|| format!("{e:?}"));
            format!("the browser cannot copy this picture to the GPU: {message}")
        })
}

/// retina-face's dict with each face's unrounded box as `box` (the CLI's jsonl faces).
fn faces_json(faces: &[Face]) -> serde_json::Value {
    let mut dict = retinaface::face::package_dict(faces);
    if let Some(map) = dict.as_object_mut() {
        for (entry, face) in map.values_mut().zip(faces) {
            if let Some(o) = entry.as_object_mut() {
                o.insert("box".into(), serde_json::json!(face.facial_area));
            }
        }
    }
    dict
}

fn js_error(e: retinaface::Error) -> JsError {
    JsError::new(&e.to_string())
}

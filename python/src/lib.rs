//! `retinaface_wgpu._native`: the crate's detector for Python. The drop-in `RetinaFace` API
//! of the `retina-face` package is built on this in `retinaface_wgpu/__init__.py`.
//!
//! Every call that runs the GPU releases the GIL, so threads sharing one `Detector` run
//! concurrently; errors come back as Python exceptions carrying the crate's message.

use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray3, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use retinaface::{DetectOptions, Model, Resize};

pyo3::create_exception!(
    _native,
    RetinaFaceError,
    PyException,
    "A detection failed for a reason other than a missing file or bad input (no GPU adapter, a GPU error, unusable weights)."
);

fn to_py(e: retinaface::Error) -> PyErr {
    use retinaface::Error as E;
    let msg = e.to_string();
    match e {
        E::ImageRead { .. } | E::WeightsNotFound { .. } => PyFileNotFoundError::new_err(msg),
        E::ImageDecode { .. }
        | E::UnsupportedPixelFormat { .. }
        | E::ImageTooSmall { .. }
        | E::ImageTooLarge { .. }
        | E::PixelBufferSize { .. }
        | E::InvalidOption(_) => PyValueError::new_err(msg),
        _ => RetinaFaceError::new_err(msg),
    }
}

/// An image argument: a path (str or os.PathLike), encoded bytes, or a uint8 numpy array of
/// shape (H, W) grey, (H, W, 3) or (H, W, 4) in `channels` order ("bgr", OpenCV's, or "rgb").
fn to_image(image: &Bound<'_, PyAny>, channels: &str) -> PyResult<image::RgbaImage> {
    let bgr = match channels.to_ascii_lowercase().as_str() {
        "bgr" | "bgra" => true,
        "rgb" | "rgba" => false,
        other => {
            return Err(PyValueError::new_err(format!(
                "channels must be \"bgr\" or \"rgb\", not {other:?}"
            )))
        }
    };
    if let Ok(b) = image.cast::<PyBytes>() {
        return retinaface::image_io::load_bytes(b.as_bytes(), None).map_err(to_py);
    }
    if let Ok(a) = image.extract::<PyReadonlyArrayDyn<'_, u8>>() {
        return from_array(&a, bgr);
    }
    if image.hasattr("dtype")? && image.hasattr("shape")? {
        return Err(PyValueError::new_err(format!(
            "expected a uint8 image array, got dtype {}",
            image.getattr("dtype")?
        )));
    }
    let path: PathBuf = image.extract().map_err(|_| {
        PyValueError::new_err(
            "an image is a path, encoded bytes or a uint8 numpy array (H, W), (H, W, 3) or (H, W, 4)",
        )
    })?;
    retinaface::image_io::load_path(&path).map_err(to_py)
}

fn from_array(a: &PyReadonlyArrayDyn<'_, u8>, bgr: bool) -> PyResult<image::RgbaImage> {
    let shape = a.shape().to_vec();
    let (h, w, c) = match shape[..] {
        [h, w] => (h, w, 1),
        [h, w, c] if c == 3 || c == 4 => (h, w, c),
        _ => {
            return Err(PyValueError::new_err(format!(
                "expected an image array of shape (H, W), (H, W, 3) or (H, W, 4), got {shape:?}"
            )))
        }
    };
    let view = a.as_array();
    let mut rgba = Vec::with_capacity(h * w * 4);
    // Indexing the view follows its strides: non-contiguous arrays (slices, transposes) work.
    for y in 0..h {
        for x in 0..w {
            let px = |k: usize| {
                if c == 1 {
                    view[[y, x]]
                } else {
                    view[[y, x, k]]
                }
            };
            let (r, b) = if c == 1 {
                (px(0), px(0))
            } else if bgr {
                (px(2), px(0))
            } else {
                (px(0), px(2))
            };
            let g = if c == 1 { px(0) } else { px(1) };
            let alpha = if c == 4 { px(3) } else { 255 };
            rgba.extend_from_slice(&[r, g, b, alpha]);
        }
    }
    image::RgbaImage::from_raw(w as u32, h as u32, rgba)
        .ok_or_else(|| PyValueError::new_err("image size overflow"))
}

/// `data` (row-major, `c` per pixel) as a (h, w, c) uint8 numpy array.
fn array3(
    py: Python<'_>,
    h: usize,
    w: usize,
    c: usize,
    data: Vec<u8>,
) -> PyResult<Bound<'_, PyArray3<u8>>> {
    numpy::ndarray::Array3::from_shape_vec((h, w, c), data)
        .map(|a| a.into_pyarray(py))
        .map_err(|e| RetinaFaceError::new_err(e.to_string()))
}

/// One detected face.
#[pyclass(frozen, module = "retinaface_wgpu")]
struct Face {
    inner: retinaface::Face,
}

#[pymethods]
impl Face {
    /// Face probability.
    #[getter]
    fn score(&self) -> f32 {
        self.inner.score
    }

    /// `[x1, y1, x2, y2]` in original-image pixels, unrounded.
    #[getter(r#box)]
    fn bbox(&self) -> Vec<f32> {
        self.inner.facial_area.to_vec()
    }

    /// `{"right_eye": [x, y], "left_eye": ..., "nose": ..., "mouth_right": ..., "mouth_left": ...}`.
    #[getter]
    fn landmarks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let l = &self.inner.landmarks;
        let d = PyDict::new(py);
        for (k, v) in [
            ("right_eye", l.right_eye),
            ("left_eye", l.left_eye),
            ("nose", l.nose),
            ("mouth_right", l.mouth_right),
            ("mouth_left", l.mouth_left),
        ] {
            d.set_item(k, v.to_vec())?;
        }
        Ok(d)
    }

    /// The package's dict of this face as JSON text.
    fn _package_json(&self) -> String {
        self.inner.to_package_json().to_string()
    }

    /// The face as the package's dict: `score` (float), `facial_area` (list of int),
    /// `landmarks` (lists of float).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?
            .call_method1("loads", (self._package_json(),))
    }

    fn __repr__(&self) -> String {
        let b = self.inner.facial_area;
        format!(
            "Face(score={:.4}, box=[{:.1}, {:.1}, {:.1}, {:.1}])",
            self.inner.score, b[0], b[1], b[2], b[3]
        )
    }
}

/// A detector on the default GPU with its weights uploaded once.
#[pyclass(frozen, module = "retinaface_wgpu")]
struct Detector {
    inner: retinaface::Detector,
    opts: DetectOptions,
}

impl Detector {
    fn options(
        &self,
        threshold: Option<f32>,
        allow_upscaling: Option<bool>,
    ) -> PyResult<DetectOptions> {
        let mut o = self.opts;
        if let Some(t) = threshold {
            o.threshold = t;
        }
        if let Some(u) = allow_upscaling {
            o.allow_upscaling = u;
        }
        o.validate().map_err(to_py)?;
        Ok(o)
    }

    fn run(
        &self,
        py: Python<'_>,
        image: &Bound<'_, PyAny>,
        channels: &str,
        opts: &DetectOptions,
    ) -> PyResult<(image::RgbaImage, Vec<retinaface::Face>)> {
        let img = to_image(image, channels)?;
        let faces = py
            .detach(|| self.inner.detect_with(&img, opts))
            .map_err(to_py)?;
        Ok((img, faces))
    }
}

#[pymethods]
impl Detector {
    /// `weights`: a .safetensors, .pth or retina-face .h5 file (its tensors decide the
    /// network), else the usual places for `model`: "mnet025", "resnet50" or "retinaface"
    /// (the package's own network, also found where deepface keeps it). `resize`: "default" (the package's 1024 / 1980 rule),
    /// "original" or "max:N".
    #[new]
    #[pyo3(signature = (weights=None, model="mnet025", threshold=0.9, nms=0.4, resize="default", allow_upscaling=true))]
    fn new(
        py: Python<'_>,
        weights: Option<PathBuf>,
        model: &str,
        threshold: f32,
        nms: f32,
        resize: &str,
        allow_upscaling: bool,
    ) -> PyResult<Self> {
        let model: Model = model.parse().map_err(to_py)?;
        let resize: Resize = resize.parse().map_err(to_py)?;
        let opts = DetectOptions {
            threshold,
            nms_threshold: nms,
            resize,
            allow_upscaling,
        };
        opts.validate().map_err(to_py)?;
        let inner = py
            .detach(|| retinaface::Detector::for_model(model, weights.as_deref()))
            .map_err(to_py)?;
        Ok(Self { inner, opts })
    }

    /// The network the weights hold: "retinaface", "mnet025" or "resnet50".
    #[getter]
    fn model(&self) -> String {
        self.inner.model().name().to_string()
    }

    /// Faces of one image, highest score first.
    #[pyo3(signature = (image, channels="bgr", threshold=None, allow_upscaling=None))]
    fn detect(
        &self,
        py: Python<'_>,
        image: &Bound<'_, PyAny>,
        channels: &str,
        threshold: Option<f32>,
        allow_upscaling: Option<bool>,
    ) -> PyResult<Vec<Face>> {
        let opts = self.options(threshold, allow_upscaling)?;
        let (_, faces) = self.run(py, image, channels, &opts)?;
        Ok(faces.into_iter().map(|inner| Face { inner }).collect())
    }

    /// Faces of many images (paths, bytes or arrays, any sizes), one list per image in order;
    /// up to 3 images are on the GPU at once. A bad image raises for the whole call.
    #[pyo3(signature = (images, channels="bgr", threshold=None, allow_upscaling=None))]
    fn detect_batch(
        &self,
        py: Python<'_>,
        images: Vec<Bound<'_, PyAny>>,
        channels: &str,
        threshold: Option<f32>,
        allow_upscaling: Option<bool>,
    ) -> PyResult<Vec<Vec<Face>>> {
        let opts = self.options(threshold, allow_upscaling)?;
        let imgs = images
            .iter()
            .map(|i| to_image(i, channels))
            .collect::<PyResult<Vec<_>>>()?;
        let results = py.detach(|| self.inner.detect_batch(&imgs, &opts));
        results
            .into_iter()
            .map(|r| {
                r.map(|faces| faces.into_iter().map(|inner| Face { inner }).collect())
                    .map_err(to_py)
            })
            .collect()
    }

    /// Aligned face crops as RGB uint8 arrays: `align="ours"` (eyes levelled on an upright
    /// view of each face, whole face kept; with `target_size=(w, h)` letterboxed) or
    /// `"package"` (retina-face's own crops, as `RetinaFace.extract_faces`).
    #[pyo3(signature = (image, channels="bgr", align="ours", expand_face_area=0.0, target_size=None, threshold=None))]
    #[allow(clippy::too_many_arguments)]
    fn extract<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
        channels: &str,
        align: &str,
        expand_face_area: f32,
        target_size: Option<(u32, u32)>,
        threshold: Option<f32>,
    ) -> PyResult<Vec<Bound<'py, PyArray3<u8>>>> {
        let opts = self.options(threshold, None)?;
        let crops: Vec<(usize, usize, Vec<u8>)> = match align {
            "package" => {
                let (img, faces) = self.run(py, image, channels, &opts)?;
                let (w, h) = img.dimensions();
                let expand = expand_face_area.max(0.0) as u32;
                retinaface::align_package::extract(
                    img.as_raw(),
                    w as usize,
                    h as usize,
                    &faces,
                    expand,
                    true,
                )
                .into_iter()
                .map(|c| (c.height, c.width, c.rgb))
                .collect()
            }
            "ours" | "none" => {
                let img = to_image(image, channels)?;
                let eo = retinaface::ExtractOptions {
                    detect: opts,
                    align: align == "ours",
                    expand_face_area,
                    target_size,
                    ..Default::default()
                };
                py.detach(|| self.inner.extract_faces(&img, &eo))
                    .map_err(to_py)?
                    .into_iter()
                    .map(|c| {
                        (
                            c.image.height() as usize,
                            c.image.width() as usize,
                            c.image.into_raw(),
                        )
                    })
                    .collect()
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "align must be \"ours\", \"package\" or \"none\", not {other:?}"
                )))
            }
        };
        crops
            .into_iter()
            .map(|(h, w, rgb)| array3(py, h, w, 3, rgb))
            .collect()
    }

    /// The image (RGB uint8 array) with each face's box, landmarks and score drawn.
    #[pyo3(signature = (image, channels="bgr", threshold=None))]
    fn annotate<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
        channels: &str,
        threshold: Option<f32>,
    ) -> PyResult<Bound<'py, PyArray3<u8>>> {
        let opts = self.options(threshold, None)?;
        let (img, faces) = self.run(py, image, channels, &opts)?;
        let out = retinaface::annotate::annotate(&img, &faces);
        let (w, h) = out.dimensions();
        array3(py, h as usize, w as usize, 3, out.into_raw())
    }

    /// The package's `detect_faces` dict as JSON text.
    #[pyo3(signature = (image, channels="bgr", threshold=None, allow_upscaling=None))]
    fn _detect_json(
        &self,
        py: Python<'_>,
        image: &Bound<'_, PyAny>,
        channels: &str,
        threshold: Option<f32>,
        allow_upscaling: Option<bool>,
    ) -> PyResult<String> {
        let opts = self.options(threshold, allow_upscaling)?;
        let (_, faces) = self.run(py, image, channels, &opts)?;
        Ok(retinaface::face::package_dict(&faces).to_string())
    }

    /// The package's `extract_faces` crops (RGB uint8 arrays, before any target_size), with
    /// the faces' dict as JSON text.
    #[pyo3(signature = (image, channels="bgr", threshold=None, allow_upscaling=None, align=true, expand_face_area=0))]
    #[allow(clippy::too_many_arguments)]
    fn _extract<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
        channels: &str,
        threshold: Option<f32>,
        allow_upscaling: Option<bool>,
        align: bool,
        expand_face_area: u32,
    ) -> PyResult<(String, Vec<Bound<'py, PyArray3<u8>>>)> {
        let opts = self.options(threshold, allow_upscaling)?;
        let (img, faces) = self.run(py, image, channels, &opts)?;
        let (w, h) = img.dimensions();
        let crops = py.detach(|| {
            retinaface::align_package::extract(
                img.as_raw(),
                w as usize,
                h as usize,
                &faces,
                expand_face_area,
                align,
            )
        });
        let arrays = crops
            .into_iter()
            .map(|c| array3(py, c.height, c.width, 3, c.rgb))
            .collect::<PyResult<Vec<_>>>()?;
        Ok((retinaface::face::package_dict(&faces).to_string(), arrays))
    }
}

/// OpenCV's `cv2.resize(img, (dst_w, dst_h))` (INTER_LINEAR) of a (H, W, 3) uint8 array, bit
/// for bit: what the package's `target_size` letterbox resizes with.
#[pyfunction]
fn _cv_resize<'py>(
    py: Python<'py>,
    image: PyReadonlyArrayDyn<'py, u8>,
    dst_w: usize,
    dst_h: usize,
) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let shape = image.shape().to_vec();
    let [h, w, c] = shape[..] else {
        return Err(PyValueError::new_err(format!(
            "expected (H, W, C), got {shape:?}"
        )));
    };
    if w == 0 || h == 0 || dst_w == 0 || dst_h == 0 {
        return Err(PyValueError::new_err("cannot resize an empty image"));
    }
    let data: Vec<u8> = image.as_array().iter().copied().collect();
    let src = retinaface::cv_resize::Image {
        data: &data,
        width: w,
        height: h,
        channels: c,
    };
    let out = retinaface::cv_resize::resize_linear(
        &src,
        dst_w,
        dst_h,
        dst_w as f64 / w as f64,
        dst_h as f64 / h as f64,
    );
    array3(py, dst_h, dst_w, c, out)
}

/// `cv2.imread(path)`: the image as a (H, W, 3) BGR uint8 array, decoded as OpenCV does.
#[pyfunction]
fn imread<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let img = retinaface::image_io::load_path(&path).map_err(to_py)?;
    let (w, h) = img.dimensions();
    let bgr: Vec<u8> = img.pixels().flat_map(|p| [p[2], p[1], p[0]]).collect();
    array3(py, h as usize, w as usize, 3, bgr)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(imread, m)?)?;
    m.add_class::<Detector>()?;
    m.add_class::<Face>()?;
    m.add_function(wrap_pyfunction!(_cv_resize, m)?)?;
    m.add("RetinaFaceError", m.py().get_type::<RetinaFaceError>())?;
    Ok(())
}

//! The one error type of the crate. Every message says what went wrong and what the user can do.

use std::path::PathBuf;

/// Everything that can go wrong between an image file and a list of faces.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("no GPU adapter found (backends: {backends}); install a Vulkan, Metal, DX12 or GL driver, e.g. `apt-get install mesa-vulkan-drivers libvulkan1` for a software one, or set WGPU_BACKEND")]
    NoAdapter { backends: String },

    #[error("could not open a device on adapter {adapter:?}: {reason}")]
    DeviceRequest { adapter: String, reason: String },

    #[error("the GPU reported an error during {stage}: {reason}")]
    Gpu { stage: String, reason: String },

    #[error("weights not found; looked in: {searched}. Run `retinaface fetch-weights {model}` to download, verify and install them into the per-user cache, or get `{file}` (see weights/README.md for its source, licence and content hash) and put it in one of those places, pass `--weights PATH` (a .safetensors or a PyTorch .pth), or set RETINAFACE_WEIGHTS")]
    WeightsNotFound {
        searched: String,
        /// The model whose weights were looked for (`mnet025`, `resnet50`).
        model: String,
        /// The file name looked for.
        file: String,
    },

    #[error("cannot read weights file {path}: {reason}")]
    WeightsFile { path: PathBuf, reason: String },

    #[error("weights are missing tensor `{name}`; is this a RetinaFace (MobileNet0.25 or ResNet50) state dict?")]
    MissingTensor { name: String },

    #[error("weight tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("weight tensor `{name}` has dtype {found}, expected F32")]
    TensorDtype { name: String, found: String },

    #[error("weight tensor `{name}` holds a non-finite value (NaN or infinity) at element {index}; the file is corrupt")]
    NonFiniteWeight { name: String, index: usize },

    #[error("cannot read image {path}: {reason}")]
    ImageRead { path: PathBuf, reason: String },

    #[error("cannot decode image{}: {reason}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    ImageDecode {
        path: Option<PathBuf>,
        reason: String,
    },

    #[error("unsupported pixel format {format} in image{}; convert it to 8-bit RGB, RGBA or grey first", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    UnsupportedPixelFormat {
        path: Option<PathBuf>,
        format: String,
    },

    #[error("image is {width}x{height}, smaller than the {min}x{min} pixels the detector needs (its smallest anchor is 16 px)")]
    ImageTooSmall { width: u32, height: u32, min: u32 },

    #[error("a {width}x{height} network input needs a {bytes}-byte buffer for `{tensor}`, over this device's limit of {limit} bytes {which}; use `--resize max:{suggested_max_side}` (API: Resize::MaxSide({suggested_max_side})) or a smaller image")]
    ImageTooLarge {
        width: u32,
        height: u32,
        tensor: String,
        bytes: u64,
        limit: u64,
        /// Which limit: per buffer (`max_buffer_size`) or per storage binding.
        which: String,
        suggested_max_side: u32,
    },

    #[error("pixel buffer holds {found} bytes, expected {expected} for a {width}x{height} image with {channels} channels")]
    PixelBufferSize {
        width: u32,
        height: u32,
        channels: u32,
        expected: usize,
        found: usize,
    },

    #[error("invalid option: {0}")]
    InvalidOption(String),

    #[error("cannot tell which RetinaFace model these weights are for: {reason}")]
    UnknownModel { reason: String },

    #[error("cannot read PyTorch checkpoint{}: {reason}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Checkpoint {
        path: Option<PathBuf>,
        reason: String,
    },

    #[error("cannot read Keras HDF5 weights{}: {reason}; is it retina-face's retinaface.h5 (or another `model.save_weights` file of that network)?", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    KerasWeights {
        path: Option<PathBuf>,
        reason: String,
    },

    #[error("refusing PyTorch checkpoint{}: it refers to the Python global `{global}`, which a state dict of tensors never needs; loading it could run code, so only collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter and torch storage types are accepted", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    UnsafeCheckpoint {
        path: Option<PathBuf>,
        global: String,
    },

    #[error("download of {url} failed: {reason}; nothing was installed")]
    Download { url: String, reason: String },

    #[error("the file downloaded from {url} has content hash {found}, expected {expected} (weights/README.md): it is not the published {model} weights (corrupt or replaced); nothing was installed")]
    ContentHashMismatch {
        url: String,
        model: String,
        expected: String,
        found: String,
    },

    #[error("cannot write {path}: {reason}")]
    WriteFile { path: PathBuf, reason: String },

    #[error("cannot read MATLAB file{}: {reason}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    MatFile {
        path: Option<PathBuf>,
        reason: String,
    },

    #[error("WIDER FACE evaluation: {path}: {reason}")]
    WiderFace { path: PathBuf, reason: String },

    #[error("`{program}` was not found on PATH: video is read and written through the ffmpeg program; install it (Debian/Ubuntu: `apt-get install ffmpeg`, Fedora: `dnf install ffmpeg`, macOS: `brew install ffmpeg`, Windows: `winget install ffmpeg`, or https://ffmpeg.org/download.html) and run again")]
    ToolNotFound { program: String },

    #[error("video {path}: {reason}; {frames} frames were decoded before that (is the file truncated or corrupt, or not a video ffmpeg can read?)")]
    Video {
        path: PathBuf,
        /// Frames decoded and handed out before the failure.
        frames: u64,
        reason: String,
    },

    #[error("the GPU device was lost ({reason}); its buffers are gone and every frame still in flight fails with this error. Run the command again; in code, call `Detector::recover()` (or `Detector::recover_on(ctx)` with a new device for a device you provided) and detect again. If it keeps happening the driver is resetting the GPU: try smaller images (`--resize max:640`) or another driver")]
    DeviceLost { reason: String },

    #[error("the GPU has no memory for {what}{}: {reason}; free GPU memory (close other GPU programs, drop other detectors), detect at a smaller size (`--resize max:640`, API: Resize::MaxSide(640)), or use a device with more memory", bytes.map(|b| format!(" ({} MiB)", b.div_ceil(1 << 20))).unwrap_or_default())]
    OutOfMemory {
        /// What was being allocated ("the weights", "buffers for a 640x480 input").
        what: String,
        /// The size asked for, where known.
        bytes: Option<u64>,
        reason: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

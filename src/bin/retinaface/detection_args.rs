//! The detection flags shared by `detect`, `extract` and `annotate`.

use std::path::PathBuf;

use clap::Args;
use retinaface::{DetectOptions, Detector, Resize};

use crate::fatal::Fatal;

/// Detection settings shared by the subcommands that detect.
#[derive(Args)]
pub struct DetectionArgs {
    /// Keep faces scoring above this.
    #[arg(long, default_value_t = 0.9)]
    threshold: f32,
    /// IoU above which overlapping boxes are suppressed.
    #[arg(long = "nms", default_value_t = 0.4)]
    nms_threshold: f32,
    /// `default` (short side 1024, long side at most 1980), `original`, or `max:N`.
    #[arg(long, default_value = "default")]
    resize: String,
    /// With the default resize, never enlarge small images (retina-face's allow_upscaling=False).
    #[arg(long)]
    no_upscale: bool,
    /// The weights file (.safetensors); else RETINAFACE_WEIGHTS, ./weights, the user cache.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Whose file to look for in ./weights and the cache: mnet025, resnet50 or retinaface
    /// (retina-face's own network; also where deepface keeps retinaface.h5). The file's
    /// tensors decide the network.
    #[arg(long, default_value = "mnet025")]
    model: retinaface::Model,
}

impl DetectionArgs {
    pub fn options(&self) -> Result<DetectOptions, Fatal> {
        let options = DetectOptions {
            threshold: self.threshold,
            nms_threshold: self.nms_threshold,
            resize: self.resize.parse::<Resize>()?,
            allow_upscaling: !self.no_upscale,
        };
        options.validate()?;
        Ok(options)
    }

    /// Options first: a bad option is reported before the slow GPU and weights setup.
    pub fn detector(&self) -> Result<(Detector, DetectOptions), Fatal> {
        let options = self.options()?;
        let detector =
            Detector::for_model(self.model, self.weights.as_deref())?.with_options(options)?;
        Ok((detector, options))
    }
}

//! Detection options, with the defaults of the `retina-face` package.

use crate::error::{Error, Result};

/// How the image is scaled to the network input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Resize {
    /// As `retina-face`: scale so the short side is 1024 px, but the long side at most 1980 px.
    #[default]
    Default,
    /// Run on the image as it is.
    Original,
    /// Shrink so the long side is at most this many pixels (never enlarges).
    MaxSide(u32),
}

impl std::str::FromStr for Resize {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "default" => Ok(Resize::Default),
            "original" => Ok(Resize::Original),
            _ => {
                let n = s
                    .strip_prefix("max:")
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| *n >= 16);
                n.map(Resize::MaxSide).ok_or_else(|| {
                    Error::InvalidOption(format!(
                        "resize `{s}`: expected `default`, `original` or `max:N` with N >= 16"
                    ))
                })
            }
        }
    }
}

/// Per-call settings of [`crate::Detector::detect_with`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectOptions {
    /// Faces with a score at or below this are dropped (`retina-face` default 0.9).
    pub threshold: f32,
    /// Overlapping boxes with IoU above this are suppressed (0.4).
    pub nms_threshold: f32,
    pub resize: Resize,
    /// With `Resize::Default`, allow enlarging small images (the package's default, true).
    pub allow_upscaling: bool,
}

impl Default for DetectOptions {
    fn default() -> Self {
        Self {
            threshold: 0.9,
            nms_threshold: 0.4,
            resize: Resize::Default,
            allow_upscaling: true,
        }
    }
}

/// The network input size for an image and the factor it was scaled by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scaling {
    pub net_w: u32,
    pub net_h: u32,
    /// Network pixels per original pixel (the `im_scale` of `retina-face`).
    pub factor: f32,
    /// The same in f64, as the package computes it (OpenCV resizes with it).
    pub exact_factor: f64,
}

impl DetectOptions {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.threshold) {
            return Err(Error::InvalidOption(format!(
                "threshold {} is not in [0, 1)",
                self.threshold
            )));
        }
        if !(0.0..=1.0).contains(&self.nms_threshold) {
            return Err(Error::InvalidOption(format!(
                "nms threshold {} is not in [0, 1]",
                self.nms_threshold
            )));
        }
        Ok(())
    }

    /// Scale as `retina-face`'s `resize_image`, sizes rounded as OpenCV's `resize(fx, fy)`.
    pub fn scaling(&self, w: u32, h: u32) -> Scaling {
        let (short, long) = (w.min(h) as f64, w.max(h) as f64);
        let exact = match self.resize {
            Resize::Original => 1.0,
            Resize::MaxSide(n) => (n as f64 / long).min(1.0),
            Resize::Default => {
                let mut f = 1024.0 / short;
                if !self.allow_upscaling {
                    f = f.min(1.0);
                }
                // np.round: half to even.
                if (f * long).round_ties_even() > 1980.0 {
                    f = 1980.0 / long;
                }
                f
            }
        };
        if exact == 1.0 {
            return Scaling {
                net_w: w,
                net_h: h,
                factor: 1.0,
                exact_factor: 1.0,
            };
        }
        // OpenCV's saturate_cast<int>(v * fx): round half to even.
        let size = |v: u32| ((v as f64 * exact).round_ties_even() as u32).max(1);
        Scaling {
            net_w: size(w),
            net_h: size(h),
            factor: exact as f32,
            exact_factor: exact,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_matches_retina_face() {
        let o = DetectOptions::default();
        // Short side to 1024.
        assert_eq!(o.scaling(640, 480).net_h, 1024);
        // Long side capped at 1980: 4352x2903 would become 1535x1024... it is 1535 < 1980, fine;
        // a 4000x1000 panorama would be 4096 long, so it is capped.
        let s = o.scaling(4000, 1000);
        assert_eq!((s.net_w, s.net_h), (1980, 495));
        let no_up = DetectOptions {
            allow_upscaling: false,
            ..o
        };
        assert_eq!(no_up.scaling(640, 480).factor, 1.0);
        assert_eq!(
            DetectOptions {
                resize: Resize::MaxSide(320),
                ..o
            }
            .scaling(640, 480)
            .net_w,
            320
        );
        assert_eq!(
            DetectOptions {
                resize: Resize::MaxSide(1000),
                ..o
            }
            .scaling(640, 480)
            .factor,
            1.0
        );
    }

    #[test]
    fn parses_resize() {
        assert_eq!("max:640".parse::<Resize>().unwrap(), Resize::MaxSide(640));
        assert_eq!("original".parse::<Resize>().unwrap(), Resize::Original);
        assert!("max:abc".parse::<Resize>().is_err());
        assert!("huge".parse::<Resize>().is_err());
    }
}

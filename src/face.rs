//! What the detector returns, named as in the `retina-face` Python package.

use serde::Serialize;

/// The five facial landmarks, in original-image pixels. `right_eye` is the subject's right eye
/// (the reference model's point 0: the smaller x on an upright frontal face).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Landmarks {
    pub right_eye: [f32; 2],
    pub left_eye: [f32; 2],
    pub nose: [f32; 2],
    pub mouth_right: [f32; 2],
    pub mouth_left: [f32; 2],
}

impl Landmarks {
    /// The points in the reference model's order (right eye, left eye, nose, mouth right,
    /// mouth left).
    pub fn points(&self) -> [[f32; 2]; 5] {
        [
            self.right_eye,
            self.left_eye,
            self.nose,
            self.mouth_right,
            self.mouth_left,
        ]
    }

    pub fn from_points(p: [[f32; 2]; 5]) -> Self {
        Self {
            right_eye: p[0],
            left_eye: p[1],
            nose: p[2],
            mouth_right: p[3],
            mouth_left: p[4],
        }
    }
}

/// One detected face.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Face {
    /// Face probability in (threshold, 1].
    pub score: f32,
    /// `[x1, y1, x2, y2]` in original-image pixels.
    pub facial_area: [f32; 4],
    pub landmarks: Landmarks,
}

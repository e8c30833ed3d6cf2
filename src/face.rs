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

impl Face {
    /// The face as `retina-face`'s `detect_faces` returns it: `score`, `facial_area` truncated
    /// to integers as numpy's `astype(int)` does, and named landmarks.
    pub fn to_package_json(&self) -> serde_json::Value {
        let l = &self.landmarks;
        serde_json::json!({
            "score": self.score,
            "facial_area": self.facial_area.map(|v| v as i64),
            "landmarks": {
                "right_eye": l.right_eye,
                "left_eye": l.left_eye,
                "nose": l.nose,
                "mouth_right": l.mouth_right,
                "mouth_left": l.mouth_left,
            },
        })
    }
}

/// `retina-face`'s `detect_faces` dict: `{"face_1": {...}, "face_2": ...}` in the faces' order
/// (`{}` for none). The one place the package's output format is built, for the CLI and the
/// bindings alike.
pub fn package_dict(faces: &[Face]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (i, f) in faces.iter().enumerate() {
        map.insert(format!("face_{}", i + 1), f.to_package_json());
    }
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_dict_truncates_boxes_and_names_points() {
        let f = Face {
            score: 0.75,
            facial_area: [10.9, 20.2, 30.999, 40.0],
            landmarks: Landmarks::from_points([
                [1.0, 2.0],
                [3.0, 4.0],
                [5.0, 6.0],
                [7.0, 8.0],
                [9.0, 10.0],
            ]),
        };
        let d = package_dict(&[f]);
        assert_eq!(
            d["face_1"]["facial_area"],
            serde_json::json!([10, 20, 30, 40])
        );
        assert_eq!(
            d["face_1"]["landmarks"]["nose"],
            serde_json::json!([5.0, 6.0])
        );
        assert_eq!(d["face_1"]["score"], serde_json::json!(0.75));
        assert_eq!(package_dict(&[]), serde_json::json!({}));
    }
}

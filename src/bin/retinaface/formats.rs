//! Faces as retina-face's JSON dict, JSON lines and CSV rows.

use std::path::Path;

use retinaface::Face;
use serde_json::{json, Value};

/// The `retina-face` package's output: `{"face_1": {"score", "facial_area", "landmarks"}}`,
/// boxes as integers (truncated, as its `astype(int)`), landmarks as floats.
pub fn faces_json(faces: &[Face]) -> Value {
    retinaface::face::package_dict(faces)
}

pub fn face_json(f: &Face) -> Value {
    f.to_package_json()
}

/// `faces_json` with each face's unrounded box (`"box"`, floats) beside the package's integer
/// `facial_area`: for tracking and evaluation, where the truncation costs accuracy.
pub fn faces_json_with_boxes(faces: &[Face]) -> Value {
    let mut v = faces_json(faces);
    if let Some(map) = v.as_object_mut() {
        for (f, face) in map.values_mut().zip(faces) {
            if let Some(o) = f.as_object_mut() {
                o.insert("box".into(), json!(face.facial_area));
            }
        }
    }
    v
}

/// A path as JSON and CSV show it. Names that are not UTF-8 get U+FFFD where their bad bytes
/// were: the file is still read under its real name, only the listing is lossy.
pub fn display_name(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

pub const CSV_HEADER: &str = "image,face,score,x1,y1,x2,y2,right_eye_x,right_eye_y,left_eye_x,left_eye_y,nose_x,nose_y,mouth_right_x,mouth_right_y,mouth_left_x,mouth_left_y,box_x1,box_y1,box_x2,box_y2";

/// RFC 4180 quoting, only where needed.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn csv_rows(image: &Path, faces: &[Face]) -> String {
    let name = csv_field(&display_name(image));
    let mut out = String::new();
    for (i, f) in faces.iter().enumerate() {
        let mut row = vec![name.clone(), (i + 1).to_string(), f.score.to_string()];
        row.extend(f.facial_area.iter().map(|v| (*v as i64).to_string()));
        row.extend(f.landmarks.points().iter().flatten().map(|v| v.to_string()));
        // The unrounded box last, so the package-like columns keep their places.
        row.extend(f.facial_area.iter().map(|v| v.to_string()));
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

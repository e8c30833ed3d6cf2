//! Face crops: `extract_faces` of the `retina-face` package (eyes levelled, optional margin and
//! letterbox to a target size) and the 112x112 ArcFace crop of face-recognition models.
//!
//! The geometry is worked out on the host, one affine map per face from crop pixels to image
//! pixels; `shaders/warp.wgsl` then produces every crop of an image in one dispatch, sampling
//! the original image bilinearly. Nothing rotates the whole image, so unlike the package there
//! are no black corners: outside the image the nearest edge pixel is used, and black appears
//! only in the letterbox bands of a `target_size`.

use image::RgbImage;

use crate::error::{Error, Result};
use crate::face::{Face, Landmarks};
use crate::ops::warp::CropSpec;
use crate::options::DetectOptions;
#[cfg(feature = "native")]
use {
    crate::detector::Detector,
    crate::gpu::{map_and_copy, storage_buffer},
    crate::ops::warp::{self, OutFormat},
    crate::options::Resize,
    image::RgbaImage,
    std::path::Path,
};

/// The five ArcFace reference points in a 112x112 crop (insightface's `arcface_dst`), in the
/// order of [`Landmarks::points`]: right eye (the image-left eye), left eye, nose, right and
/// left mouth corners.
pub const ARCFACE_TEMPLATE: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// Side of an ArcFace crop.
pub const ARCFACE_SIZE: u32 = 112;

/// Options of [`Detector::extract_faces`], with the `retina-face` package's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExtractOptions {
    /// Detection settings: `threshold` and `allow_upscaling` are the package's options of the
    /// same names.
    pub detect: DetectOptions,
    /// Rotate each crop so the eyes are level (default true).
    pub align: bool,
    /// Before cropping, detect the landmarks again on an upright view of each face and align
    /// (or fit the ArcFace template) to those (default true). RetinaFace places the landmarks
    /// of a strongly rolled face a few degrees off (about 3 degrees on `tilted_head`, rolled
    /// 59 degrees), enough to leave the eyes 4-5 px apart in height; on an upright face it
    /// does not. Costs one to three detections of six 192x192 views per face, all faces
    /// of an image tiled into one picture (see [`Detector::refine_landmarks`]).
    pub refine: bool,
    /// Grow each box by this percentage of its width and height, centred, clamped to the
    /// image (default 0).
    pub expand_face_area: f32,
    /// `(width, height)`: scale each crop to fit, keeping its aspect ratio, and pad it centred
    /// with black to exactly this size.
    pub target_size: Option<(u32, u32)>,
    /// Instead of the above, the 112x112 crop that ArcFace-style recognition models expect:
    /// the similarity transform that best maps the five landmarks onto [`ARCFACE_TEMPLATE`].
    pub arcface: bool,
    /// Also return the crop as `f32` RGB in [0, 1] ([`FaceCrop::data`]), computed on the GPU
    /// without rounding to 8 bits.
    pub float: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            detect: DetectOptions::default(),
            align: true,
            refine: true,
            expand_face_area: 0.0,
            target_size: None,
            arcface: false,
            float: false,
        }
    }
}

/// Largest side of a `target_size`.
pub const MAX_TARGET_SIDE: u32 = 16384;

impl ExtractOptions {
    pub fn validate(&self) -> Result<()> {
        self.detect.validate()?;
        if !(self.expand_face_area.is_finite() && self.expand_face_area >= 0.0) {
            return Err(Error::InvalidOption(format!(
                "expand_face_area {} is not a percentage >= 0",
                self.expand_face_area
            )));
        }
        if let Some((w, h)) = self.target_size {
            if !(1..=MAX_TARGET_SIDE).contains(&w) || !(1..=MAX_TARGET_SIDE).contains(&h) {
                return Err(Error::InvalidOption(format!(
                    "target size {w}x{h}: each side must be 1..={MAX_TARGET_SIDE}"
                )));
            }
        }
        if self.arcface {
            let conflict = if !self.align {
                Some("turning alignment off")
            } else if self.expand_face_area != 0.0 {
                Some("expand_face_area")
            } else if self.target_size.is_some() {
                Some("target_size")
            } else {
                None
            };
            if let Some(what) = conflict {
                return Err(Error::InvalidOption(format!(
                    "arcface crops are fixed 112x112 similarity warps; {what} does not apply to them"
                )));
            }
        }
        Ok(())
    }
}

/// A 2x3 affine map: `(x, y) -> (m[0][0] x + m[0][1] y + m[0][2], m[1][0] x + m[1][1] y + m[1][2])`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    pub m: [[f64; 3]; 2],
}

impl Affine {
    pub const IDENTITY: Affine = Affine {
        m: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
    };

    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        let (x, y) = (p[0] as f64, p[1] as f64);
        let m = &self.m;
        [
            (m[0][0] * x + m[0][1] * y + m[0][2]) as f32,
            (m[1][0] * x + m[1][1] * y + m[1][2]) as f32,
        ]
    }

    /// The inverse map; `None` when the linear part is singular.
    pub fn inverse(&self) -> Option<Affine> {
        let [[a, b, c], [d, e, f]] = self.m;
        let det = a * e - b * d;
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
        Some(Affine {
            m: [[ia, ib, -(ia * c + ib * f)], [id, ie, -(id * c + ie * f)]],
        })
    }

    /// Rotation of the map in degrees (counter-clockwise on screen is negative: y points down).
    pub fn angle_degrees(&self) -> f64 {
        self.m[1][0].atan2(self.m[0][0]).to_degrees()
    }

    fn to_f32(self) -> [[f32; 3]; 2] {
        self.m.map(|r| r.map(|v| v as f32))
    }
}

/// Least-squares similarity transform (rotation, uniform scale, translation; no reflection)
/// mapping `src` onto `dst`: Umeyama's estimate, as scikit-image's `SimilarityTransform` and
/// insightface's `norm_crop` use. In 2-D it has a closed form: writing points as complex
/// numbers, `dst = z src + t` with `z = sum(conj(s_i) d_i) / sum(|s_i|^2)` over the centred
/// points (`z = s (cos a + i sin a)`), which is the rotation Umeyama's SVD picks, its scale
/// `trace(D S) / var(src)` and its translation. `None` when the source points coincide.
pub fn similarity_transform(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Option<Affine> {
    assert_eq!(src.len(), dst.len(), "point counts differ");
    let n = src.len() as f64;
    if src.is_empty() {
        return None;
    }
    let mean = |pts: &[[f32; 2]]| {
        let (sx, sy) = pts
            .iter()
            .fold((0.0, 0.0), |(x, y), p| (x + p[0] as f64, y + p[1] as f64));
        (sx / n, sy / n)
    };
    let (msx, msy) = mean(src);
    let (mdx, mdy) = mean(dst);
    let (mut re, mut im, mut var) = (0.0, 0.0, 0.0);
    for (s, d) in src.iter().zip(dst) {
        let (sx, sy) = (s[0] as f64 - msx, s[1] as f64 - msy);
        let (dx, dy) = (d[0] as f64 - mdx, d[1] as f64 - mdy);
        // conj(s) * d
        re += sx * dx + sy * dy;
        im += sx * dy - sy * dx;
        var += sx * sx + sy * sy;
    }
    if var < 1e-12 {
        return None;
    }
    let (a, b) = (re / var, im / var);
    Some(Affine {
        m: [
            [a, -b, mdx - (a * msx - b * msy)],
            [b, a, mdy - (b * msx + a * msy)],
        ],
    })
}

/// The similarity transform from image pixels to the 112x112 ArcFace crop for these landmarks.
pub fn arcface_transform(landmarks: &Landmarks) -> Option<Affine> {
    similarity_transform(&landmarks.points(), &ARCFACE_TEMPLATE)
}

/// Angle of the line from `right_eye` (image-left) to `left_eye`, in radians: the rotation
/// that levels the eyes is its opposite. 0 for an upright face; positive when the image-right
/// eye is lower.
pub fn eye_angle(l: &Landmarks) -> f64 {
    let dy = l.left_eye[1] as f64 - l.right_eye[1] as f64;
    let dx = l.left_eye[0] as f64 - l.right_eye[0] as f64;
    dy.atan2(dx)
}

/// The integer box the package crops, `(x, y, w, h)`: the facial area truncated to integers,
/// grown by `expand` percent as `retina-face` does (`w + int(w * pct / 100)`, moved back by
/// half the growth), then intersected with the image; never empty.
pub fn crop_box(face: &Face, image_w: u32, image_h: u32, expand: f32) -> (i64, i64, i64, i64) {
    let (iw, ih) = (image_w as i64, image_h as i64);
    // `astype(int)`: truncation toward zero.
    let [x1, y1, x2, y2] = face.facial_area.map(|v| v as i64);
    let (mut x, mut y) = (x1, y1);
    let (mut w, mut h) = ((x2 - x1).max(1), (y2 - y1).max(1));
    if expand > 0.0 {
        let ew = w + (w as f64 * expand as f64 / 100.0) as i64;
        let eh = h + (h as f64 * expand as f64 / 100.0) as i64;
        x -= (ew - w) / 2;
        y -= (eh - h) / 2;
        w = ew;
        h = eh;
    }
    // Intersect with the image. The package clamps only expanded boxes, and by moving them
    // (`x = max(0, x)` keeps the width, so the box grows on the far side); a detector box can
    // stick out of the image too, and the face should stay where it is.
    let (x0, y0) = (x.clamp(0, iw - 1), y.clamp(0, ih - 1));
    let x1 = (x + w).clamp(x0 + 1, iw);
    let y1 = (y + h).clamp(y0 + 1, ih);
    (x0, y0, x1 - x0, y1 - y0)
}

/// Output pixels to image pixels for a `size` box centred on `centre` (continuous coordinates:
/// pixel i covers [i, i + 1)) and turned by `theta`, drawn at `scale` image pixels per output
/// pixel with its corner at output pixel `offset`.
fn rotated_box(
    centre: [f64; 2],
    theta: f64,
    size: [f64; 2],
    scale: [f64; 2],
    offset: [f64; 2],
) -> Affine {
    let (s, c) = theta.sin_cos();
    let ([cx, cy], [sx, sy]) = (centre, scale);
    // Output pixel (u, v) is at box position q = ((u + 0.5 - ox) sx, (v + 0.5 - oy) sy), and
    // at image position centre + R (q - size / 2), minus 0.5 to go back to pixel indices.
    let qx = (0.5 - offset[0]) * sx - size[0] / 2.0;
    let qy = (0.5 - offset[1]) * sy - size[1] / 2.0;
    Affine {
        m: [
            [c * sx, -s * sy, cx - 0.5 + c * qx - s * qy],
            [s * sx, c * sy, cy - 0.5 + s * qx + c * qy],
        ],
    }
}

/// Side of the upright view on which [`ExtractOptions::refine`] detects the landmarks again:
/// one size for every face, so the detector builds its buffers once.
pub const PROBE_SIZE: u32 = 192;
/// The view's side relative to the box's longer side: context for the detector, and room
/// for a first angle that is a few degrees off.
const PROBE_MARGIN: f64 = 1.6;

/// Faces with eyes closer than this (pixels) are not refined: a 3-degree error moves such
/// eyes by less than a pixel.
pub const REFINE_MIN_EYE_DISTANCE: f32 = 16.0;
/// Faces per refining detection: 16 faces' six 192-px views tile a 1152x3072 picture, well
/// within the per-binding limits of every adapter.
pub const REFINE_FACES_PER_DETECTION: usize = 16;
/// Each face is looked at turned by these many degrees more than its current angle (and in
/// the mirror): the detector's landmarks jump a little when a small rotation makes another
/// anchor win, and averaging over a few nearby rotations smooths those jumps out (without
/// it, refinement on `small_group` face 2 of the mirrored photo alternates between two
/// angles 1.6 degrees apart).
pub const REFINE_TURNS_DEG: [f64; 3] = [-2.0, 0.0, 2.0];
#[cfg(feature = "native")]
const VIEWS: usize = 2 * REFINE_TURNS_DEG.len();

/// Most passes of [`Detector::refine_landmarks`].
pub const MAX_REFINE_PASSES: usize = 4;
/// Refinement stops when no eye angle changed by more than this many degrees in a pass.
pub const REFINE_TOLERANCE_DEG: f64 = 0.5;

/// The upright view of `face` (turned by its eye angle, plus `turn` degrees) used to refine
/// its landmarks.
pub fn probe_geometry(face: &Face, turn: f64) -> CropGeometry {
    let [x1, y1, x2, y2] = face.facial_area.map(|v| v as f64);
    let side = PROBE_MARGIN * (x2 - x1).max(y2 - y1).max(1.0);
    let p = PROBE_SIZE as f64;
    let theta = eye_angle(&face.landmarks) + turn.to_radians();
    // Centred on the landmarks, which refinement improves, rather than on the box, which it
    // keeps: the framing then converges with the angle, and framing the mirror image the
    // same way gives the mirrored result.
    let pts = face.landmarks.points();
    let mean = |k: usize| pts.iter().map(|q| q[k] as f64).sum::<f64>() / 5.0;
    let to_image = rotated_box(
        [mean(0), mean(1)],
        theta,
        [side, side],
        [side / p, side / p],
        [0.0, 0.0],
    );
    CropGeometry {
        spec: CropSpec {
            matrix: to_image.to_f32(),
            width: PROBE_SIZE,
            height: PROBE_SIZE,
            inner: [0, 0, PROBE_SIZE, PROBE_SIZE],
        },
        to_image,
        angle: theta.to_degrees() as f32,
    }
}

/// The same view, mirrored left to right: output pixel (u, v) shows what `g` shows at
/// (width - 1 - u, v).
#[cfg(feature = "native")]
fn mirrored(g: &CropGeometry) -> CropGeometry {
    let [[a, b, c], [d, e, f]] = g.to_image.m;
    let last = (g.spec.width - 1) as f64;
    let to_image = Affine {
        m: [[-a, b, c + a * last], [-d, e, f + d * last]],
    };
    CropGeometry {
        spec: CropSpec {
            matrix: to_image.to_f32(),
            ..g.spec
        },
        to_image,
        angle: g.angle,
    }
}

/// How one face is cropped: the warp and the rotation it applies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropGeometry {
    pub spec: CropSpec,
    /// Crop pixels to image pixels (pixel indices, centres at integers).
    pub to_image: Affine,
    /// Degrees the face was rotated by to level the eyes (0 without alignment).
    pub angle: f32,
}

/// The crop of `face` in a `image_w x image_h` image under `opts` (see [`ExtractOptions`]).
pub fn crop_geometry(
    face: &Face,
    image_w: u32,
    image_h: u32,
    opts: &ExtractOptions,
) -> Result<CropGeometry> {
    if opts.arcface {
        let to_crop = arcface_transform(&face.landmarks)
            .ok_or_else(|| Error::InvalidOption("face landmarks coincide".into()))?;
        let to_image = to_crop
            .inverse()
            .ok_or_else(|| Error::InvalidOption("face landmarks coincide".into()))?;
        return Ok(CropGeometry {
            spec: CropSpec {
                matrix: to_image.to_f32(),
                width: ARCFACE_SIZE,
                height: ARCFACE_SIZE,
                inner: [0, 0, ARCFACE_SIZE, ARCFACE_SIZE],
            },
            to_image,
            angle: to_crop.angle_degrees() as f32,
        });
    }
    let (x, y, w, h) = crop_box(face, image_w, image_h, opts.expand_face_area);
    let (w, h) = (w as f64, h as f64);
    // The box in continuous coordinates (pixel i covers [i, i + 1)); the crop turns about its
    // centre, as the package's `rotate_facial_area` keeps the box size and moves its centre.
    let (cx, cy) = (x as f64 + w / 2.0, y as f64 + h / 2.0);
    let theta = if opts.align {
        eye_angle(&face.landmarks)
    } else {
        0.0
    };
    let (out_w, out_h, inner, sx, sy) = match opts.target_size {
        None => (w as u32, h as u32, [0, 0, w as u32, h as u32], 1.0, 1.0),
        Some((tw, th)) => {
            // Letterbox: fit, keep the aspect ratio, centre, black bands.
            let f = (tw as f64 / w).min(th as f64 / h);
            let iw = ((w * f).round() as u32).clamp(1, tw);
            let ih = ((h * f).round() as u32).clamp(1, th);
            let (ox, oy) = ((tw - iw) / 2, (th - ih) / 2);
            (
                tw,
                th,
                [ox, oy, ox + iw, oy + ih],
                w / iw as f64,
                h / ih as f64,
            )
        }
    };
    let to_image = rotated_box(
        [cx, cy],
        theta,
        [w, h],
        [sx, sy],
        [inner[0] as f64, inner[1] as f64],
    );
    Ok(CropGeometry {
        spec: CropSpec {
            matrix: to_image.to_f32(),
            width: out_w,
            height: out_h,
            inner,
        },
        to_image,
        angle: theta.to_degrees() as f32,
    })
}

/// One face and its crop.
#[derive(Clone, Debug)]
pub struct FaceCrop {
    /// The detection, in original-image pixels.
    pub face: Face,
    /// The landmarks the crop was aligned to, in original-image pixels: the detection's, or
    /// with [`ExtractOptions::refine`] those found again on the upright view.
    pub landmarks: Landmarks,
    /// The crop, 8-bit RGB.
    pub image: RgbImage,
    /// With [`ExtractOptions::float`]: the crop as RGB `f32` in [0, 1], row-major, 3 per pixel.
    pub data: Option<Vec<f32>>,
    /// Crop pixels to original-image pixels; [`FaceCrop::to_crop`] goes the other way.
    pub to_image: Affine,
    /// Degrees the face was rotated by (0 without alignment).
    pub angle: f32,
    /// `[x0, y0, x1, y1)`: the part of the crop showing the image; outside it, the black
    /// letterbox bands of a target size.
    pub inner: [u32; 4],
}

impl FaceCrop {
    /// An original-image point (e.g. a landmark) in crop pixels.
    pub fn to_crop(&self, p: [f32; 2]) -> [f32; 2] {
        self.to_image
            .inverse()
            .map(|m| m.apply(p))
            .unwrap_or([f32::NAN; 2])
    }
}

// Cropping reads the crops back with a blocking wait (native only).
#[cfg(feature = "native")]
impl Detector {
    /// Detects faces and crops each one as [`ExtractOptions`] says (by default: eyes levelled,
    /// the detected box, native size), in the order of the detections. All crops of the
    /// image come from one GPU dispatch.
    pub fn extract_faces(&self, image: &RgbaImage, opts: &ExtractOptions) -> Result<Vec<FaceCrop>> {
        opts.validate()?;
        let faces = self.detect_with(image, &opts.detect)?;
        self.crop_faces(image, &faces, opts)
    }

    pub fn extract_faces_path(&self, path: &Path, opts: &ExtractOptions) -> Result<Vec<FaceCrop>> {
        self.extract_faces(&crate::image_io::load_path(path)?, opts)
    }

    /// Crops faces that were already detected (`opts.detect` is not used).
    pub fn crop_faces(
        &self,
        image: &RgbaImage,
        faces: &[Face],
        opts: &ExtractOptions,
    ) -> Result<Vec<FaceCrop>> {
        opts.validate()?;
        let (w, h) = image.dimensions();
        let landmarks = if opts.refine && (opts.align || opts.arcface) {
            self.refine_landmarks(image, faces)?
        } else {
            faces.iter().map(|f| f.landmarks).collect()
        };
        let geometry = faces
            .iter()
            .zip(&landmarks)
            .map(|(f, l)| {
                let aligned = Face {
                    landmarks: *l,
                    ..*f
                };
                crop_geometry(&aligned, w, h, opts)
            })
            .collect::<Result<Vec<_>>>()?;
        let specs: Vec<CropSpec> = geometry.iter().map(|g| g.spec).collect();
        let format = if opts.float {
            OutFormat::RgbF32
        } else {
            OutFormat::Rgba8
        };
        let words = self.warp(image, &specs, format)?;
        Ok(faces
            .iter()
            .zip(geometry)
            .zip(words)
            .zip(landmarks)
            .map(|(((face, g), words), landmarks)| {
                let (cw, ch) = (g.spec.width, g.spec.height);
                let (image, data) = match format {
                    OutFormat::Rgba8 => {
                        let rgb = words
                            .iter()
                            .flat_map(|w| {
                                let b = w.to_le_bytes();
                                [b[0], b[1], b[2]]
                            })
                            .collect();
                        (RgbImage::from_raw(cw, ch, rgb), None)
                    }
                    OutFormat::RgbF32 => {
                        let data: Vec<f32> = words.iter().map(|w| f32::from_bits(*w)).collect();
                        let rgb = data
                            .iter()
                            .map(|v| (v * 255.0 + 0.5).clamp(0.0, 255.0) as u8)
                            .collect();
                        (RgbImage::from_raw(cw, ch, rgb), Some(data))
                    }
                };
                FaceCrop {
                    face: *face,
                    landmarks,
                    image: image.expect("crop buffer has width * height pixels"),
                    data,
                    to_image: g.to_image,
                    angle: g.angle,
                    inner: g.spec.inner,
                }
            })
            .collect())
    }

    /// Each face's landmarks found again on an upright view of it (see
    /// [`ExtractOptions::refine`]), in image pixels; a face not found again keeps its own.
    ///
    /// The detector is not quite mirror-symmetric (on `tilted_head` its angles for the photo
    /// and for its mirror image differ by 3 degrees), so each face is looked at in the mirror
    /// too, and its landmarks there (left and right swapped back) are averaged with the
    /// others; the result is mirror-symmetric by construction. Both are looked at turned by
    /// each of [`REFINE_TURNS_DEG`], which smooths the small jumps of the detector's
    /// landmarks as the view turns.
    ///
    /// The view is turned by the current estimate, so a better estimate gives a more upright
    /// view and a better estimate again: a face is looked at again until its eye angle moves
    /// by less than [`REFINE_TOLERANCE_DEG`], at most [`MAX_REFINE_PASSES`] times (a face
    /// rolled by 20 degrees typically needs three passes). Faces whose eyes are less than
    /// [`REFINE_MIN_EYE_DISTANCE`] apart are left alone.
    ///
    /// Per pass, the six views of every face come from one warp dispatch and are tiled into
    /// one picture (at most [`REFINE_FACES_PER_DETECTION`] faces each) for one detection.
    pub fn refine_landmarks(&self, image: &RgbaImage, faces: &[Face]) -> Result<Vec<Landmarks>> {
        let mut current: Vec<Face> = faces.to_vec();
        let eye_distance =
            |l: &Landmarks| (l.left_eye[0] - l.right_eye[0]).hypot(l.left_eye[1] - l.right_eye[1]);
        let mut active: Vec<usize> = (0..faces.len())
            .filter(|&i| eye_distance(&faces[i].landmarks) >= REFINE_MIN_EYE_DISTANCE)
            .collect();
        for _ in 0..MAX_REFINE_PASSES {
            if active.is_empty() {
                break;
            }
            let batch: Vec<Face> = active.iter().map(|&i| current[i]).collect();
            let found = self.refine_pass(image, &batch)?;
            let mut still = Vec::new();
            for (&i, l) in active.iter().zip(found) {
                let Some(l) = l else { continue };
                let moved = (eye_angle(&current[i].landmarks) - eye_angle(&l))
                    .abs()
                    .to_degrees();
                current[i].landmarks = l;
                if moved >= REFINE_TOLERANCE_DEG {
                    still.push(i);
                }
            }
            active = still;
        }
        Ok(current.into_iter().map(|f| f.landmarks).collect())
    }

    /// One pass of [`Detector::refine_landmarks`]: the new landmarks of each face, `None`
    /// where neither view showed it.
    fn refine_pass(&self, image: &RgbaImage, faces: &[Face]) -> Result<Vec<Option<Landmarks>>> {
        // Per face: each turn, then its mirror image.
        let probes: Vec<Vec<CropGeometry>> = faces
            .iter()
            .map(|f| {
                REFINE_TURNS_DEG
                    .iter()
                    .flat_map(|&t| {
                        let g = probe_geometry(f, t);
                        [g, mirrored(&g)]
                    })
                    .collect()
            })
            .collect();
        let specs: Vec<CropSpec> = probes.iter().flatten().map(|g| g.spec).collect();
        let views = self.warp(image, &specs, OutFormat::Rgba8)?;
        let mut out = Vec::with_capacity(faces.len());
        for (probes, views) in probes
            .chunks(REFINE_FACES_PER_DETECTION)
            .zip(views.chunks(VIEWS * REFINE_FACES_PER_DETECTION))
        {
            out.extend(self.refine_tiles(probes, views)?);
        }
        Ok(out)
    }

    /// Tiles the views (each face's views in a row, rows in a grid), detects once, and maps
    /// each view's landmarks back to the image.
    fn refine_tiles(
        &self,
        probes: &[Vec<CropGeometry>],
        views: &[Vec<u32>],
    ) -> Result<Vec<Option<Landmarks>>> {
        let p = PROBE_SIZE;
        let n = probes.len() as u32;
        let v = VIEWS as u32;
        // One face's views per row, rows padded to a power of two: the detector builds and
        // caches its buffers per input size, and few sizes (1, 2, 4, ... faces) keep its
        // cache from evicting the photo's own.
        let cols = 1;
        let rows = n.next_power_of_two();
        let mut tiles = RgbaImage::new(v * p * cols, p * rows);
        for (k, view) in views.iter().enumerate() {
            let (face, side) = (k as u32 / v, k as u32 % v);
            let x0 = (face % cols) * v * p + side * p;
            let y0 = (face / cols) * p;
            let bytes = bytemuck::cast_slice::<u32, u8>(view).to_vec();
            let tile = RgbaImage::from_raw(p, p, bytes).expect("a view has P x P pixels");
            image::imageops::replace(&mut tiles, &tile, x0 as i64, y0 as i64);
        }
        // The face must sit where the first detection put it: the middle of its view.
        let opts = DetectOptions {
            threshold: 0.5,
            resize: Resize::Original,
            ..DetectOptions::default()
        };
        let found = self.detect_with(&tiles, &opts)?;
        let half = p as f32 / 2.0;
        Ok(probes
            .iter()
            .enumerate()
            .map(|(face, geometry)| {
                let mut sets = Vec::new();
                for (side, g) in geometry.iter().enumerate() {
                    let x0 = ((face as u32 % cols) * v * p + side as u32 * p) as f32;
                    let y0 = ((face as u32 / cols) * p) as f32;
                    let off_centre = |f: &Face| {
                        let [x1, y1, x2, y2] = f.facial_area;
                        ((x1 + x2) / 2.0 - x0 - half).hypot((y1 + y2) / 2.0 - y0 - half)
                    };
                    let best = found
                        .iter()
                        .filter(|f| off_centre(f) < half / 2.0)
                        .min_by(|a, b| off_centre(a).total_cmp(&off_centre(b)));
                    if let Some(f) = best {
                        // Detector coordinates are continuous (pixel i covers [i, i + 1));
                        // the map works on pixel indices.
                        let mut pts = f.landmarks.points().map(|[x, y]| {
                            let [ix, iy] = g.to_image.apply([x - 0.5 - x0, y - 0.5 - y0]);
                            [ix + 0.5, iy + 0.5]
                        });
                        if side % 2 == 1 {
                            // In the mirror the subject's right eye is the one on the right.
                            pts.swap(0, 1);
                            pts.swap(3, 4);
                        }
                        sets.push(pts);
                    }
                }
                if sets.is_empty() {
                    return None;
                }
                let w = 1.0 / sets.len() as f32;
                let mut avg = [[0f32; 2]; 5];
                for set in &sets {
                    for (a, q) in avg.iter_mut().zip(set) {
                        a[0] += q[0] * w;
                        a[1] += q[1] * w;
                    }
                }
                Some(Landmarks::from_points(avg))
            })
            .collect())
    }

    /// Any affine crops of `image` ([`CropSpec`]), computed on the GPU: the image is uploaded
    /// once and all crops come from one dispatch (more only when their total output exceeds
    /// the device's per-binding limit). Returns each crop's u32 words: packed RGBA8 per pixel,
    /// or three `f32` bit patterns per pixel for [`OutFormat::RgbF32`].
    pub fn warp(
        &self,
        image: &RgbaImage,
        crops: &[CropSpec],
        format: OutFormat,
    ) -> Result<Vec<Vec<u32>>> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let ctx = self.context();
        let limit = ctx.max_binding_bytes();
        let (w, h) = image.dimensions();
        let src_bytes = image.as_raw().len() as u64;
        if src_bytes > limit {
            return Err(Error::InvalidOption(format!(
                "a {w}x{h} image needs {src_bytes} bytes on the GPU, over this device's limit \
                 of {limit} bytes per storage binding; shrink it before cropping"
            )));
        }
        // Batches of crops whose output fits one binding and whose count fits the z grid.
        let max_z = ctx.limits().max_compute_workgroups_per_dimension.max(1) as usize;
        let mut batches: Vec<std::ops::Range<usize>> = Vec::new();
        let (mut start, mut bytes) = (0, 0u64);
        for (i, c) in crops.iter().enumerate() {
            let b = c.pixels() * format.words() * 4;
            if b > limit || c.width == 0 || c.height == 0 {
                return Err(Error::InvalidOption(format!(
                    "a {}x{} crop does not fit this device's limit of {limit} bytes per \
                     storage binding; use a smaller target size",
                    c.width, c.height
                )));
            }
            if i > start && (bytes + b > limit || i - start >= max_z) {
                batches.push(start..i);
                start = i;
                bytes = 0;
            }
            bytes += b;
        }
        batches.push(start..crops.len());

        let kernel = self.warp_kernel();
        let out = self.scoped("face crops", || -> Result<Vec<Vec<u32>>> {
            let src = wgpu::util::DeviceExt::create_buffer_init(
                &ctx.device,
                &wgpu::util::BufferInitDescriptor {
                    label: Some("warp source"),
                    contents: image.as_raw(),
                    usage: wgpu::BufferUsages::STORAGE,
                },
            );
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            let mut outputs = Vec::new();
            let mut steps = Vec::new();
            for range in &batches {
                let batch = &crops[range.clone()];
                let (offsets, words) = warp::offsets(batch, format);
                let dst = storage_buffer(ctx, "warp crops", words * 4);
                let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("warp readback"),
                    size: (words * 4).max(4),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                steps.push(warp::step(ctx, kernel, (w, h), batch, format, &src, &dst));
                outputs.push((dst, staging, offsets, words));
            }
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                for s in &steps {
                    s.record(&mut pass);
                }
            }
            for (dst, staging, _, words) in &outputs {
                encoder.copy_buffer_to_buffer(dst, 0, staging, 0, words * 4);
            }
            // One submit for every crop of the image.
            ctx.queue.submit([encoder.finish()]);
            let mut result = Vec::with_capacity(crops.len());
            for ((_, staging, offsets, words), range) in outputs.iter().zip(&batches) {
                let bytes = map_and_copy(ctx, staging, (*words * 4) as usize)?;
                let all: &[u32] = bytemuck::cast_slice(&bytes);
                for (c, &o) in crops[range.clone()].iter().zip(offsets) {
                    let n = (c.pixels() * format.words()) as usize;
                    result.push(all[o as usize..o as usize + n].to_vec());
                }
            }
            Ok(result)
        })??;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face_with(landmarks: [[f32; 2]; 5], area: [f32; 4]) -> Face {
        Face {
            score: 0.99,
            facial_area: area,
            landmarks: Landmarks::from_points(landmarks),
        }
    }

    #[test]
    fn similarity_recovers_a_known_transform() {
        // Scale 1.7, rotation -23 degrees, translation (12.5, -40): map the template and back.
        let (s, a) = (1.7f64, (-23f64).to_radians());
        let known = Affine {
            m: [
                [s * a.cos(), -s * a.sin(), 12.5],
                [s * a.sin(), s * a.cos(), -40.0],
            ],
        };
        let src = ARCFACE_TEMPLATE;
        let dst = src.map(|p| known.apply(p));
        let est = similarity_transform(&src, &dst).unwrap();
        for r in 0..2 {
            for c in 0..3 {
                assert!(
                    (est.m[r][c] - known.m[r][c]).abs() < 1e-4,
                    "{est:?} vs {known:?}"
                );
            }
        }
        assert!((est.angle_degrees() + 23.0).abs() < 1e-4);
        // And the inverse goes back.
        let back = est.inverse().unwrap().apply(dst[2]);
        assert!((back[0] - src[2][0]).abs() < 1e-3 && (back[1] - src[2][1]).abs() < 1e-3);
    }

    #[test]
    fn similarity_is_the_least_squares_optimum_on_noisy_points() {
        // Perturbed points: no exact fit; the estimate must beat every nearby similarity
        // (the closed form is Umeyama's minimiser, so small changes of any parameter hurt).
        let src = [
            [440.0, 216.0],
            [553.0, 217.0],
            [500.0, 278.0],
            [434.0, 319.0],
            [555.0, 320.0],
        ];
        let dst = ARCFACE_TEMPLATE;
        let est = similarity_transform(&src, &dst).unwrap();
        let cost = |m: &Affine| -> f64 {
            src.iter()
                .zip(&dst)
                .map(|(s, d)| {
                    let p = m.apply(*s);
                    ((p[0] - d[0]) as f64).powi(2) + ((p[1] - d[1]) as f64).powi(2)
                })
                .sum()
        };
        let best = cost(&est);
        let [[a, nb, tx], [b, _, ty]] = est.m;
        for (da, db, dtx, dty) in [
            (1e-3, 0.0, 0.0, 0.0),
            (-1e-3, 0.0, 0.0, 0.0),
            (0.0, 1e-3, 0.0, 0.0),
            (0.0, -1e-3, 0.0, 0.0),
            (0.0, 0.0, 0.1, 0.0),
            (0.0, 0.0, 0.0, -0.1),
        ] {
            let (a2, b2) = (a + da, b + db);
            let m = Affine {
                m: [[a2, -b2, tx + dtx], [b2, a2, ty + dty]],
            };
            assert!(cost(&m) > best, "{da} {db} {dtx} {dty}");
        }
        assert_eq!(nb, -b, "no shear, no reflection");
    }

    #[test]
    fn degenerate_points_give_none() {
        assert!(similarity_transform(&[[1.0, 2.0]; 5], &ARCFACE_TEMPLATE).is_none());
    }

    #[test]
    fn unaligned_crop_is_the_package_slice() {
        // No rotation, no target: img[y1:y2, x1:x2] of the truncated box, as the package.
        let f = face_with(ARCFACE_TEMPLATE, [10.7, 20.2, 40.9, 61.5]);
        let opts = ExtractOptions {
            align: false,
            ..Default::default()
        };
        let g = crop_geometry(&f, 100, 100, &opts).unwrap();
        assert_eq!((g.spec.width, g.spec.height), (30, 41));
        assert_eq!(g.spec.matrix, [[1.0, 0.0, 10.0], [0.0, 1.0, 20.0]]);
        assert_eq!(g.angle, 0.0);
    }

    #[test]
    fn expansion_follows_the_package_and_clamps() {
        let f = face_with(ARCFACE_TEMPLATE, [10.0, 20.0, 50.0, 80.0]);
        // w 40, h 60; +50 %: 60 x 90, moved back by 10 and 15.
        assert_eq!(crop_box(&f, 200, 200, 50.0), (0, 5, 60, 90));
        // Clamped at the right and bottom.
        assert_eq!(crop_box(&f, 55, 90, 50.0), (0, 5, 55, 85));
        // A box partly outside the image is clamped even without expansion.
        let g = face_with(ARCFACE_TEMPLATE, [-3.5, 190.0, 30.0, 230.0]);
        assert_eq!(crop_box(&g, 200, 200, 0.0), (0, 190, 30, 10));
    }

    #[test]
    fn aligned_crop_levels_the_eyes_and_keeps_the_centre() {
        // Eyes on a line at +30 degrees (image-right eye lower).
        let (s, c) = 30f32.to_radians().sin_cos();
        let re = [100.0, 100.0];
        let le = [100.0 + 40.0 * c, 100.0 + 40.0 * s];
        let f = face_with(
            [re, le, [120.0, 130.0], [100.0, 150.0], [130.0, 160.0]],
            [70.0, 60.0, 170.0, 190.0],
        );
        for target in [None, Some((64, 64)), Some((96, 48))] {
            let opts = ExtractOptions {
                target_size: target,
                ..Default::default()
            };
            let g = crop_geometry(&f, 300, 300, &opts).unwrap();
            assert!((g.angle - 30.0).abs() < 1e-4);
            let to_crop = g.to_image.inverse().unwrap();
            let (a, b) = (to_crop.apply(re), to_crop.apply(le));
            assert!((a[1] - b[1]).abs() < 1e-3, "{target:?}: {a:?} {b:?}");
            assert!(a[0] < b[0]);
            // The box centre lands in the middle of the output (within half a pixel when
            // an odd letterbox sits in an even target).
            let mid = to_crop.apply([120.0 - 0.5, 125.0 - 0.5]);
            let (w, h) = (g.spec.width as f32, g.spec.height as f32);
            let tol = if target.is_some() { 0.501 } else { 1e-3 };
            assert!((mid[0] - (w - 1.0) / 2.0).abs() < tol, "{mid:?} {w}");
            assert!((mid[1] - (h - 1.0) / 2.0).abs() < tol, "{mid:?} {h}");
            if let Some((tw, th)) = target {
                assert_eq!((g.spec.width, g.spec.height), (tw, th));
            }
        }
    }

    #[test]
    fn letterbox_keeps_aspect_and_centres() {
        let f = face_with(ARCFACE_TEMPLATE, [0.0, 0.0, 50.0, 100.0]);
        let opts = ExtractOptions {
            align: false,
            target_size: Some((80, 40)),
            ..Default::default()
        };
        let g = crop_geometry(&f, 200, 200, &opts).unwrap();
        // 50x100 fits 80x40 as 20x40, centred: bands of 30 px left and right.
        assert_eq!(g.spec.inner, [30, 0, 50, 40]);
        assert!((g.spec.matrix[0][0] - 2.5).abs() < 1e-6);
    }

    #[test]
    fn arcface_needs_no_other_geometry() {
        let bad = ExtractOptions {
            arcface: true,
            target_size: Some((64, 64)),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        assert!(ExtractOptions {
            arcface: true,
            ..Default::default()
        }
        .validate()
        .is_ok());
        assert!(ExtractOptions {
            expand_face_area: -1.0,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}

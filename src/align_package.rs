//! retina-face 0.0.19's `extract_faces` alignment, for users who need its crops exactly
//! (`retinaface extract --align package`): the whole image rotated about `(W // 2, H // 2)`
//! by the eye angle with OpenCV's bicubic `warpAffine` (fixed point, black borders), the face
//! box moved with the package's `project_facial_area`, then a numpy-style slice, as RGB
//! (spec §11). Our own alignment (`crate::align`) stays the default: it keeps the whole face
//! in the crop where the package's can come out empty or wrapped around.
//!
//! The crops are made on the host: each needs only its own pixels of the rotated image, and
//! OpenCV's integer arithmetic is reproduced (5 sub-pixel bits, 10-bit weights of the cubic
//! with A = -0.75, each 4x4 table adjusted to sum to exactly 1024).

use crate::face::Face;

/// A crop as the package returns it: `height x width` RGB pixels (possibly 0 wide or high).
#[derive(Clone, Debug, PartialEq)]
pub struct PackageCrop {
    pub width: usize,
    pub height: usize,
    /// RGB, row-major.
    pub rgb: Vec<u8>,
    /// The eye angle the image was rotated by, in degrees.
    pub angle: f64,
}

const INTER_BITS: u32 = 5;
const TAB: usize = 1 << INTER_BITS;
const AB_BITS: u32 = 10;
const AB_SCALE: f64 = (1 << AB_BITS) as f64;
const COEF_SCALE: i32 = 1024;

/// The package's crops of `faces` from `rgba` (`W x H`), in order: `expand_face_area` is its
/// percentage; `align` rotates as described in the module docs.
pub fn extract(
    rgba: &[u8],
    w: usize,
    h: usize,
    faces: &[Face],
    expand: u32,
    align: bool,
) -> Vec<PackageCrop> {
    let table = cubic_table();
    faces
        .iter()
        .map(|f| {
            let a = f.facial_area.map(|v| v as i64);
            let (mut x, mut y) = (a[0], a[1]);
            let (mut bw, mut bh) = (a[2] - a[0], a[3] - a[1]);
            if expand > 0 {
                let ew = bw + bw * expand as i64 / 100;
                let eh = bh + bh * expand as i64 / 100;
                x = (x - (ew - bw) / 2).max(0);
                y = (y - (eh - bh) / 2).max(0);
                bw = (w as i64 - x).min(ew);
                bh = (h as i64 - y).min(eh);
            }
            if !align {
                let (x1, x2) = slice(x, x + bw, w);
                let (y1, y2) = slice(y, y + bh, h);
                return copy(rgba, w, x1, x2, y1, y2, 0.0);
            }
            let (r, l) = (f.landmarks.right_eye, f.landmarks.left_eye);
            let angle = ((l[1] - r[1]) as f64)
                .atan2((l[0] - r[0]) as f64)
                .to_degrees();
            let [x1, y1, x2, y2] = project(angle, [x, y, x + bw, y + bh], w, h);
            let (x1, x2) = slice(x1, x2, w);
            let (y1, y2) = slice(y1, y2, h);
            rotated_crop(rgba, w, h, angle, (x1, x2), (y1, y2), &table)
        })
        .collect()
}

/// numpy's `a[start:stop]` bounds on an axis of `len`: a negative stop counts from the end.
fn slice(start: i64, stop: i64, len: usize) -> (usize, usize) {
    let n = len as i64;
    let fix = |v: i64| if v < 0 { (v + n).max(0) } else { v.min(n) };
    let (a, b) = (fix(start), fix(stop));
    (a as usize, b.max(a) as usize)
}

/// `project_facial_area`: the box's centre turned about (W / 2, H / 2), same size, truncated.
fn project(angle: f64, b: [i64; 4], w: usize, h: usize) -> [i64; 4] {
    let dir = if angle >= 0.0 { 1.0 } else { -1.0 };
    let theta = angle.abs() % 360.0;
    if theta == 0.0 {
        return b;
    }
    let t = theta.to_radians();
    let (cw, ch) = (w as f64 / 2.0, h as f64 / 2.0);
    let [bx1, by1, bx2, by2] = b.map(|v| v as f64);
    let (u, v) = ((bx1 + bx2) / 2.0 - cw, (by1 + by2) / 2.0 - ch);
    let u2 = u * t.cos() + v * dir * t.sin();
    let v2 = -u * dir * t.sin() + v * t.cos();
    let (cx, cy) = (u2 + cw, v2 + ch);
    let (hw, hh) = ((bx2 - bx1) / 2.0, (by2 - by1) / 2.0);
    [
        ((cx - hw) as i64).max(0),
        ((cy - hh) as i64).max(0),
        ((cx + hw) as i64).min(w as i64),
        ((cy + hh) as i64).min(h as i64),
    ]
}

fn copy(
    rgba: &[u8],
    w: usize,
    x1: usize,
    x2: usize,
    y1: usize,
    y2: usize,
    angle: f64,
) -> PackageCrop {
    let mut rgb = Vec::with_capacity((x2 - x1) * (y2 - y1) * 3);
    for y in y1..y2 {
        for x in x1..x2 {
            rgb.extend_from_slice(&rgba[(y * w + x) * 4..][..3]);
        }
    }
    PackageCrop {
        width: x2 - x1,
        height: y2 - y1,
        rgb,
        angle,
    }
}

/// OpenCV's `interpolateCubic` (A = -0.75) at `x` in [0, 1).
fn cubic(x: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let c0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
    let c1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let c2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
    [c0, c1, c2, 1.0 - c0 - c1 - c2]
}

/// `initInterTab2D(INTER_CUBIC, fixpt)`: 32 x 32 sub-pixel positions of 4x4 integer weights,
/// each set adjusted so it sums to exactly 1024.
fn cubic_table() -> Vec<[i32; 16]> {
    let one: Vec<[f32; 4]> = (0..TAB).map(|i| cubic(i as f32 / TAB as f32)).collect();
    let mut out = Vec::with_capacity(TAB * TAB);
    for i in 0..TAB {
        for j in 0..TAB {
            let mut t = [0i32; 16];
            let mut sum = 0;
            for k1 in 0..4 {
                for k2 in 0..4 {
                    let v = one[i][k1] * one[j][k2];
                    t[k1 * 4 + k2] = (v * COEF_SCALE as f32).round_ties_even() as i32;
                    sum += t[k1 * 4 + k2];
                }
            }
            if sum != COEF_SCALE {
                let diff = sum - COEF_SCALE;
                let (mut mk, mut big) = ((1, 1), (1, 1));
                for k1 in 1..3 {
                    for k2 in 1..3 {
                        if t[k1 * 4 + k2] < t[mk.0 * 4 + mk.1] {
                            mk = (k1, k2);
                        } else if t[k1 * 4 + k2] > t[big.0 * 4 + big.1] {
                            big = (k1, k2);
                        }
                    }
                }
                if diff < 0 {
                    t[big.0 * 4 + big.1] -= diff;
                } else {
                    t[mk.0 * 4 + mk.1] -= diff;
                }
            }
            out.push(t);
        }
    }
    out
}

/// Pixels `[x1, x2) x [y1, y2)` of `warpAffine(img, getRotationMatrix2D((W // 2, H // 2),
/// angle, 1), (W, H), INTER_CUBIC, BORDER_CONSTANT 0)`, as RGB.
fn rotated_crop(
    rgba: &[u8],
    w: usize,
    h: usize,
    angle: f64,
    (x1, x2): (usize, usize),
    (y1, y2): (usize, usize),
    table: &[[i32; 16]],
) -> PackageCrop {
    let (cx, cy) = ((w / 2) as f64, (h / 2) as f64);
    let (a, b) = (angle.to_radians().cos(), angle.to_radians().sin());
    let m = [
        a,
        b,
        (1.0 - a) * cx - b * cy,
        -b,
        a,
        b * cx + (1.0 - a) * cy,
    ];
    // warpAffine inverts the matrix (invertAffineTransform) and maps destination to source.
    let d = m[0] * m[4] - m[1] * m[3];
    let d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (a11, a22) = (m[4] * d, m[0] * d);
    let (a12, a21) = (-m[1] * d, -m[3] * d);
    let b1 = -a11 * m[2] - a12 * m[5];
    let b2 = -a21 * m[2] - a22 * m[5];
    let round_delta = (AB_SCALE / TAB as f64 / 2.0) as i64;
    let sat = |v: f64| v.round_ties_even() as i64;
    let px = |x: i64, y: i64, c: usize| -> i32 {
        if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
            0
        } else {
            rgba[(y as usize * w + x as usize) * 4 + c] as i32
        }
    };
    let mut rgb = Vec::with_capacity((x2 - x1) * (y2 - y1) * 3);
    for y in y1..y2 {
        let x0 = sat((a12 * y as f64 + b1) * AB_SCALE) + round_delta;
        let y0 = sat((a22 * y as f64 + b2) * AB_SCALE) + round_delta;
        for x in x1..x2 {
            let xx = (x0 + sat(a11 * x as f64 * AB_SCALE)) >> (AB_BITS - INTER_BITS);
            let yy = (y0 + sat(a21 * x as f64 * AB_SCALE)) >> (AB_BITS - INTER_BITS);
            let (sx, sy) = ((xx >> INTER_BITS) - 1, (yy >> INTER_BITS) - 1);
            let t =
                &table[((yy & (TAB as i64 - 1)) * TAB as i64 + (xx & (TAB as i64 - 1))) as usize];
            for c in 0..3 {
                let mut sum = 0i32;
                for k1 in 0..4 {
                    for k2 in 0..4 {
                        sum += px(sx + k2 as i64, sy + k1 as i64, c) * t[k1 * 4 + k2];
                    }
                }
                rgb.push(((sum + (1 << 9)) >> 10).clamp(0, 255) as u8);
            }
        }
    }
    PackageCrop {
        width: x2 - x1,
        height: y2 - y1,
        rgb,
        angle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_weights_sum_to_one_at_every_position() {
        let t = cubic_table();
        assert_eq!(t.len(), 1024);
        assert!(t.iter().all(|w| w.iter().sum::<i32>() == COEF_SCALE));
        // At the pixel itself the cubic is the identity.
        assert_eq!(t[0][5], 1024);
    }

    #[test]
    fn numpy_slices() {
        assert_eq!(slice(3, 7, 10), (3, 7));
        assert_eq!(slice(3, -2, 10), (3, 8));
        assert_eq!(slice(8, 5, 10), (8, 8));
        assert_eq!(slice(0, 20, 10), (0, 10));
    }

    #[test]
    fn zero_angle_rotation_copies_pixels() {
        let (w, h) = (9, 7);
        let rgba: Vec<u8> = (0..w * h * 4).map(|i| (i * 13 % 256) as u8).collect();
        let crop = rotated_crop(&rgba, w, h, 0.0, (2, 6), (1, 5), &cubic_table());
        assert_eq!(crop, copy(&rgba, w, 2, 6, 1, 5, 0.0));
    }
}

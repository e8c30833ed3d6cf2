//! Pictures of the detections: boxes, the five landmarks and the scores drawn into an RGB copy
//! of the image, on the CPU (a few hundred pixels per face; not worth a GPU round trip).
//!
//! Colours follow biubug6's `detect.py`: right eye red, left eye yellow, nose magenta, mouth
//! right green, mouth left blue. Scores are written with a built-in 5x7 bitmap font (digits and
//! a few signs), so no font file or font crate is needed.

use image::{Rgb, RgbImage, RgbaImage};

use crate::face::Face;

/// Box and label background.
pub const BOX_COLOR: Rgb<u8> = Rgb([0, 230, 255]);
/// Per landmark, in the order of [`crate::Landmarks::points`].
pub const LANDMARK_COLORS: [Rgb<u8>; 5] = [
    Rgb([255, 0, 0]),
    Rgb([255, 255, 0]),
    Rgb([255, 0, 255]),
    Rgb([0, 255, 0]),
    Rgb([0, 0, 255]),
];
const TEXT_COLOR: Rgb<u8> = Rgb([0, 0, 0]);

/// Glyphs of the 5x7 font: each row's five pixels are the low five bits, the leftmost pixel the
/// highest bit.
const GLYPH_W: u32 = 5;
const GLYPH_H: u32 = 7;

fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        ' ' => [0; 7],
        _ => return None,
    })
}

/// Size in pixels of `text` at `scale` (pixels per font pixel), one font pixel between glyphs.
pub fn text_size(text: &str, scale: u32) -> (u32, u32) {
    let n = text.chars().count() as u32;
    if n == 0 {
        return (0, 0);
    }
    ((n * (GLYPH_W + 1) - 1) * scale, GLYPH_H * scale)
}

/// Writes `text` with its top-left corner at (x, y), clipped to the canvas. Characters the
/// font lacks are drawn as a filled block, so nothing is silently dropped.
pub fn draw_text(canvas: &mut RgbImage, x: i64, y: i64, text: &str, scale: u32, color: Rgb<u8>) {
    let s = scale.max(1) as i64;
    for (i, c) in text.chars().enumerate() {
        let rows = glyph(c).unwrap_or([0x1F; 7]);
        let gx = x + i as i64 * (GLYPH_W as i64 + 1) * s;
        for (row, bits) in rows.iter().enumerate() {
            for col in 0..GLYPH_W as i64 {
                if bits >> (GLYPH_W as i64 - 1 - col) & 1 == 1 {
                    let px = gx + col * s;
                    let py = y + row as i64 * s;
                    fill_rect(canvas, px, py, px + s, py + s, color);
                }
            }
        }
    }
}

/// Fills `[x0, x1) x [y0, y1)`, clipped to the canvas.
pub fn fill_rect(canvas: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, color: Rgb<u8>) {
    let (w, h) = (canvas.width() as i64, canvas.height() as i64);
    for y in y0.max(0)..y1.min(h) {
        for x in x0.max(0)..x1.min(w) {
            canvas.put_pixel(x as u32, y as u32, color);
        }
    }
}

/// A filled disc of radius `r` centred on (cx, cy), clipped to the canvas.
pub fn fill_circle(canvas: &mut RgbImage, cx: f32, cy: f32, r: f32, color: Rgb<u8>) {
    let (w, h) = (canvas.width() as i64, canvas.height() as i64);
    let (x0, x1) = ((cx - r).floor() as i64, (cx + r).ceil() as i64);
    let (y0, y1) = ((cy - r).floor() as i64, (cy + r).ceil() as i64);
    for y in y0.max(0)..=y1.min(h - 1) {
        for x in x0.max(0)..=x1.min(w - 1) {
            // Pixel centres within the radius.
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            if dx * dx + dy * dy <= r * r {
                canvas.put_pixel(x as u32, y as u32, color);
            }
        }
    }
}

/// The outline of `[x0, x1) x [y0, y1)`, `t` pixels thick, drawn inside it.
pub fn draw_rect(canvas: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, t: i64, c: Rgb<u8>) {
    fill_rect(canvas, x0, y0, x1, y0 + t, c);
    fill_rect(canvas, x0, y1 - t, x1, y1, c);
    fill_rect(canvas, x0, y0, x0 + t, y1, c);
    fill_rect(canvas, x1 - t, y0, x1, y1, c);
}

/// Line thickness for an image: 1 px up to about 750 px on the short side, then growing, so
/// annotations of large photos stay visible when the picture is viewed scaled down.
pub fn thickness(width: u32, height: u32) -> u32 {
    (width.min(height) + 250) / 500
}

/// The score as shown: three decimals, truncated, so 0.9996 reads 0.999 rather than 1.000.
pub fn score_label(score: f32) -> String {
    format!("{:.3}", (score as f64 * 1000.0).floor() / 1000.0)
}

/// Draws every face's box, landmarks and score onto `canvas`.
pub fn draw_faces(canvas: &mut RgbImage, faces: &[Face]) {
    let t = thickness(canvas.width(), canvas.height()).max(1) as i64;
    let scale = t as u32 + 1;
    let pad = scale as i64;
    // Lowest score first, so the best faces' labels end on top where they overlap.
    for f in faces.iter().rev() {
        let [x1, y1, x2, y2] = f.facial_area.map(|v| v.round() as i64);
        draw_rect(canvas, x1, y1, x2 + 1, y2 + 1, t, BOX_COLOR);
        for (p, color) in f.landmarks.points().iter().zip(LANDMARK_COLORS) {
            fill_circle(canvas, p[0] + 0.5, p[1] + 0.5, (t + 1) as f32, color);
        }
        let label = score_label(f.score);
        let (tw, th) = text_size(&label, scale);
        let (lw, lh) = (tw as i64 + 2 * pad, th as i64 + 2 * pad);
        // Above the box, or inside it when the box touches the top of the image.
        let ly = if y1 - lh >= 0 { y1 - lh } else { y1 };
        fill_rect(canvas, x1, ly, x1 + lw, ly + lh, BOX_COLOR);
        draw_text(canvas, x1 + pad, ly + pad, &label, scale, TEXT_COLOR);
    }
}

/// An RGB copy of `image` with the faces drawn on it (alpha is dropped).
pub fn annotate(image: &RgbaImage, faces: &[Face]) -> RgbImage {
    let mut canvas = RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let p = image.get_pixel(x, y).0;
        Rgb([p[0], p[1], p[2]])
    });
    draw_faces(&mut canvas, faces);
    canvas
}

/// Like [`annotate`], but the picture is first shrunk (never enlarged) so its longer side is
/// at most `max_side` pixels; the faces are scaled with it and drawn at the new size, so lines
/// and labels stay crisp in small pictures of large photos.
pub fn annotate_fit(image: &RgbaImage, faces: &[Face], max_side: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let long = w.max(h);
    if max_side == 0 || long <= max_side {
        return annotate(image, faces);
    }
    let f = max_side as f32 / long as f32;
    let (nw, nh) = (
        ((w as f32 * f).round() as u32).max(1),
        ((h as f32 * f).round() as u32).max(1),
    );
    let small = image::imageops::resize(image, nw, nh, image::imageops::FilterType::Triangle);
    let (sx, sy) = (nw as f32 / w as f32, nh as f32 / h as f32);
    let scaled: Vec<Face> = faces
        .iter()
        .map(|face| {
            let [x1, y1, x2, y2] = face.facial_area;
            Face {
                facial_area: [x1 * sx, y1 * sy, x2 * sx, y2 * sy],
                landmarks: crate::face::Landmarks::from_points(
                    face.landmarks.points().map(|[x, y]| [x * sx, y * sy]),
                ),
                ..*face
            }
        })
        .collect();
    annotate(&small, &scaled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::Landmarks;

    fn face() -> Face {
        Face {
            score: 0.99964,
            facial_area: [20.3, 30.0, 60.0, 80.7],
            landmarks: Landmarks::from_points([
                [30.0, 45.0],
                [50.0, 45.0],
                [40.0, 55.0],
                [32.0, 68.0],
                [48.0, 68.0],
            ]),
        }
    }

    #[test]
    fn draws_box_landmarks_and_label() {
        let img = RgbaImage::from_pixel(100, 100, image::Rgba([10, 20, 30, 255]));
        let out = annotate(&img, &[face()]);
        // Box corners (rounded coordinates) in the box colour, inside untouched.
        assert_eq!(*out.get_pixel(20, 30), BOX_COLOR);
        assert_eq!(*out.get_pixel(60, 81), BOX_COLOR);
        assert_eq!(*out.get_pixel(40, 40), Rgb([10, 20, 30]));
        // Each landmark's colour at its point.
        for (p, c) in face().landmarks.points().iter().zip(LANDMARK_COLORS) {
            assert_eq!(*out.get_pixel(p[0] as u32, p[1] as u32), c, "{p:?}");
        }
        // The label sits above the box: black text pixels on the box colour.
        let above = (0..100)
            .flat_map(|x| (0..30).map(move |y| (x, y)))
            .filter(|&(x, y)| *out.get_pixel(x, y) == TEXT_COLOR)
            .count();
        assert!(above > 20, "{above} text pixels");
        // Nothing drawn far from the face.
        assert_eq!(*out.get_pixel(95, 5), Rgb([10, 20, 30]));
    }

    #[test]
    fn label_moves_inside_a_box_at_the_top_and_clips() {
        let mut f = face();
        f.facial_area = [-10.0, 0.0, 120.0, 40.0];
        let img = RgbaImage::from_pixel(100, 100, image::Rgba([0, 0, 0, 255]));
        // Must not panic on boxes and points outside the canvas.
        let out = annotate(&img, &[f]);
        assert!((0..20).any(|y| (0..40).any(|x| *out.get_pixel(x, y) == BOX_COLOR)));
    }

    #[test]
    fn fit_shrinks_the_picture_and_the_faces_with_it() {
        let img = RgbaImage::from_pixel(200, 100, image::Rgba([10, 20, 30, 255]));
        let out = annotate_fit(&img, &[face()], 100);
        assert_eq!(out.dimensions(), (100, 50));
        // The box corner (20, 30) is now at (10, 15).
        assert_eq!(*out.get_pixel(10, 15), BOX_COLOR);
        // Small pictures are left as they are.
        assert_eq!(annotate_fit(&img, &[face()], 400).dimensions(), (200, 100));
    }

    #[test]
    fn font_and_labels() {
        assert_eq!(score_label(0.99964), "0.999");
        assert_eq!(score_label(0.5), "0.500");
        assert_eq!(text_size("0.999", 2), ((5 * 6 - 1) * 2, 14));
        for c in "0123456789.-%# ".chars() {
            assert!(glyph(c).is_some(), "{c}");
        }
        // Glyphs of different digits differ.
        let all: Vec<_> = ('0'..='9').map(|c| glyph(c).unwrap()).collect();
        for i in 0..10 {
            for j in 0..i {
                assert_ne!(all[i], all[j]);
            }
        }
        let mut canvas = RgbImage::new(12, 7);
        draw_text(&mut canvas, 0, 0, "1", 1, Rgb([255, 255, 255]));
        // '1': the stem is the middle column.
        assert!((0..7).all(|y| canvas.get_pixel(2, y).0 == [255; 3]));
    }
}

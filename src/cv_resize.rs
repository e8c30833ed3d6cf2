//! OpenCV's `cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)` on an 8-bit
//! 3-channel image, as retina-face runs it before its network: the same integer arithmetic,
//! so the network sees the same bytes.
//!
//! OpenCV (4.x, x86-64, no IPP for this call) resizes 8-bit images in fixed point:
//! - per output column, `fx = (float)((dx + 0.5) * scale_x - 0.5)`, `sx = floor(fx)`,
//!   `fx -= sx`, clamped to the first / last column with `fx = 0` at the borders; the two
//!   weights are `round((1 - fx) * 2048)` and `round(fx * 2048)` (11 bits);
//! - rows likewise, without the border adjustment of the weights (rows are clamped on access);
//! - a horizontal pass into an int buffer, `S[sx] * a0 + S[sx + cn] * a1` (exact);
//! - a vertical pass in its SIMD form, `((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >> 16)`, plus
//!   2, shifted by 2, saturated to 0..255. Its scalar form, `(S0 * b0 + S1 * b1 + 2^21) >> 22`,
//!   rounds differently by one level now and then; the package's detections at the right
//!   edge of the stand-in's photos (tests/seed_r50.rs) come out only with the SIMD form on
//!   every element of the row, the last few included;
//! - an exact factor of 0.5 is done as INTER_AREA instead: the rounded mean of 2x2 pixels.

/// Interleaved 8-bit pixels of `channels` channels.
pub struct Image<'a> {
    pub data: &'a [u8],
    pub width: usize,
    pub height: usize,
    pub channels: usize,
}

const COEF_BITS: u32 = 11;
const COEF_SCALE: i32 = 1 << COEF_BITS;

/// `cv2.resize(src, (dst_w, dst_h) derived from fx, fy)` with INTER_LINEAR; `inv_scale_x` and
/// `inv_scale_y` are the `fx`, `fy` given to OpenCV (destination pixels per source pixel).
pub fn resize_linear(
    src: &Image<'_>,
    dst_w: usize,
    dst_h: usize,
    inv_scale_x: f64,
    inv_scale_y: f64,
) -> Vec<u8> {
    let cn = src.channels;
    let (scale_x, scale_y) = (1.0 / inv_scale_x, 1.0 / inv_scale_y);
    let (iscale_x, iscale_y) = (scale_x.round(), scale_y.round());
    let area_fast =
        (scale_x - iscale_x).abs() < f64::EPSILON && (scale_y - iscale_y).abs() < f64::EPSILON;
    if area_fast && iscale_x == 2.0 && iscale_y == 2.0 {
        return resize_area_2x(src, dst_w, dst_h);
    }
    // Column taps and weights, per output element (the channels of a pixel share them).
    let mut xofs = vec![0usize; dst_w];
    let mut alpha = vec![[0i32; 2]; dst_w];
    for dx in 0..dst_w {
        let f = ((dx as f64 + 0.5) * scale_x - 0.5) as f32;
        let mut sx = f.floor() as i64;
        let mut fx = f - sx as f32;
        if sx < 0 {
            fx = 0.0;
            sx = 0;
        }
        if sx >= src.width as i64 - 1 {
            fx = 0.0;
            sx = src.width as i64 - 1;
        }
        xofs[dx] = sx as usize;
        alpha[dx] = [coef(1.0 - fx), coef(fx)];
    }
    let width = dst_w * cn;
    let row = |y: usize, out: &mut [i32]| {
        let s = &src.data[y * src.width * cn..(y + 1) * src.width * cn];
        for dx in 0..dst_w {
            let (sx, [a0, a1]) = (xofs[dx], alpha[dx]);
            for k in 0..cn {
                let p0 = s[sx * cn + k] as i32;
                // At the last column the second weight is 0 and OpenCV reads nothing past it.
                let p1 = if sx + 1 < src.width {
                    s[(sx + 1) * cn + k] as i32
                } else {
                    0
                };
                out[dx * cn + k] = p0 * a0 + p1 * a1;
            }
        }
    };
    let mut out = vec![0u8; width * dst_h];
    // The horizontal pass of the two source rows an output row reads, kept while the next
    // output rows read the same ones (as OpenCV's ring of row buffers does).
    let (mut r0, mut r1) = (vec![0i32; width], vec![0i32; width]);
    let mut have: [Option<usize>; 2] = [None, None];
    for dy in 0..dst_h {
        let f = ((dy as f64 + 0.5) * scale_y - 0.5) as f32;
        let sy = f.floor() as i64;
        let fy = f - sy as f32;
        let (b0, b1) = (coef(1.0 - fy), coef(fy));
        let clamp = |y: i64| y.clamp(0, src.height as i64 - 1) as usize;
        let (y0, y1) = (clamp(sy), clamp(sy + 1));
        if have[0] != Some(y0) {
            if have[1] == Some(y0) {
                std::mem::swap(&mut r0, &mut r1);
                have = [Some(y0), None];
            } else {
                row(y0, &mut r0);
                have[0] = Some(y0);
            }
        }
        if have[1] != Some(y1) {
            row(y1, &mut r1);
            have[1] = Some(y1);
        }
        let o = &mut out[dy * width..(dy + 1) * width];
        for x in 0..width {
            o[x] = vertical(r0[x], r1[x], b0, b1);
        }
    }
    out
}

/// OpenCV's SIMD vertical step: 16-bit high products of the row values without their low 4
/// bits, then a rounding shift by 2.
fn vertical(s0: i32, s1: i32, b0: i32, b1: i32) -> u8 {
    let hi = |s: i32, b: i32| (((s >> 4) as i16 as i32) * b) >> 16;
    ((hi(s0, b0) + hi(s1, b1) + 2) >> 2).clamp(0, 255) as u8
}

/// `saturate_cast<short>(w * 2048)`: round half to even, as `cvRound`.
fn coef(w: f32) -> i32 {
    (w * COEF_SCALE as f32).round_ties_even() as i32
}

/// OpenCV's fast INTER_AREA for a factor of exactly 1/2: `(a + b + c + d + 2) >> 2`; an
/// output column or row past the last whole 2x2 block averages the pixels that exist.
fn resize_area_2x(src: &Image<'_>, dst_w: usize, dst_h: usize) -> Vec<u8> {
    let cn = src.channels;
    let mut out = vec![0u8; dst_w * dst_h * cn];
    let px = |x: usize, y: usize, k: usize| src.data[(y * src.width + x) * cn + k] as u32;
    for dy in 0..dst_h {
        for dx in 0..dst_w {
            for k in 0..cn {
                let (x0, y0) = (2 * dx, 2 * dy);
                let v = if x0 + 1 < src.width && y0 + 1 < src.height {
                    (px(x0, y0, k)
                        + px(x0 + 1, y0, k)
                        + px(x0, y0 + 1, k)
                        + px(x0 + 1, y0 + 1, k)
                        + 2)
                        >> 2
                } else {
                    let mut sum = 0f32;
                    let mut n = 0f32;
                    for y in y0..(y0 + 2).min(src.height) {
                        for x in x0..(x0 + 2).min(src.width) {
                            sum += px(x, y, k) as f32;
                            n += 1.0;
                        }
                    }
                    (sum / n.max(1.0)).round_ties_even() as u32
                };
                out[(dy * dst_w + dx) * cn + k] = v.min(255) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: usize, h: usize, cn: usize) -> Vec<u8> {
        (0..w * h * cn)
            .map(|i| ((i * 37 + i / 7 * 11) % 256) as u8)
            .collect()
    }

    #[test]
    fn identity_weights_copy_pixels() {
        // Upscaling by an integer keeps every source pixel at the right place of its block.
        let data = image(5, 4, 3);
        let src = Image {
            data: &data,
            width: 5,
            height: 4,
            channels: 3,
        };
        let out = resize_linear(&src, 5, 4, 1.0, 1.0);
        assert_eq!(out, data);
    }

    #[test]
    fn weights_sum_to_one_so_flat_images_stay_flat() {
        let data = vec![200u8; 7 * 5 * 3];
        let src = Image {
            data: &data,
            width: 7,
            height: 5,
            channels: 3,
        };
        for s in [0.37f64, 0.5, 1.9, 2.73066666, 3.0] {
            let (w, h) = ((7.0 * s).round() as usize, (5.0 * s).round() as usize);
            let out = resize_linear(&src, w.max(1), h.max(1), s, s);
            assert!(out.iter().all(|v| *v == 200), "factor {s}");
        }
    }

    #[test]
    fn vertical_step_is_within_one_level_of_exact() {
        for i in 0..20000i64 {
            let (s0, s1) = ((i * 7919) % (255 * 2048), (i * 104729) % (255 * 2048));
            let b0 = (i * 31) % 2049;
            let exact = (s0 * b0 + s1 * (2048 - b0)) as f64 / (2048.0 * 2048.0);
            let got = vertical(s0 as i32, s1 as i32, b0 as i32, 2048 - b0 as i32) as f64;
            assert!(
                (got - exact).abs() <= 1.0,
                "{s0} {s1} {b0}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn half_is_a_rounded_2x2_mean() {
        let data = [10u8, 11, 12, 13];
        let src = Image {
            data: &data,
            width: 2,
            height: 2,
            channels: 1,
        };
        assert_eq!(resize_linear(&src, 1, 1, 0.5, 0.5), [12]);
    }
}

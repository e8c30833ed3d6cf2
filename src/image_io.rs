//! Image files to 8-bit RGBA pixels, exactly as OpenCV's `imread(path, IMREAD_COLOR)` decodes them.
//!
//! The reference implementation of the detector reads images with OpenCV, so the pixels here must be
//! the same bytes, only in RGBA order instead of BGR (the GPU preprocess shader swaps the channels):
//!
//! - JPEG (baseline, progressive or arithmetic-coded) goes through libjpeg-turbo's decoder (the copy
//!   vendored by `mozjpeg-sys`, compiled from C with its default settings: "islow" integer IDCT, fancy
//!   chroma upsampling, no SIMD), which is what OpenCV links. The result is bit-identical to OpenCV's;
//!   Rust decoders such as zune-jpeg differ by up to 4 grey levels on 0.7-21 % of the bytes. Grey JPEGs
//!   are copied to R, G and B; CMYK/YCCK JPEGs are converted with OpenCV's formula.
//! - PNG goes through the `image` crate: 8-bit grey is copied to R, G and B, RGB(A) and palette
//!   images keep their colour values. Alpha is never composited; the file's alpha stays in the A
//!   channel (the detector ignores it) and formats without alpha get A = 255. 16-bit PNGs keep the
//!   high byte of each sample, as `cv2.imread` does (libpng's `png_set_strip_16`).
//! - EXIF orientation is not applied and embedded ICC profiles / gamma chunks are ignored, as in OpenCV.
//!
//! Every failure is a typed [`Error`] naming the file; no input makes these functions panic. A JPEG
//! whose data stops before its end-of-image marker is an error (OpenCV would return the image with
//! the missing part filled grey).

use std::io::Cursor;
use std::path::Path;

use image::RgbaImage;

use crate::error::{Error, Result};

/// Largest image accepted, in pixels (OpenCV's default `CV_IO_MAX_IMAGE_PIXELS`, 2^30).
/// A 2^30-pixel RGBA image needs 4 GiB.
pub const MAX_PIXELS: u64 = 1 << 30;

/// Reads and decodes an image file (JPEG or PNG, recognised by its content, not its name).
pub fn load_path(path: &Path) -> Result<RgbaImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::ImageRead {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    load_bytes(&bytes, Some(path))
}

/// Decodes an image held in memory (JPEG or PNG, recognised by its first bytes). `path` is only used
/// in error messages.
pub fn load_bytes(bytes: &[u8], path: Option<&Path>) -> Result<RgbaImage> {
    if bytes.is_empty() {
        return Err(decode_error(path, "the file is empty (0 bytes)"));
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        jpeg::decode(bytes, path)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(bytes, path)
    } else {
        Err(decode_error(path, unknown_format_reason(bytes)))
    }
}

/// Wraps pixels that the caller already has: `channels` is 1 (grey, copied to R, G and B), 3 (RGB) or
/// 4 (RGBA, kept as is), rows top to bottom, no padding, so `data.len()` must be
/// `width * height * channels`.
pub fn from_raw(width: u32, height: u32, channels: u32, data: Vec<u8>) -> Result<RgbaImage> {
    if !matches!(channels, 1 | 3 | 4) {
        return Err(Error::UnsupportedPixelFormat {
            path: None,
            format: format!("{channels}-channel 8-bit"),
        });
    }
    let expected = u128::from(width) * u128::from(height) * u128::from(channels);
    if expected != data.len() as u128 {
        return Err(Error::PixelBufferSize {
            width,
            height,
            channels,
            expected: usize::try_from(expected).unwrap_or(usize::MAX),
            found: data.len(),
        });
    }
    let rgba = match channels {
        4 => data,
        3 => expand(&data, 3, |p, out| {
            out[..3].copy_from_slice(p);
            out[3] = 255;
        }),
        _ => expand(&data, 1, |p, out| {
            out.copy_from_slice(&[p[0], p[0], p[0], 255])
        }),
    };
    RgbaImage::from_raw(width, height, rgba).ok_or_else(|| Error::PixelBufferSize {
        width,
        height,
        channels,
        expected: usize::try_from(expected).unwrap_or(usize::MAX),
        found: 0,
    })
}

/// Converts `n`-byte pixels to 4-byte ones with `f(source_pixel, rgba_out)`.
fn expand(data: &[u8], n: usize, f: impl Fn(&[u8], &mut [u8])) -> Vec<u8> {
    let mut out = vec![0u8; data.len() / n * 4];
    for (p, o) in data.chunks_exact(n).zip(out.chunks_exact_mut(4)) {
        f(p, o);
    }
    out
}

fn decode_error(path: Option<&Path>, reason: impl Into<String>) -> Error {
    Error::ImageDecode {
        path: path.map(Path::to_path_buf),
        reason: reason.into(),
    }
}

fn unsupported(path: Option<&Path>, format: impl Into<String>) -> Error {
    Error::UnsupportedPixelFormat {
        path: path.map(Path::to_path_buf),
        format: format.into(),
    }
}

fn unknown_format_reason(bytes: &[u8]) -> String {
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    match image::guess_format(bytes) {
        Ok(format) => format!(
            "it is a {format:?} file; only JPEG and PNG are supported, convert it to one of those first"
        ),
        Err(_) => format!(
            "not a JPEG or PNG file (it starts with bytes {}); only JPEG and PNG are supported",
            head.join(" ")
        ),
    }
}

/// Refuses images too large to decode safely (see [`MAX_PIXELS`]).
fn check_size(width: u32, height: u32, path: Option<&Path>) -> Result<()> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PIXELS {
        return Err(decode_error(
            path,
            format!(
                "the image is {width}x{height} = {pixels} pixels, more than the {MAX_PIXELS} this \
                 decoder accepts; scale it down first"
            ),
        ));
    }
    Ok(())
}

/// The most bytes deflate can expand one compressed byte to: a 258-byte match takes at least
/// two bits (a 1-bit length code and a 1-bit distance code), 258 * 8 / 2.
const DEFLATE_MAX_RATIO: u64 = 1032;

/// Refuses a PNG whose header declares more pixel data than its IDAT chunks can inflate to,
/// before the decoder allocates the image: a damaged or hostile IHDR in a small file would
/// otherwise cost up to 4 GiB (the [`MAX_PIXELS`] limit) before the missing data is noticed.
/// Such a file can never decode, so nothing valid is refused. Files whose header cannot be
/// read are left to the decoder, which names what is wrong with them.
fn check_png_data(bytes: &[u8], path: Option<&Path>) -> Result<()> {
    let be32 = |at: usize| -> Option<u64> {
        Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as u64)
    };
    if bytes.get(12..16) != Some(b"IHDR") {
        return Ok(());
    }
    let (Some(width), Some(height), Some(&depth), Some(&color)) =
        (be32(16), be32(20), bytes.get(24), bytes.get(25))
    else {
        return Ok(());
    };
    check_size(width as u32, height as u32, path)?;
    let channels = match color {
        0 | 3 => 1,
        2 => 3,
        4 => 2,
        6 => 4,
        _ => return Ok(()),
    };
    let mut compressed = 0u64;
    let mut at = 8;
    while let (Some(len), Some(kind)) = (be32(at), bytes.get(at + 4..at + 8)) {
        let available = (bytes.len() - (at + 8).min(bytes.len())) as u64;
        if kind == b"IDAT" {
            compressed += len.min(available);
        }
        if kind == b"IEND" || len >= available {
            break;
        }
        at += 12 + len as usize;
    }
    let pixel_bytes = width * height * u64::from(depth) * channels / 8;
    if pixel_bytes > compressed * DEFLATE_MAX_RATIO {
        return Err(decode_error(
            path,
            format!(
                "the PNG header declares a {width}x{height} image ({pixel_bytes} bytes of pixel \
                 data), but its {compressed} bytes of compressed data can expand to at most {}: \
                 the header is corrupt or the file truncated",
                compressed * DEFLATE_MAX_RATIO
            ),
        ));
    }
    Ok(())
}

fn decode_png(bytes: &[u8], path: Option<&Path>) -> Result<RgbaImage> {
    use image::codecs::png::PngDecoder;
    use image::{ColorType, DynamicImage, ImageDecoder};

    check_png_data(bytes, path)?;

    let png_error = |e: image::ImageError| match e {
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            decode_error(
                path,
                "the PNG data ends before its end chunk: the file is truncated \
                 (an incomplete download or copy?)",
            )
        }
        e => decode_error(path, format!("invalid PNG data: {e}")),
    };
    let mut limits = image::Limits::no_limits();
    // Room for the largest accepted image as 8-bit RGBA plus the decoder's own buffers.
    limits.max_alloc = Some(5 * MAX_PIXELS);
    let decoder = PngDecoder::with_limits(Cursor::new(bytes), limits).map_err(png_error)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, path)?;
    match decoder.color_type() {
        ColorType::L8 | ColorType::La8 | ColorType::Rgb8 | ColorType::Rgba8 => {}
        ColorType::L16 | ColorType::La16 | ColorType::Rgb16 | ColorType::Rgba16 => {}
        other => return Err(unsupported(path, format!("{other:?}"))),
    }
    let image = DynamicImage::from_decoder(decoder).map_err(png_error)?;
    // 16 bits: the high byte of every sample (not image's rounding `v / 257`), then as 8 bits.
    let msb = |v: &[u16]| v.iter().map(|x| (x >> 8) as u8).collect::<Vec<u8>>();
    let image = match image {
        DynamicImage::ImageLuma16(i) => {
            image::GrayImage::from_raw(width, height, msb(i.as_raw())).map(DynamicImage::ImageLuma8)
        }
        DynamicImage::ImageLumaA16(i) => {
            image::GrayAlphaImage::from_raw(width, height, msb(i.as_raw()))
                .map(DynamicImage::ImageLumaA8)
        }
        DynamicImage::ImageRgb16(i) => {
            image::RgbImage::from_raw(width, height, msb(i.as_raw())).map(DynamicImage::ImageRgb8)
        }
        DynamicImage::ImageRgba16(i) => {
            image::RgbaImage::from_raw(width, height, msb(i.as_raw())).map(DynamicImage::ImageRgba8)
        }
        other => Some(other),
    }
    .ok_or_else(|| decode_error(path, "16-bit PNG with an inconsistent size"))?;
    // L8 -> (l, l, l, 255), La8 -> (l, l, l, a), Rgb8 -> (r, g, b, 255), Rgba8 unchanged: plain copies,
    // no luma weighting, gamma or alpha compositing.
    Ok(image.into_rgba8())
}

/// JPEG through libjpeg-turbo (`mozjpeg-sys`), with an error manager that turns libjpeg's fatal errors
/// and its "premature end of JPEG file" warning into Rust unwinds caught here.
mod jpeg {
    use std::any::Any;
    use std::cell::Cell;
    use std::os::raw::c_int;
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::path::Path;

    use image::RgbaImage;
    use mozjpeg::{ColorSpace, Decompress};
    use mozjpeg_sys::{
        jpeg_common_struct, jpeg_error_mgr, JERR_BAD_PRECISION, JERR_FILE_READ, JWRN_JPEG_EOF,
    };

    use super::{check_size, decode_error, unsupported};
    use crate::error::{Error, Result};

    /// What libjpeg reported when it gave up; carried through the unwind.
    struct Fatal {
        code: c_int,
        message: String,
        /// First integer parameter of the message (the precision for `JERR_BAD_PRECISION`).
        param: c_int,
    }

    /// Formats libjpeg's current message with its own `format_message`.
    ///
    /// # Safety
    /// `cinfo.err` must point to a live error manager set up by `jpeg_std_error`.
    unsafe fn current_message(cinfo: &mut jpeg_common_struct) -> (c_int, String, c_int) {
        let err = unsafe { &mut *cinfo.err };
        let code = err.msg_code;
        let param = unsafe { (*err.msg_parm.i())[0] };
        let message = match err.format_message {
            Some(format) => {
                // The binding declares the buffer as `&[u8; 80]`, but libjpeg writes up to
                // JMSG_LENGTH_MAX (200) bytes into it: pass a big enough, writable buffer.
                let format: unsafe extern "C-unwind" fn(&mut jpeg_common_struct, *mut u8) =
                    unsafe { std::mem::transmute(format) };
                let mut buffer = [0u8; 256];
                unsafe { format(cinfo, buffer.as_mut_ptr()) };
                let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
                String::from_utf8_lossy(&buffer[..end]).into_owned()
            }
            None => format!("libjpeg error code {code}"),
        };
        (code, message, param)
    }

    unsafe extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
        let (code, message, param) = unsafe { current_message(cinfo) };
        // resume_unwind, unlike panic!, does not run the panic hook (nothing is printed).
        resume_unwind(Box::new(Fatal {
            code,
            message,
            param,
        }));
    }

    unsafe extern "C-unwind" fn emit_message(cinfo: &mut jpeg_common_struct, level: c_int) {
        if level >= 0 {
            return; // trace messages
        }
        // SAFETY: libjpeg calls this with `cinfo.err` pointing at the error manager it belongs to.
        if unsafe { (*cinfo.err).msg_code } == JWRN_JPEG_EOF {
            // The source ran dry before the end-of-image marker; libjpeg would go on with a fake EOI
            // and grey pixels. Stop instead.
            unsafe { error_exit(cinfo) };
        }
        // Other warnings (corrupt entropy data, extraneous bytes, ...) are tolerated, as OpenCV does.
        unsafe { (*cinfo.err).num_warnings += 1 };
    }

    fn error_manager() -> jpeg_error_mgr {
        // SAFETY: jpeg_error_mgr is a plain C struct (function pointers as Options, integers, raw
        // pointers) for which all-zero is valid; jpeg_std_error then fills in every field.
        let mut err: jpeg_error_mgr = unsafe { std::mem::zeroed() };
        unsafe { mozjpeg_sys::jpeg_std_error(&mut err) };
        err.error_exit = Some(error_exit);
        err.emit_message = Some(emit_message);
        err
    }

    pub(super) fn decode(bytes: &[u8], path: Option<&Path>) -> Result<RgbaImage> {
        // Set to true once the headers are read, to tell a cut-off header from cut-off pixel data.
        let header_read = Cell::new(false);
        match catch_unwind(AssertUnwindSafe(|| {
            decode_unguarded(bytes, path, &header_read)
        })) {
            Ok(result) => result,
            Err(payload) => Err(fatal_to_error(payload, path, header_read.get())),
        }
    }

    fn fatal_to_error(
        payload: Box<dyn Any + Send>,
        path: Option<&Path>,
        header_read: bool,
    ) -> Error {
        let fatal = match payload.downcast::<Fatal>() {
            Ok(fatal) => *fatal,
            Err(payload) => {
                let what = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                return decode_error(path, format!("the JPEG decoder failed: {what}"));
            }
        };
        if fatal.code == JWRN_JPEG_EOF || fatal.code == JERR_FILE_READ {
            // From memory, a read error can only be running out of data.
            decode_error(
                path,
                if header_read {
                    "the JPEG data ends before its end-of-image marker: the file is truncated \
                     (an incomplete download or copy?)"
                } else {
                    "the data ends before a complete JPEG header was found: the file is \
                     truncated or not a JPEG"
                },
            )
        } else if fatal.code == JERR_BAD_PRECISION {
            unsupported(path, format!("{}-bit JPEG", fatal.param))
        } else {
            decode_error(path, format!("invalid JPEG data: {}", fatal.message))
        }
    }

    /// Refuses a header that declares more 8x8 blocks than the file has bits, before the
    /// image is allocated. libjpeg decodes the blocks that the data runs out before as flat
    /// grey, so a damaged size field in a 2 KB file would otherwise allocate and "decode" up
    /// to 4 GiB. A Huffman-coded block takes at least one bit (its DC code), so no valid
    /// Huffman file is refused; an arithmetic-coded one would have to be a flat image that
    /// compresses below a bit per block, which no camera or editor writes.
    fn check_blocks(
        width: u32,
        height: u32,
        sampling: &[(u32, u32)],
        file_len: usize,
        path: Option<&Path>,
    ) -> Result<()> {
        let max_h = sampling.iter().map(|s| s.0).max().unwrap_or(1).max(1);
        let max_v = sampling.iter().map(|s| s.1).max().unwrap_or(1).max(1);
        // libjpeg's width_in_blocks / height_in_blocks (jdinput.c).
        let blocks: u64 = sampling
            .iter()
            .map(|&(h, v)| {
                let bw = (u64::from(width) * u64::from(h)).div_ceil(u64::from(max_h) * 8);
                let bh = (u64::from(height) * u64::from(v)).div_ceil(u64::from(max_v) * 8);
                bw * bh
            })
            .sum();
        let bits = file_len as u64 * 8;
        if blocks > bits {
            return Err(decode_error(
                path,
                format!(
                    "the JPEG header declares a {width}x{height} image ({blocks} blocks of 8x8 \
                     pixels), but the file's {file_len} bytes cannot hold that many (each block \
                     takes at least one bit): the header is corrupt or the file truncated"
                ),
            ));
        }
        Ok(())
    }

    fn decode_unguarded(
        bytes: &[u8],
        path: Option<&Path>,
        header_read: &Cell<bool>,
    ) -> Result<RgbaImage> {
        let io_error = |e: std::io::Error| decode_error(path, format!("invalid JPEG data: {e}"));
        let decompress = Decompress::with_err(error_manager())
            .from_mem(bytes)
            .map_err(io_error)?;
        header_read.set(true);
        let (width, height) = decompress.size();
        let (width, height) = (width as u32, height as u32);
        check_size(width, height, path)?;
        let sampling: Vec<(u32, u32)> = decompress
            .components()
            .iter()
            .map(|c| (c.h_samp_factor as u32, c.v_samp_factor as u32))
            .collect();
        check_blocks(width, height, &sampling, bytes.len(), path)?;
        let rgba = if decompress.components().len() == 4 {
            // CMYK or YCCK (libjpeg converts YCCK to CMYK). libjpeg has no CMYK -> RGB conversion;
            // OpenCV applies its own formula (icvCvt_CMYK2BGR_8u_C4C3R), reproduced here, which
            // treats the values as inverted CMYK (Adobe style).
            let mut started = decompress
                .to_colorspace(ColorSpace::JCS_CMYK)
                .map_err(io_error)?;
            let mut cmyk: Vec<u8> = started.read_scanlines().map_err(io_error)?;
            started.finish().map_err(io_error)?;
            for px in cmyk.chunks_exact_mut(4) {
                let k = i32::from(px[3]);
                for v in &mut px[..3] {
                    *v = (k - (((255 - i32::from(*v)) * k) >> 8)) as u8;
                }
                px[3] = 255;
            }
            cmyk
        } else {
            // Grey, YCbCr or RGB: libjpeg converts to RGBA with A = 255 (JCS_EXT_RGBA); grey is
            // replicated to the three colour channels.
            let mut started = decompress.rgba().map_err(io_error)?;
            let rgba: Vec<u8> = started.read_scanlines().map_err(io_error)?;
            // Reads up to the EOI marker, so a file cut after the last scan is also caught.
            started.finish().map_err(io_error)?;
            rgba
        };
        let len = rgba.len();
        RgbaImage::from_raw(width, height, rgba).ok_or_else(|| {
            decode_error(
                path,
                format!("the JPEG decoder returned {len} bytes for a {width}x{height} image"),
            )
        })
    }
}

//! Image decoding: every test image must decode to exactly the pixels OpenCV's
//! `imread(path, IMREAD_COLOR)` gives (SHA-256 of the BGR bytes in the golden JSON), and every kind of
//! bad input must come back as a typed error naming the file, never a panic.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use image::{ExtendedColorType, ImageEncoder, RgbaImage};
use retinaface::image_io::{from_raw, load_bytes, load_path};
use retinaface::Error;
use sha2::{Digest, Sha256};

/// `RETINAFACE_TESTDATA`, else `../shared/testdata` beside the checkout.
fn testdata() -> PathBuf {
    std::env::var_os("RETINAFACE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata"))
        })
}

fn image_path(name: &str) -> PathBuf {
    testdata().join("images").join(name)
}

fn read_image_bytes(name: &str) -> Vec<u8> {
    let p = image_path(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("test image {}: {e}", p.display()))
}

/// SHA-256 of the `H*W*3` BGR bytes, the layout of `decoded_pixels.sha256` in the golden JSON.
fn bgr_sha256(img: &RgbaImage) -> String {
    let mut bgr = Vec::with_capacity(img.width() as usize * img.height() as usize * 3);
    for p in img.pixels() {
        bgr.extend_from_slice(&[p[2], p[1], p[0]]);
    }
    Sha256::digest(&bgr)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh, empty directory under the system temp dir for this test.
fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "retinaface-image-decode-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_temp(tag: &str, name: &str, bytes: &[u8]) -> PathBuf {
    let p = temp_dir(tag).join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn expect_decode_error(result: Result<RgbaImage, Error>, path: &Path, needle: &str) -> String {
    match result {
        Err(e @ Error::ImageDecode { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "message does not name the file: {msg}"
            );
            assert!(msg.contains(needle), "message lacks {needle:?}: {msg}");
            msg
        }
        Err(other) => panic!("expected ImageDecode for {}, got {other:?}", path.display()),
        Ok(img) => panic!(
            "expected an error for {}, got a {}x{} image",
            path.display(),
            img.width(),
            img.height()
        ),
    }
}

#[test]
fn every_test_image_matches_the_opencv_pixel_hash() {
    let dir = testdata().join("images");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "test images not found at {} ({e}); set RETINAFACE_TESTDATA",
                dir.display()
            )
        })
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jpg") || n.ends_with(".png"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 12,
        "expected the 12 test images, found {names:?}"
    );

    let mut failures = Vec::new();
    for name in &names {
        let stem = name.rsplit_once('.').unwrap().0;
        let golden_path = testdata().join("golden").join(format!("{stem}.json"));
        let golden: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&golden_path).unwrap()).unwrap();
        let expected = golden["decoded_pixels"]["sha256"].as_str().unwrap();
        let (w, h) = (
            golden["image_size"]["width"].as_u64().unwrap() as u32,
            golden["image_size"]["height"].as_u64().unwrap() as u32,
        );

        let img = load_path(&image_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((img.width(), img.height()), (w, h), "{name}: size");
        let got = bgr_sha256(&img);
        if got != expected {
            failures.push(format!("{name}: sha256 {got}, golden {expected}"));
        }
        // Formats without alpha get A = 255; the two RGBA test PNGs are fully opaque too.
        assert!(img.pixels().all(|p| p[3] == 255), "{name}: alpha");
    }
    assert!(
        failures.is_empty(),
        "decoded pixels differ from OpenCV's:\n{}",
        failures.join("\n")
    );
}

#[test]
fn load_bytes_equals_load_path() {
    for name in ["small_group.jpg", "no_face_dogs.jpg", "tilted_head.png"] {
        let from_path = load_path(&image_path(name)).unwrap();
        let from_bytes = load_bytes(&read_image_bytes(name), None).unwrap();
        assert!(from_path == from_bytes, "{name}");
    }
}

#[test]
fn grey_png_is_copied_to_all_three_channels() {
    let img = load_path(&image_path("grayscale.png")).unwrap();
    assert!(img
        .pixels()
        .all(|p| p[0] == p[1] && p[1] == p[2] && p[3] == 255));
    assert!(img.pixels().any(|p| p[0] != img.get_pixel(0, 0)[0]));
}

#[test]
fn grey_and_alpha_pngs_keep_their_values_without_compositing() {
    // 2x1 RGBA with a transparent and a half-transparent pixel: colour kept, alpha carried along.
    let rgba = [10u8, 20, 30, 0, 200, 100, 50, 128];
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgba, 2, 1, ExtendedColorType::Rgba8)
        .unwrap();
    let img = load_bytes(&png, None).unwrap();
    assert_eq!(img.as_raw().as_slice(), &rgba);

    // Grey + alpha: grey replicated, alpha kept.
    let la = [7u8, 0, 250, 99];
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&la, 2, 1, ExtendedColorType::La8)
        .unwrap();
    let img = load_bytes(&png, None).unwrap();
    assert_eq!(img.as_raw().as_slice(), &[7, 7, 7, 0, 250, 250, 250, 99]);
}

#[test]
fn grey_jpeg_is_copied_to_all_three_channels() {
    let (w, h) = (40u32, 24u32);
    let grey: Vec<u8> = (0..w * h).map(|i| ((i * 7) % 256) as u8).collect();
    let mut jpg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 90)
        .encode(&grey, w, h, ExtendedColorType::L8)
        .unwrap();
    let img = load_bytes(&jpg, None).unwrap();
    assert_eq!((img.width(), img.height()), (w, h));
    assert!(img
        .pixels()
        .all(|p| p[0] == p[1] && p[1] == p[2] && p[3] == 255));
}

#[test]
fn cmyk_jpeg_uses_opencvs_conversion() {
    // Adobe-style (inverted) CMYK, uniform C=255 M=128 Y=0 K=255. OpenCV: v' = k - ((255 - v) * k >> 8)
    // gives R = 255, G = 129, B = 1 (checked against cv2.imread on the same kind of file).
    let (w, h) = (16usize, 16usize);
    let cmyk: Vec<u8> = [255u8, 128, 0, 255].repeat(w * h);
    let jpg = std::panic::catch_unwind(|| {
        let mut comp = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_CMYK);
        comp.set_size(w, h);
        comp.set_quality(100.0);
        let mut started = comp.start_compress(Vec::new()).unwrap();
        started.write_scanlines(&cmyk).unwrap();
        started.finish().unwrap()
    })
    .expect("mozjpeg CMYK encode");
    let img = load_bytes(&jpg, None).unwrap();
    for p in img.pixels() {
        let got = [p[0], p[1], p[2], p[3]];
        let want = [255u8, 129, 1, 255];
        assert!(
            got.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= 2),
            "CMYK pixel {got:?}, expected about {want:?}"
        );
    }
}

#[test]
fn missing_file_is_an_image_read_error() {
    let p = temp_dir("missing").join("does-not-exist.jpg");
    match load_path(&p) {
        Err(e @ Error::ImageRead { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&p.display().to_string()), "{msg}");
            assert!(msg.to_lowercase().contains("no such file"), "{msg}");
        }
        other => panic!("expected ImageRead, got {other:?}"),
    }
}

#[test]
fn directory_is_an_image_read_error() {
    let dir = temp_dir("directory");
    match load_path(&dir) {
        Err(e @ Error::ImageRead { .. }) => {
            assert!(e.to_string().contains(&dir.display().to_string()), "{e}")
        }
        other => panic!("expected ImageRead, got {other:?}"),
    }
}

#[test]
fn empty_file_is_a_decode_error() {
    let p = write_temp("empty", "empty.jpg", &[]);
    expect_decode_error(load_path(&p), &p, "empty (0 bytes)");
}

#[test]
fn not_an_image_is_a_decode_error() {
    let p = write_temp("text", "notes.jpg", b"this is a text file, not a picture\n");
    expect_decode_error(load_path(&p), &p, "not a JPEG or PNG");

    // A known but unsupported format is named.
    let p = write_temp("gif", "anim.png", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;");
    expect_decode_error(load_path(&p), &p, "Gif");

    // Starts like a JPEG, then a frame header with an impossible length: libjpeg's own message.
    let mut junk = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x01];
    junk.extend(std::iter::repeat_n(0x55, 500));
    let p = write_temp("junk", "junk.jpg", &junk);
    let msg = expect_decode_error(load_path(&p), &p, "invalid JPEG data");
    assert!(msg.contains("marker length"), "{msg}");

    // Starts like a JPEG, then garbage until the end: no header is ever found.
    let mut junk = vec![0xFF, 0xD8, 0xFF, 0x00];
    junk.extend(std::iter::repeat_n(0x55, 500));
    let p = write_temp("junk", "junk.jpg", &junk);
    expect_decode_error(load_path(&p), &p, "complete JPEG header");
}

#[test]
fn truncated_jpegs_are_errors_not_grey_images() {
    // Baseline and progressive, cut in half, just before the EOI marker, and inside the headers.
    for name in ["small_group.jpg", "no_face_dogs.jpg"] {
        let bytes = read_image_bytes(name);
        assert_eq!(&bytes[bytes.len() - 2..], &[0xFF, 0xD9]);
        for cut in [bytes.len() / 2, bytes.len() - 2, bytes.len() - 1] {
            let p = write_temp("truncated", &format!("cut{cut}-{name}"), &bytes[..cut]);
            expect_decode_error(load_path(&p), &p, "ends before its end-of-image marker");
        }
        for cut in [200, 20] {
            let p = write_temp("truncated", &format!("cut{cut}-{name}"), &bytes[..cut]);
            expect_decode_error(load_path(&p), &p, "before a complete JPEG header");
        }
    }
}

#[test]
fn truncated_jpegs_at_many_cut_points_are_all_errors() {
    for name in ["small_group.jpg", "crowd_tiny_faces.jpg"] {
        let bytes = read_image_bytes(name);
        let step = bytes.len() / 97;
        for cut in (3..bytes.len()).step_by(step) {
            match load_bytes(&bytes[..cut], None) {
                Err(e @ Error::ImageDecode { .. }) => {
                    assert!(
                        e.to_string().contains("truncated"),
                        "{name} cut at {cut}: {e}"
                    )
                }
                other => panic!(
                    "{name} cut at {cut} of {}: expected a truncation error, got {:?}",
                    bytes.len(),
                    other.map(|i| i.dimensions())
                ),
            }
        }
    }
}

#[test]
fn truncated_png_is_a_decode_error() {
    let bytes = read_image_bytes("portrait_astronaut.png");
    for cut in [bytes.len() / 2, bytes.len() - 12, 40] {
        let p = write_temp("truncated-png", &format!("cut{cut}.png"), &bytes[..cut]);
        expect_decode_error(load_path(&p), &p, "truncated");
    }
    // A header with an impossible colour type (5).
    let mut bad = bytes.clone();
    assert_eq!(&bad[12..16], b"IHDR");
    bad[25] = 5;
    let p = write_temp("bad-png", "colour-type.png", &bad);
    expect_decode_error(load_path(&p), &p, "invalid PNG data");
}

#[test]
fn sixteen_bit_pngs_keep_the_high_byte_as_opencv_does() {
    // Samples 0x12FF: OpenCV (libpng's strip_16) gives 0x12; rounding would give 0x13.
    for (color, channels) in [
        (ExtendedColorType::Rgb16, 3usize),
        (ExtendedColorType::L16, 1),
        (ExtendedColorType::Rgba16, 4),
        (ExtendedColorType::La16, 2),
    ] {
        let (w, h) = (5u32, 3u32);
        // PNG stores 16-bit samples big-endian; the encoder takes native-endian u16 bytes.
        let data: Vec<u8> = (0..w as usize * h as usize * channels)
            .flat_map(|_| 0x12FFu16.to_ne_bytes())
            .collect();
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&data, w, h, color)
            .unwrap();
        let p = write_temp("png16", "deep.png", &png);
        let img = load_path(&p).unwrap_or_else(|e| panic!("{color:?}: {e}"));
        assert_eq!(img.dimensions(), (w, h));
        let alpha = if channels == 2 || channels == 4 {
            0x12
        } else {
            255
        };
        assert!(
            img.pixels().all(|p| p.0 == [0x12, 0x12, 0x12, alpha]),
            "{color:?}: {:?}",
            img.get_pixel(0, 0)
        );
    }
}

#[test]
fn absurd_jpeg_dimensions_are_refused_before_decoding() {
    // small_group.jpg with its SOF header patched to claim 65000x65000 pixels.
    let mut bytes = read_image_bytes("small_group.jpg");
    let sof = bytes
        .windows(2)
        .position(|w| w[0] == 0xFF && (w[1] == 0xC0 || w[1] == 0xC2))
        .expect("SOF marker");
    // FF Cx, length (2), precision (1), height (2), width (2)
    bytes[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]);
    match load_bytes(&bytes, None) {
        Err(e @ Error::ImageDecode { .. }) => {
            assert!(e.to_string().contains("65000x65000"), "{e}")
        }
        other => panic!(
            "expected ImageDecode, got {:?}",
            other.map(|i| i.dimensions())
        ),
    }
}

#[test]
fn corrupted_files_never_panic() {
    // Deterministic pseudo-random byte damage; the result may be an image or an error, never a panic.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for name in ["small_group.jpg", "no_face.jpg", "tilted_head.png"] {
        let original = read_image_bytes(name);
        for _ in 0..40 {
            let mut bytes = original.clone();
            let n = 1 + (next() % 8) as usize;
            for _ in 0..n {
                let i = (next() % bytes.len() as u64) as usize;
                bytes[i] = next() as u8;
            }
            if next() % 4 == 0 {
                let keep = (next() % bytes.len() as u64) as usize;
                bytes.truncate(keep.max(1));
            }
            if let Ok(img) = load_bytes(&bytes, None) {
                assert_eq!(
                    img.as_raw().len(),
                    img.width() as usize * img.height() as usize * 4
                );
            }
        }
    }
}

#[test]
fn from_raw_accepts_grey_rgb_and_rgba() {
    let grey = from_raw(2, 1, 1, vec![3, 250]).unwrap();
    assert_eq!(
        grey.as_raw().as_slice(),
        &[3, 3, 3, 255, 250, 250, 250, 255]
    );
    let rgb = from_raw(1, 2, 3, vec![1, 2, 3, 4, 5, 6]).unwrap();
    assert_eq!(rgb.as_raw().as_slice(), &[1, 2, 3, 255, 4, 5, 6, 255]);
    let rgba = from_raw(1, 1, 4, vec![9, 8, 7, 6]).unwrap();
    assert_eq!(rgba.as_raw().as_slice(), &[9, 8, 7, 6]);
}

#[test]
fn from_raw_rejects_wrong_sizes_and_channel_counts() {
    match from_raw(4, 3, 3, vec![0; 35]) {
        Err(e @ Error::PixelBufferSize { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("35") && msg.contains("36") && msg.contains("4x3"),
                "{msg}"
            );
        }
        other => panic!("expected PixelBufferSize, got {other:?}"),
    }
    assert!(matches!(
        from_raw(u32::MAX, u32::MAX, 4, vec![0; 16]),
        Err(Error::PixelBufferSize { .. })
    ));
    match from_raw(2, 2, 2, vec![0; 8]) {
        Err(e @ Error::UnsupportedPixelFormat { .. }) => {
            assert!(e.to_string().contains("2-channel"), "{e}")
        }
        other => panic!("expected UnsupportedPixelFormat, got {other:?}"),
    }
}

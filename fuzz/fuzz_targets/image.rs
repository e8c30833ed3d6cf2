//! Image decoding: JPEG through libjpeg-turbo, PNG through the image crate.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = retinaface::image_io::load_bytes(data, None) {
        let (w, h) = img.dimensions();
        assert_eq!(img.as_raw().len(), w as usize * h as usize * 4);
    }
});

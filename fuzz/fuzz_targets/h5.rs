//! Keras HDF5 weights (retina-face's retinaface.h5 layout).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tensors) = retinaface::model::h5::read(data) {
        for t in tensors.values().flatten() {
            assert_eq!(t.data.len(), t.shape.iter().product::<usize>());
        }
    }
});

//! PyTorch checkpoints (legacy and zip), through the reader and the converter that
//! `retinaface convert` runs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tensors) = retinaface::model::pth::read(data) {
        for (_, t) in &tensors {
            assert_eq!(t.data.len(), t.shape.iter().product::<usize>());
        }
    }
    let _ = retinaface::model::pth::convert(data, None);
});

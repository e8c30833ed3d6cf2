//! safetensors loading, and the format sniffing in front of every weights file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retinaface::model::weights::Weights;

fuzz_target!(|data: &[u8]| {
    let _ = Weights::from_safetensors(data);
    let _ = Weights::from_bytes(data);
});

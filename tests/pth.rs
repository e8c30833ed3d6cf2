//! PyTorch checkpoints read without Python: the released legacy `.pth` reproduces the shared
//! safetensors exactly; the zip format (written here the way torch.save lays it out, since no
//! torch is available offline) reads the same; and anything a state dict does not need,
//! above all a global that would run code, is refused with a typed error.

mod common;
mod torch_save;

use std::io::Write;
use std::path::PathBuf;

use common::*;
use retinaface::model::weights::{Tensor, Weights};
use retinaface::model::{content_hash, pth};
use retinaface::{Error, Model};
use torch_save::*;

fn shared_pth() -> PathBuf {
    weights_path().with_file_name("mobilenet0.25_Final.pth")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("retinaface-pth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Content hash of `../shared/weights/mobilenet0.25_Final.pth` and of the shared
/// `retinaface_mnet025.safetensors` (computed by this crate; the two agree, see below).
const MNET025_CONTENT_HASH: &str =
    "ac32c8a106b9fa1accf6b77715464f35f94208ec6175f056b2e4ebc3bb9d3699";

#[test]
fn legacy_pth_reproduces_the_shared_safetensors_exactly() {
    let tensors = pth::read(&std::fs::read(shared_pth()).unwrap()).unwrap();
    let st_bytes = std::fs::read(weights_path()).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    // 253 float tensors; the 47 num_batches_tracked (int64) are dropped.
    assert_eq!(tensors.len(), 253);
    assert_eq!(st.len(), tensors.len());
    for (name, t) in &tensors {
        let v = st
            .tensor(name)
            .unwrap_or_else(|_| panic!("{name} not in safetensors"));
        assert_eq!(v.shape(), t.shape.as_slice(), "{name}");
        let bits: Vec<u8> = t.data.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(v.data(), bits.as_slice(), "{name}: data differs");
    }
    let from_pth = content_hash::of_tensors(&tensors);
    assert_eq!(from_pth, content_hash::of_safetensors(&st_bytes).unwrap());
    assert_eq!(from_pth, MNET025_CONTENT_HASH);
    assert_eq!(
        retinaface::fetch::expected_content_hash(Model::Mnet025),
        Some(MNET025_CONTENT_HASH)
    );
}

#[test]
fn convert_writes_safetensors_with_the_same_content_hash() {
    let c = pth::convert(
        &std::fs::read(shared_pth()).unwrap(),
        Some("mobilenet0.25_Final.pth"),
    )
    .unwrap();
    assert_eq!(c.model, Model::Mnet025);
    assert_eq!(c.tensors, 253);
    assert_eq!(c.content_hash, MNET025_CONTENT_HASH);
    assert_eq!(
        content_hash::of_safetensors(&c.safetensors).unwrap(),
        MNET025_CONTENT_HASH
    );
    // The file bytes differ from the shared file's (metadata, writer), the content does not.
    assert_ne!(c.safetensors, std::fs::read(weights_path()).unwrap());
    let st = safetensors::SafeTensors::deserialize(&c.safetensors).unwrap();
    assert_eq!(st.len(), 253);
}

#[test]
fn detector_weights_load_from_the_pth_directly() {
    let from_pth = Weights::load(&shared_pth()).unwrap();
    let from_st = Weights::load(&weights_path()).unwrap();
    assert_eq!(from_pth.model, Model::Mnet025);
    assert_eq!(from_pth.pack().data, from_st.pack().data);
}

/// The shared weights as (entries, storages): one storage per tensor, `module.` prefixed
/// names, and a num_batches_tracked (int64) beside each batch norm, as DataParallel saves.
fn shared_as_entries() -> (Vec<Entry<'static>>, Vec<Storage>) {
    let tensors = pth::read(&std::fs::read(shared_pth()).unwrap()).unwrap();
    let mut entries = Vec::new();
    let mut storages = Vec::new();
    for (i, (name, t)) in tensors.iter().enumerate() {
        let key: &'static str = Box::leak(i.to_string().into_boxed_str());
        entries.push(contiguous(&format!("module.{name}"), key, &t.shape));
        storages.push((key, f32_bytes(&t.data), t.data.len()));
        if let Some(bn) = name.strip_suffix(".running_var") {
            let key: &'static str = Box::leak(format!("nbt{i}").into_boxed_str());
            let mut e = contiguous(&format!("module.{bn}.num_batches_tracked"), key, &[]);
            e.storage_type = "LongStorage";
            e.storage_numel = 1;
            entries.push(e);
            storages.push((key, 7i64.to_le_bytes().to_vec(), 1));
        }
    }
    (entries, storages)
}

#[test]
fn zip_format_reads_the_same_tensors() {
    let (entries, storages) = shared_as_entries();
    for deflate in [false, true] {
        let bytes = zip_file(&entries, &storages, deflate);
        assert!(pth::is_checkpoint(&bytes));
        let tensors = pth::read(&bytes).unwrap();
        assert_eq!(
            tensors.len(),
            253,
            "module. stripped, num_batches_tracked dropped"
        );
        assert!(tensors[0].0.starts_with("body."), "{}", tensors[0].0);
        assert_eq!(content_hash::of_tensors(&tensors), MNET025_CONTENT_HASH);
        // And through the detector's loader, from a file.
        let path = temp(if deflate { "deflated.pth" } else { "zip.pth" });
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Weights::load(&path).unwrap().model, Model::Mnet025);
        assert_eq!(content_hash::of_file(&path).unwrap(), MNET025_CONTENT_HASH);
    }
}

#[test]
fn hand_written_legacy_file_matches_and_offsets_are_honoured() {
    let (entries, storages) = shared_as_entries();
    let bytes = legacy_file(&entries, &storages);
    assert_eq!(
        content_hash::of_tensors(&pth::read(&bytes).unwrap()),
        MNET025_CONTENT_HASH
    );
    // Two tensors viewing one storage at different offsets.
    let data: Vec<f32> = (0..10).map(|i| i as f32).collect();
    let mut a = contiguous("a", "s", &[2, 2]);
    let mut b = contiguous("b", "s", &[3]);
    a.storage_numel = 10;
    b.storage_numel = 10;
    b.offset = 6;
    let t = pth::read(&zip_file(&[a, b], &[("s", f32_bytes(&data), 10)], false)).unwrap();
    assert_eq!(t[0].1.data, [0.0, 1.0, 2.0, 3.0]);
    assert_eq!(t[1].1.data, [6.0, 7.0, 8.0]);
    assert_eq!(t[1].1.shape, [3]);
}

fn one_tensor_zip(edit: impl FnOnce(&mut Entry<'_>)) -> Vec<u8> {
    let mut e = contiguous("w", "0", &[2, 3]);
    edit(&mut e);
    let numel = e.storage_numel;
    zip_file(&[e], &[("0", vec![0u8; numel * 4], numel)], false)
}

#[test]
fn non_contiguous_tensor_is_refused() {
    let bytes = one_tensor_zip(|e| e.stride = vec![1, 2]);
    let e = pth::read(&bytes).unwrap_err();
    assert!(
        matches!(&e, Error::Checkpoint { reason, .. } if reason.contains("`w` is not contiguous")),
        "{e}"
    );
}

#[test]
fn non_float32_tensor_is_named() {
    let bytes = one_tensor_zip(|e| e.storage_type = "HalfStorage");
    let e = pth::read(&bytes).unwrap_err();
    assert!(
        matches!(&e, Error::TensorDtype { name, found } if name == "w" && found == "F16"),
        "{e}"
    );
}

#[test]
fn reading_past_a_storage_is_refused() {
    let bytes = one_tensor_zip(|e| e.offset = 2);
    let e = pth::read(&bytes).unwrap_err();
    assert!(e.to_string().contains("reads elements 2..8"), "{e}");
}

#[test]
fn truncated_legacy_file_is_an_error() {
    let bytes = std::fs::read(shared_pth()).unwrap();
    for cut in [bytes.len() - 1000, bytes.len() / 2, 20, 60_000] {
        let e = pth::read(&bytes[..cut]).unwrap_err();
        assert!(matches!(e, Error::Checkpoint { .. }), "cut at {cut}: {e}");
    }
}

/// A state dict whose second value is `module.name(arg)` instead of a tensor.
fn with_call(module: &str, name: &str) -> Vec<u8> {
    let mut p = Pickle::default();
    p.proto().ordered_dict().op(b"(").str("x");
    p.global(module, name).op(b"(").str("echo pwned").op(b"tR");
    p.op(b"u.");
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("archive/data.pkl", zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(&p.0).unwrap();
    w.finish().unwrap().into_inner()
}

#[test]
fn a_global_that_could_run_code_is_refused_by_name() {
    for (module, name) in [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "exec"),
        ("subprocess", "Popen"),
        ("torch", "load"),
        ("torch._utils", "_rebuild_from_type_v2"),
    ] {
        let bytes = with_call(module, name);
        let path = temp(&format!("evil-{module}-{name}.pth"));
        std::fs::write(&path, &bytes).unwrap();
        let e = Weights::load(&path).err().unwrap();
        let global = format!("{module}.{name}");
        assert!(
            matches!(&e, Error::UnsafeCheckpoint { global: g, path: Some(p) } if *g == global && *p == path),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.contains(&global) && msg.contains("run code"), "{msg}");
    }
}

#[test]
fn unknown_opcodes_and_non_tensor_values_are_refused() {
    // INST (protocol 0's "import and call") in a legacy-looking file.
    let mut bytes = std::fs::read(shared_pth()).unwrap()[..137].to_vec();
    bytes.extend(b"\x80\x02ios\nsystem\n.");
    let e = pth::read(&bytes).unwrap_err();
    assert!(e.to_string().contains("0x69"), "{e}");
    // A state dict holding a string where a tensor belongs.
    let mut p = Pickle::default();
    p.proto()
        .ordered_dict()
        .op(b"(")
        .str("w")
        .str("oops")
        .op(b"u.");
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("archive/data.pkl", zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(&p.0).unwrap();
    let e = pth::read(&w.finish().unwrap().into_inner()).unwrap_err();
    assert!(e.to_string().contains("`w` is a str, not a tensor"), "{e}");
}

#[test]
fn safetensors_content_hash_ignores_container_details() {
    // The same tensors written by another safetensors writer, with a module. prefix and in
    // another order: a different file hash, the same content hash.
    let tensors = pth::read(&std::fs::read(shared_pth()).unwrap()).unwrap();
    let data: Vec<Vec<u8>> = tensors.iter().map(|(_, t)| f32_bytes(&t.data)).collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&data)
        .rev()
        .map(|((n, t), d)| {
            (
                format!("module.{n}"),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    assert_eq!(
        content_hash::of_safetensors(&bytes).unwrap(),
        MNET025_CONTENT_HASH
    );
    // One changed value changes it.
    let mut t2: Vec<(String, Tensor)> = tensors.clone();
    t2[5].1.data[0] += 1.0;
    assert_ne!(content_hash::of_tensors(&t2), MNET025_CONTENT_HASH);
}

//! A tiny writer of PyTorch checkpoints as torch.save lays them out (protocol-2 pickles of an
//! OrderedDict of `_rebuild_tensor_v2` calls; legacy and zip containers), for tests: no
//! torch is available offline, and malformed or hostile files are easiest made by hand.
#![allow(dead_code)]

use std::io::Write;

#[derive(Default)]
pub struct Pickle(pub Vec<u8>);

impl Pickle {
    pub fn op(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    pub fn proto(&mut self) -> &mut Self {
        self.op(&[0x80, 2])
    }
    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(format!("c{module}\n{name}\n").as_bytes())
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.op(b"X")
            .op(&(s.len() as u32).to_le_bytes())
            .op(s.as_bytes())
    }
    pub fn int(&mut self, v: usize) -> &mut Self {
        if v < 256 {
            self.op(&[b'K', v as u8])
        } else {
            self.op(b"J").op(&(v as i32).to_le_bytes())
        }
    }
    pub fn tuple(&mut self, items: &[usize]) -> &mut Self {
        self.op(b"(");
        for i in items {
            self.int(*i);
        }
        self.op(b"t")
    }
    pub fn ordered_dict(&mut self) -> &mut Self {
        self.global("collections", "OrderedDict").op(b")R")
    }
}

/// One tensor entry of a hand-written state dict.
pub struct Entry<'a> {
    pub name: &'a str,
    pub storage_type: &'a str,
    pub key: &'a str,
    pub storage_numel: usize,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

pub fn contiguous(name: &str, key: &str, shape: &[usize]) -> Entry<'static> {
    let mut stride = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        stride[i] = stride[i + 1] * shape[i + 1];
    }
    Entry {
        name: Box::leak(name.to_string().into_boxed_str()),
        storage_type: "FloatStorage",
        key: Box::leak(key.to_string().into_boxed_str()),
        storage_numel: shape.iter().product(),
        offset: 0,
        shape: shape.to_vec(),
        stride,
    }
}

/// The state dict pickle: an OrderedDict of `_rebuild_tensor_v2` calls on persistent-id
/// storages, then its `_metadata` attribute through BUILD. `legacy` adds the sixth (view)
/// element of the legacy persistent id.
pub fn state_dict_pickle(entries: &[Entry<'_>], legacy: bool) -> Vec<u8> {
    let mut p = Pickle::default();
    p.proto().ordered_dict().op(b"q\x01(");
    for e in entries {
        p.str(e.name)
            .global("torch._utils", "_rebuild_tensor_v2")
            .op(b"((")
            .str("storage")
            .global("torch", e.storage_type)
            .str(e.key)
            .str("cpu")
            .int(e.storage_numel);
        if legacy {
            p.op(b"N");
        }
        p.op(b"tQ").int(e.offset).tuple(&e.shape).tuple(&e.stride);
        p.op(b"\x89").ordered_dict().op(b"tR");
    }
    p.op(b"u}(").str("_metadata").ordered_dict();
    p.str("").op(b"}(").str("version").int(1).op(b"us");
    p.op(b"ub.");
    p.0
}

/// A legacy-format file: magic, protocol, sys_info, state dict, storage keys, storages.
pub fn legacy_file(entries: &[Entry<'_>], storages: &[(&str, Vec<u8>, usize)]) -> Vec<u8> {
    let mut out = Pickle::default();
    out.proto()
        .op(&[0x8a, 10])
        .op(&0x1950a86a20f9469cfc6cu128.to_le_bytes()[..10])
        .op(b".");
    out.proto().op(b"M").op(&1001u16.to_le_bytes()).op(b".");
    out.proto()
        .op(b"}(")
        .str("protocol_version")
        .op(b"M")
        .op(&1001u16.to_le_bytes())
        .str("little_endian")
        .op(b"\x88u.");
    out.op(&state_dict_pickle(entries, true));
    out.proto().op(b"](");
    for (key, _, _) in storages {
        out.str(key);
    }
    out.op(b"e.");
    for (_, bytes, numel) in storages {
        out.op(&(*numel as u64).to_le_bytes()).op(bytes);
    }
    out.0
}

/// A zip-format file as torch >= 1.6 writes it: `archive/data.pkl`, `archive/data/<key>`.
pub fn zip_file(
    entries: &[Entry<'_>],
    storages: &[(&str, Vec<u8>, usize)],
    deflate: bool,
) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    w.start_file("archive/data.pkl", opts).unwrap();
    w.write_all(&state_dict_pickle(entries, false)).unwrap();
    w.start_file("archive/byteorder", opts).unwrap();
    w.write_all(b"little").unwrap();
    for (key, bytes, _) in storages {
        w.start_file(format!("archive/data/{key}"), opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.start_file("archive/version", opts).unwrap();
    w.write_all(b"3\n").unwrap();
    w.finish().unwrap().into_inner()
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A storage: key, raw bytes, element count.
pub type Storage = (&'static str, Vec<u8>, usize);

/// A legacy-format checkpoint of float32 tensors given as (name, shape, data), one storage each.
pub fn legacy_file_of(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut storages = Vec::new();
    for (i, (name, shape, data)) in tensors.iter().enumerate() {
        let key: &'static str = Box::leak(i.to_string().into_boxed_str());
        entries.push(contiguous(name, key, shape));
        storages.push((key, f32_bytes(data), data.len()));
    }
    legacy_file(&entries, &storages)
}

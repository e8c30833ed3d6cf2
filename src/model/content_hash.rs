//! The content hash of a state dict: SHA-256 over its tensors' names, dtypes, shapes and data,
//! in name order. Two files holding the same tensors have the same content hash whatever
//! their container (`.pth` legacy or zip, safetensors) and however it orders or pads them,
//! where their file hashes differ; it is what `fetch-weights` verifies and what
//! weights/README.md lists.
//!
//! The tensors are those the detector reads: a `module.` prefix stripped and
//! `num_batches_tracked` left out, as [`super::pth::read`] and the safetensors loader do.
//!
//! Byte stream hashed (all integers u64 little-endian):
//! `"retinaface-wgpu content hash v1\0"`, tensor count, then per tensor in ascending byte
//! order of names: name length, name (UTF-8), dtype length, dtype (safetensors' spelling,
//! e.g. `F32`), rank, each dimension, data length in bytes, data (little-endian, row-major).

#[cfg(feature = "native")]
use std::path::Path;

use sha2::{Digest, Sha256};

use super::weights::Tensor;
use crate::error::{Error, Result};

const DOMAIN: &[u8] = b"retinaface-wgpu content hash v1\0";

/// One tensor as it is hashed.
#[derive(Clone, Copy, Debug)]
pub struct TensorBytes<'a> {
    pub name: &'a str,
    pub dtype: &'a str,
    pub shape: &'a [usize],
    pub data: &'a [u8],
}

/// The content hash (lowercase hex) of `tensors`, given in any order.
pub fn hash<'a>(tensors: impl IntoIterator<Item = TensorBytes<'a>>) -> String {
    let mut v: Vec<TensorBytes<'a>> = tensors.into_iter().collect();
    v.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut h = Sha256::new();
    let n = |h: &mut Sha256, x: usize| h.update((x as u64).to_le_bytes());
    h.update(DOMAIN);
    n(&mut h, v.len());
    for t in v {
        n(&mut h, t.name.len());
        h.update(t.name.as_bytes());
        n(&mut h, t.dtype.len());
        h.update(t.dtype.as_bytes());
        n(&mut h, t.shape.len());
        for d in t.shape {
            n(&mut h, *d);
        }
        n(&mut h, t.data.len());
        h.update(t.data);
    }
    hex(&h.finalize())
}

/// The content hash of float32 tensors (as [`super::pth::read`] returns them).
pub fn of_tensors(tensors: &[(String, Tensor)]) -> String {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, t)| f32_bytes(&t.data)).collect();
    hash(
        tensors
            .iter()
            .zip(&bytes)
            .map(|((name, t), data)| TensorBytes {
                name,
                dtype: "F32",
                shape: &t.shape,
                data,
            }),
    )
}

/// The content hash of a safetensors file's bytes.
pub fn of_safetensors(bytes: &[u8]) -> Result<String> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| Error::WeightsFile {
        path: Default::default(),
        reason: format!("not a valid safetensors file ({e})"),
    })?;
    let views = st.tensors();
    let dtypes: Vec<String> = views
        .iter()
        .map(|(_, v)| format!("{:?}", v.dtype()))
        .collect();
    Ok(hash(
        views
            .iter()
            .zip(&dtypes)
            .filter(|((name, _), _)| !name.ends_with("num_batches_tracked"))
            .map(|((name, v), dtype)| TensorBytes {
                name: name.strip_prefix("module.").unwrap_or(name),
                dtype,
                shape: v.shape(),
                data: v.data(),
            }),
    ))
}

/// The content hash of a weights file's bytes: a PyTorch checkpoint or a safetensors file.
pub fn of_bytes(bytes: &[u8]) -> Result<String> {
    if super::pth::is_checkpoint(bytes) {
        Ok(of_tensors(&super::pth::read(bytes)?))
    } else {
        of_safetensors(bytes)
    }
}

/// The content hash of the weights file at `path`.
#[cfg(feature = "native")]
pub fn of_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::WeightsFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    of_bytes(&bytes).map_err(|e| match e {
        Error::WeightsFile { reason, .. } => Error::WeightsFile {
            path: path.to_path_buf(),
            reason,
        },
        Error::Checkpoint { reason, .. } => Error::Checkpoint {
            path: Some(path.to_path_buf()),
            reason,
        },
        other => other,
    })
}

pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], data: &[f32]) -> Tensor {
        Tensor {
            shape: shape.to_vec(),
            data: data.to_vec(),
        }
    }

    #[test]
    fn order_free_but_content_sensitive() {
        let a = vec![
            ("x.weight".to_string(), t(&[2, 1], &[1.0, 2.0])),
            ("a.bias".to_string(), t(&[1], &[3.0])),
        ];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(of_tensors(&a), of_tensors(&b));
        assert_eq!(of_tensors(&a).len(), 64);
        let mut c = a.clone();
        c[0].1.data[1] = 2.0000002;
        assert_ne!(of_tensors(&a), of_tensors(&c), "data");
        let mut d = a.clone();
        d[0].1.shape = vec![1, 2];
        assert_ne!(of_tensors(&a), of_tensors(&d), "shape");
        let mut e = a.clone();
        e[1].0 = "a.bias2".into();
        assert_ne!(of_tensors(&a), of_tensors(&e), "name");
        // Lengths are framed: moving a byte from one name into the next changes the hash.
        let f = vec![
            ("ab".to_string(), t(&[1], &[1.0])),
            ("c".to_string(), t(&[1], &[1.0])),
        ];
        let g = vec![
            ("a".to_string(), t(&[1], &[1.0])),
            ("bc".to_string(), t(&[1], &[1.0])),
        ];
        assert_ne!(of_tensors(&f), of_tensors(&g));
    }

    #[test]
    fn known_value() {
        // Pins the byte layout documented above: changing it changes every published hash.
        let v = vec![("w".to_string(), t(&[1], &[1.0]))];
        let mut bytes = DOMAIN.to_vec();
        for x in [1u64, 1] {
            bytes.extend(x.to_le_bytes());
        }
        bytes.push(b'w');
        bytes.extend(3u64.to_le_bytes());
        bytes.extend(b"F32");
        for x in [1u64, 1, 4] {
            bytes.extend(x.to_le_bytes());
        }
        bytes.extend(1.0f32.to_le_bytes());
        assert_eq!(of_tensors(&v), hex(&Sha256::digest(&bytes)));
    }
}

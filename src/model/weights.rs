//! Loading a RetinaFace state dict from safetensors or a PyTorch checkpoint: model detection
//! from the tensor names, shape and finiteness validation, batch-norm folding, and packing
//! into the shaders' layouts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::arch::{ConvLayer, LayerKind, Model};
use crate::error::{Error, Result};
use crate::ops::conv::{self, PackedAt};
use crate::ops::depthwise;
use crate::ops::heads::HeadWeights;

/// File name looked for in the search directories.
pub const WEIGHTS_FILE: &str = "retinaface_mnet025.safetensors";

/// A float tensor of the state dict.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A convolution with its batch norm folded in: PyTorch layout `[co][ci/groups][k][k]` plus bias.
#[derive(Clone, Debug)]
pub struct Folded {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Validated, folded weights of the whole network, still on the host.
#[derive(Clone, Debug)]
pub struct Weights {
    /// The network these weights are for, picked from the tensor names.
    pub model: Model,
    pub convs: HashMap<String, Folded>,
    /// Standalone batch norms ([`Model::affine_layers`]): per-channel scale and shift.
    pub affines: HashMap<String, (Vec<f32>, Vec<f32>)>,
    /// Per level: (cls w, cls b, bbox w, bbox b, landm w, landm b), PyTorch layout.
    pub heads: Vec<[Vec<f32>; 6]>,
}

/// Where weights were looked for, in order: explicit path, `RETINAFACE_WEIGHTS`, `./weights`,
/// the crate's `weights/` directory, the per-user cache.
pub fn search_paths(explicit: Option<&Path>) -> Vec<PathBuf> {
    search_paths_for(Model::Mnet025, explicit)
}

/// [`search_paths`] for `model`'s file ([`Model::file_name`]) in the same places.
pub fn search_paths_for(model: Model, explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = explicit {
        out.push(p.to_path_buf());
        return out;
    }
    if let Some(p) = std::env::var_os("RETINAFACE_WEIGHTS") {
        out.push(PathBuf::from(p));
        return out;
    }
    let file = model.file_name();
    out.push(PathBuf::from("weights").join(file));
    out.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("weights")
            .join(file),
    );
    if let Some(dir) = cache_dir() {
        out.push(dir.join(file));
    }
    if model == Model::Net3 {
        // Where retina-face and deepface keep the package's own file: an existing deepface
        // user needs no download.
        out.push(PathBuf::from("weights").join(NET3_H5));
        if let Some(dir) = cache_dir() {
            out.push(dir.join(NET3_H5));
        }
        for home in [std::env::var_os("DEEPFACE_HOME"), std::env::var_os("HOME")]
            .into_iter()
            .flatten()
        {
            out.push(
                PathBuf::from(home)
                    .join(".deepface")
                    .join("weights")
                    .join(NET3_H5),
            );
        }
    }
    out
}

/// The file name retina-face (and deepface) give the package's Keras weights.
pub const NET3_H5: &str = "retinaface.h5";

/// The per-user cache directory (`$XDG_CACHE_HOME/retinaface-wgpu`, `~/.cache/retinaface-wgpu`,
/// `%LOCALAPPDATA%\retinaface-wgpu`).
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("RETINAFACE_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("retinaface-wgpu"));
    }
    if cfg!(windows) {
        if let Some(d) = std::env::var_os("LOCALAPPDATA") {
            return Some(PathBuf::from(d).join("retinaface-wgpu"));
        }
    }
    let home = std::env::var_os("HOME")?;
    let base = if cfg!(target_os = "macos") {
        "Library/Caches"
    } else {
        ".cache"
    };
    Some(PathBuf::from(home).join(base).join("retinaface-wgpu"))
}

/// Finds the weights file: the explicit path must exist; otherwise the first that exists.
pub fn resolve(explicit: Option<&Path>) -> Result<PathBuf> {
    resolve_for(Model::Mnet025, explicit)
}

/// [`resolve`] for `model`: `--model` picks which file the default places are searched for;
/// a path the user named (`--weights`, `RETINAFACE_WEIGHTS`) wins, whatever its model.
pub fn resolve_for(model: Model, explicit: Option<&Path>) -> Result<PathBuf> {
    let paths = search_paths_for(model, explicit);
    if explicit.is_some() || std::env::var_os("RETINAFACE_WEIGHTS").is_some() {
        // A path the user named is used as is: a wrong one must fail, not fall back.
        return Ok(paths[0].clone());
    }
    resolve_in_for(model, &paths)
}

/// The first of `paths` that is a file.
pub fn resolve_in(paths: &[PathBuf]) -> Result<PathBuf> {
    resolve_in_for(Model::Mnet025, paths)
}

/// The first of `paths` that is a file; the error names `model`'s `fetch-weights` command.
pub fn resolve_in_for(model: Model, paths: &[PathBuf]) -> Result<PathBuf> {
    paths
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| Error::WeightsNotFound {
            searched: paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            model: model.name().to_string(),
            file: model.file_name().to_string(),
        })
}

/// Why `bytes` is not a safetensors file, in words that say whether it is damaged or another
/// kind of file. Nothing is allocated from the header's sizes: the safetensors crate checks
/// the declared offsets against the file before a tensor is touched, and the weights are
/// copied from views of the file's own bytes.
fn safetensors_reason(bytes: &[u8], e: safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    let header_len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()));
    match e {
        E::HeaderTooSmall | E::InvalidHeaderLength | E::HeaderTooLarge => format!(
            "not a safetensors file: its first 8 bytes give a header length of {}, but the file \
             has {} bytes (truncated, or another kind of file)",
            header_len.unwrap_or(0),
            bytes.len()
        ),
        E::MetadataIncompleteBuffer => {
            // The largest end offset the header declares, read again from its JSON for the message.
            let declared = header_len
                .and_then(|n| bytes.get(8..8usize.checked_add(usize::try_from(n).ok()?)?))
                .and_then(|h| serde_json::from_slice::<serde_json::Value>(h).ok())
                .and_then(|h| {
                    h.as_object()?
                        .values()
                        .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
                        .max()
                });
            let held =
                (bytes.len() as u64).saturating_sub(header_len.unwrap_or(0).saturating_add(8));
            match declared {
                Some(d) => format!(
                    "its header declares {d} bytes of tensor data, but {held} follow the header: \
                     the file is truncated or its header corrupt"
                ),
                None => format!(
                    "its tensors do not cover the {held} bytes after the header: the file is \
                     truncated or its header corrupt"
                ),
            }
        }
        e => format!("not a valid safetensors file ({e})"),
    }
}

/// Puts the file's path into errors raised while parsing its bytes.
fn with_path(e: Error, path: &Path) -> Error {
    match e {
        Error::WeightsFile { reason, .. } => Error::WeightsFile {
            path: path.to_path_buf(),
            reason,
        },
        Error::Checkpoint { reason, .. } => Error::Checkpoint {
            path: Some(path.to_path_buf()),
            reason,
        },
        Error::UnsafeCheckpoint { global, .. } => Error::UnsafeCheckpoint {
            path: Some(path.to_path_buf()),
            global,
        },
        Error::KerasWeights { reason, .. } => Error::KerasWeights {
            path: Some(path.to_path_buf()),
            reason,
        },
        other => other,
    }
}

impl Weights {
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::WeightsFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_bytes(&bytes).map_err(|e| with_path(e, path))
    }

    /// A safetensors file, a PyTorch checkpoint (`.pth`, legacy or zip format) or a Keras
    /// HDF5 weights file (`retinaface.h5`), told apart by their first bytes; the last two are
    /// converted in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if super::h5::is_hdf5(bytes) {
            Self::from_tensors(&super::h5::read(bytes)?)
        } else if super::pth::is_checkpoint(bytes) {
            let tensors = super::pth::read(bytes)?;
            Self::from_tensors(&tensors.into_iter().map(|(n, t)| (n, Ok(t))).collect())
        } else {
            Self::from_safetensors(bytes)
        }
    }

    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| Error::WeightsFile {
            path: PathBuf::new(),
            reason: safetensors_reason(bytes, e),
        })?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let name = name.strip_prefix("module.").unwrap_or(&name).to_string();
            if name.ends_with("num_batches_tracked") {
                continue;
            }
            if view.dtype() != safetensors::Dtype::F32 {
                tensors.insert(name, Err(format!("{:?}", view.dtype())));
                continue;
            }
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.insert(
                name,
                Ok(Tensor {
                    shape: view.shape().to_vec(),
                    data,
                }),
            );
        }
        Self::from_tensors(&tensors)
    }

    /// Builds from named tensors (a value of `Err(dtype)` marks a tensor that is not F32).
    pub fn from_tensors(tensors: &HashMap<String, Result<Tensor, String>>) -> Result<Self> {
        let get = |name: &str, shape: &[usize]| -> Result<&Tensor> {
            let t = match tensors.get(name) {
                None => return Err(Error::MissingTensor { name: name.into() }),
                Some(Err(dtype)) => {
                    return Err(Error::TensorDtype {
                        name: name.into(),
                        found: dtype.clone(),
                    })
                }
                Some(Ok(t)) => t,
            };
            if t.shape != shape {
                return Err(Error::TensorShape {
                    name: name.into(),
                    expected: shape.to_vec(),
                    found: t.shape.clone(),
                });
            }
            if let Some(index) = t.data.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFiniteWeight {
                    name: name.into(),
                    index,
                });
            }
            Ok(t)
        };
        let model = Model::detect(tensors.keys().map(|k| k.as_str()))?;
        let eps = model.bn_eps();
        let bn_of = |prefix: &str, c: usize| -> Result<[&Tensor; 4]> {
            let t = |p: &str| get(&format!("{prefix}.{p}"), &[c]);
            Ok([
                t("weight")?,
                t("bias")?,
                t("running_mean")?,
                t("running_var")?,
            ])
        };
        let mut convs = HashMap::new();
        for layer in model.conv_layers() {
            let in_per_group = if layer.kind == LayerKind::Depthwise {
                1
            } else {
                layer.in_c
            };
            let w = get(
                &format!("{}.weight", layer.conv),
                &[layer.out_c, in_per_group, layer.k, layer.k],
            )?;
            let bias = if layer.bias {
                get(&format!("{}.bias", layer.conv), &[layer.out_c])?
                    .data
                    .clone()
            } else {
                vec![0.0; layer.out_c]
            };
            let folded = match &layer.bn {
                Some(prefix) => {
                    let [g, b, m, v] = bn_of(prefix, layer.out_c)?;
                    fold(&w.data, &bias, g, b, m, v, eps)
                }
                None => Folded {
                    weight: w.data.clone(),
                    bias,
                },
            };
            convs.insert(layer.name.clone(), folded);
        }
        let mut affines = HashMap::new();
        for a in model.affine_layers() {
            let [g, b, m, v] = bn_of(&a.bn, a.channels)?;
            affines.insert(a.name.clone(), affine(g, b, m, v, eps));
        }
        let mut heads = Vec::new();
        for l in 0..3 {
            let mut level: [Vec<f32>; 6] = Default::default();
            for (i, (head, k)) in model.head_names(l).iter().zip([2, 4, 10]).enumerate() {
                let out = k * 2;
                level[2 * i] = get(&format!("{head}.weight"), &[out, model.head_in(), 1, 1])?
                    .data
                    .clone();
                level[2 * i + 1] = get(&format!("{head}.bias"), &[out])?.data.clone();
            }
            heads.push(level);
        }
        Ok(Self {
            model,
            convs,
            affines,
            heads,
        })
    }

    pub fn head(&self, level: usize) -> HeadWeights<'_> {
        let h = &self.heads[level];
        HeadWeights {
            cls: (&h[0], &h[1]),
            bbox: (&h[2], &h[3]),
            landm: (&h[4], &h[5]),
            // net3's score channels are [bg a0, bg a1, face a0, face a1].
            class_major: self.model == Model::Net3,
        }
    }

    /// Packs every layer into one float array in the shaders' layouts (offsets multiples of 4).
    pub fn pack(&self) -> Packed {
        let mut data = Vec::new();
        let mut at = HashMap::new();
        let push = |data: &mut Vec<f32>, v: &[f32]| {
            let off = data.len();
            data.extend_from_slice(v);
            data.resize(data.len().next_multiple_of(4), 0.0);
            off
        };
        for layer in self.model.conv_layers() {
            let f = &self.convs[&layer.name];
            let (w, b) = match layer.kind {
                LayerKind::Depthwise => (
                    depthwise::pack_weights(&f.weight, layer.out_c),
                    f.bias.clone(),
                ),
                LayerKind::Dense => (
                    conv::pack_weights(
                        &f.weight,
                        layer.out_c,
                        layer.in_c,
                        layer.in_c.next_multiple_of(4),
                        layer.k,
                    ),
                    conv::pack_bias(&f.bias),
                ),
            };
            let weights = push(&mut data, &w);
            let bias = push(&mut data, &b);
            at.insert(layer.name.clone(), PackedAt { weights, bias });
        }
        for a in self.model.affine_layers() {
            let (scale, shift) = &self.affines[&a.name];
            let weights = push(&mut data, scale);
            let bias = push(&mut data, shift);
            at.insert(a.name.clone(), PackedAt { weights, bias });
        }
        let mut heads = Vec::new();
        for l in 0..3 {
            let (w, b) = self.head(l).pack(self.model.head_in());
            let weights = push(&mut data, &w);
            let bias = push(&mut data, &b);
            heads.push(PackedAt { weights, bias });
        }
        Packed {
            model: self.model,
            data,
            at,
            heads,
        }
    }

    pub fn conv(&self, layer: &ConvLayer) -> &Folded {
        &self.convs[&layer.name]
    }
}

/// All weights in one buffer's worth of floats, with where each layer starts.
pub struct Packed {
    pub model: Model,
    pub data: Vec<f32>,
    pub at: HashMap<String, PackedAt>,
    pub heads: Vec<PackedAt>,
}

/// Folds `y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta` into the convolution, in
/// f64 so the folded f32 weights are the correctly rounded ones.
fn fold(
    w: &[f32],
    conv_bias: &[f32],
    gamma: &Tensor,
    beta: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    eps: f64,
) -> Folded {
    let out_c = conv_bias.len();
    let per = w.len() / out_c;
    let mut weight = Vec::with_capacity(w.len());
    let mut bias = Vec::with_capacity(out_c);
    for co in 0..out_c {
        let scale = gamma.data[co] as f64 / (var.data[co] as f64 + eps).sqrt();
        weight.extend(
            w[co * per..(co + 1) * per]
                .iter()
                .map(|v| (*v as f64 * scale) as f32),
        );
        let b = beta.data[co] as f64 + (conv_bias[co] as f64 - mean.data[co] as f64) * scale;
        bias.push(b as f32);
    }
    Folded { weight, bias }
}

/// A batch norm on its own as `x * scale + shift`.
fn affine(
    gamma: &Tensor,
    beta: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    eps: f64,
) -> (Vec<f32>, Vec<f32>) {
    (0..gamma.data.len())
        .map(|c| {
            let scale = gamma.data[c] as f64 / (var.data[c] as f64 + eps).sqrt();
            let shift = beta.data[c] as f64 - mean.data[c] as f64 * scale;
            (scale as f32, shift as f32)
        })
        .unzip()
}

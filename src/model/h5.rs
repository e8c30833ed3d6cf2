//! Keras HDF5 weights (`model.save_weights("*.h5")`, the layout `retina-face`'s
//! `retinaface.h5` uses) to a state dict with the names of the package's PyTorch port
//! (spec §6.3), kernels converted from Keras' HWIO to PyTorch's OIHW once, at load.
//!
//! Layers are found by group name, never by position: the root attribute `layer_names` lists
//! them, each group's `weight_names` attribute lists its datasets (`L/kernel:0`, `L/gamma:0`,
//! ...). Both string kinds (variable- and fixed-length) are accepted, with or without a
//! `/model_weights` level (a whole-model save); `top_level_model_weights` (newer tf_keras)
//! and weightless layers (whose `weight_names` is an empty float array) are skipped. Any
//! damage is an error naming the layer, never a panic: the decoder is bounds-checked.

use std::collections::HashMap;

use super::weights::Tensor;
use crate::error::{Error, Result};

/// The first bytes of every HDF5 file (no user block).
pub const MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

pub fn is_hdf5(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

fn err(reason: impl Into<String>) -> Error {
    Error::KerasWeights {
        path: None,
        reason: reason.into(),
    }
}

/// Every float32 tensor of a Keras weights file, named as the PyTorch port names them; a
/// non-float32 dataset maps to `Err(dtype)` so the loader can name it.
pub fn read(bytes: &[u8]) -> Result<HashMap<String, Result<Tensor, String>>> {
    let file = hdf5_reader::Hdf5File::from_bytes(bytes)
        .map_err(|e| err(format!("not a readable HDF5 file ({e})")))?;
    let mut root = file
        .root_group()
        .map_err(|e| err(format!("cannot read the HDF5 root group ({e})")))?;
    if root.attribute("layer_names").is_err() {
        if let Ok(g) = root.group("model_weights") {
            root = g;
        }
    }
    let layers = root
        .attribute("layer_names")
        .and_then(|a| a.read_strings())
        .map_err(|e| {
            err(format!(
                "no readable `layer_names` attribute ({e}); is this a Keras weights file?"
            ))
        })?;
    let mut out = HashMap::new();
    for layer in &layers {
        let group = root.group(layer).map_err(|e| {
            err(format!(
                "layer `{layer}` is listed but its group is missing ({e})"
            ))
        })?;
        let attr = group.attribute("weight_names").map_err(|e| {
            err(format!(
                "layer `{layer}` has no `weight_names` attribute ({e})"
            ))
        })?;
        // Weightless layers store an empty float array instead of an empty string list.
        let names = match attr.read_strings() {
            Ok(n) => n,
            Err(_) if attr.num_elements().map(|n| n == 0).unwrap_or(false) => continue,
            Err(e) => {
                return Err(err(format!(
                    "layer `{layer}`: unreadable `weight_names` ({e})"
                )))
            }
        };
        for wname in names {
            let dataset = group.dataset(&wname).or_else(|_| {
                // `L/kernel:0` lives at `/L/L/kernel:0`: a subgroup named after the layer.
                let (sub, leaf) = wname.rsplit_once('/').unwrap_or((layer, &wname));
                group.group(sub).and_then(|g| g.dataset(leaf))
            });
            let dataset = dataset.map_err(|e| {
                err(format!(
                    "layer `{layer}`: dataset `{wname}` is missing ({e})"
                ))
            })?;
            let leaf = wname.rsplit('/').next().unwrap_or(&wname);
            let kind = leaf.strip_suffix(":0").unwrap_or(leaf);
            let name = torch_name(layer, kind)
                .ok_or_else(|| err(format!("layer `{layer}`: unexpected weight `{wname}`")))?;
            let shape: Vec<usize> = dataset
                .shape()
                .iter()
                .map(|d| usize::try_from(*d).unwrap_or(usize::MAX))
                .collect();
            let is_f32 = matches!(
                dataset.dtype(),
                hdf5_reader::Datatype::FloatingPoint { size: 4, .. }
            );
            if !is_f32 {
                out.insert(name, Err(format!("{:?}", dataset.dtype())));
                continue;
            }
            // The decoder bounds its reads by the file size; a declared shape larger than the
            // file cannot be backed by data and is refused before allocating. Checked: the
            // dimensions are the file's and their product may overflow.
            let n = shape
                .iter()
                .try_fold(1usize, |n, d| n.checked_mul(*d))
                .filter(|n| n.saturating_mul(4) <= bytes.len())
                .ok_or_else(|| {
                    err(format!(
                        "layer `{layer}`: dataset `{wname}` declares shape {shape:?}, more floats \
                         than the file holds"
                    ))
                })?;
            let mut data = vec![0f32; n];
            dataset
                .read_into(&mut data)
                .map_err(|e| err(format!("layer `{layer}`: cannot read `{wname}` ({e})")))?;
            let (shape, data) = if kind == "kernel" {
                hwio_to_oihw(&shape, &data).ok_or_else(|| {
                    err(format!(
                        "layer `{layer}`: kernel of shape {shape:?} is not 4-D"
                    ))
                })?
            } else {
                (shape, data)
            };
            out.insert(name, Ok(Tensor { shape, data }));
        }
    }
    if out.is_empty() {
        return Err(err("the file lists no layer with weights"));
    }
    Ok(out)
}

/// [`read`] as a state dict of float32 tensors in name order (what a checkpoint converter
/// and the content hash take); a non-float32 dataset is [`Error::TensorDtype`].
pub fn read_f32(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let mut tensors = read(bytes)?
        .into_iter()
        .map(|(name, t)| match t {
            Ok(t) => Ok((name, t)),
            Err(dtype) => Err(Error::TensorDtype { name, found: dtype }),
        })
        .collect::<Result<Vec<_>>>()?;
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

/// The PyTorch port's state-dict name of Keras layer `layer`'s weight `kind` (spec §6.3).
pub fn torch_name(layer: &str, kind: &str) -> Option<String> {
    let suffix = match kind {
        "kernel" | "gamma" => "weight",
        "bias" | "beta" => "bias",
        "moving_mean" => "running_mean",
        "moving_variance" => "running_var",
        _ => return None,
    };
    Some(format!("{}.{suffix}", module_path(layer)))
}

/// `stage3_unit1_sc` -> `stage3.unit1.sc`, `ssh_m2_det_conv1_bn` -> `ssh_m2_det.conv1_bn`,
/// `face_rpn_bbox_pred_stride16` -> `face_rpn_stride16.bbox_pred`, others unchanged.
fn module_path(layer: &str) -> String {
    if let Some(rest) = layer.strip_prefix("stage") {
        let mut parts = rest.splitn(3, '_');
        if let (Some(s), Some(u), Some(tail)) = (parts.next(), parts.next(), parts.next()) {
            if s.chars().all(|c| c.is_ascii_digit()) && u.starts_with("unit") {
                return format!("stage{s}.{u}.{tail}");
            }
        }
    }
    if layer.starts_with("ssh_m") {
        if let Some(i) = layer.find("_det_") {
            return format!("{}.{}", &layer[..i + 4], &layer[i + 5..]);
        }
    }
    if let Some(rest) = layer.strip_prefix("face_rpn_") {
        if let Some(i) = rest.rfind("_stride") {
            return format!("face_rpn{}.{}", &rest[i..], &rest[..i]);
        }
    }
    layer.to_string()
}

/// Keras `(kh, kw, in, out)` to PyTorch `(out, in, kh, kw)`: `W[o][i][y][x] = K[y][x][i][o]`.
fn hwio_to_oihw(shape: &[usize], k: &[f32]) -> Option<(Vec<usize>, Vec<f32>)> {
    let [kh, kw, ci, co] = shape[..] else {
        return None;
    };
    let mut w = vec![0f32; k.len()];
    for y in 0..kh {
        for x in 0..kw {
            for i in 0..ci {
                for o in 0..co {
                    w[((o * ci + i) * kh + y) * kw + x] = k[((y * kw + x) * ci + i) * co + o];
                }
            }
        }
    }
    Some((vec![co, ci, kh, kw], w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_pytorch_port() {
        for (layer, kind, want) in [
            ("stage3_unit1_sc", "kernel", "stage3.unit1.sc.weight"),
            (
                "stage1_unit2_bn1",
                "moving_variance",
                "stage1.unit2.bn1.running_var",
            ),
            (
                "ssh_m2_det_context_conv3_1_bn",
                "beta",
                "ssh_m2_det.context_conv3_1_bn.bias",
            ),
            (
                "face_rpn_bbox_pred_stride16",
                "bias",
                "face_rpn_stride16.bbox_pred.bias",
            ),
            (
                "face_rpn_cls_score_stride8",
                "kernel",
                "face_rpn_stride8.cls_score.weight",
            ),
            ("ssh_m1_red_conv_bn", "gamma", "ssh_m1_red_conv_bn.weight"),
            ("bn_data", "moving_mean", "bn_data.running_mean"),
            ("bn1", "gamma", "bn1.weight"),
        ] {
            assert_eq!(torch_name(layer, kind).as_deref(), Some(want), "{layer}");
        }
        assert_eq!(torch_name("conv0", "recurrent_kernel"), None);
    }

    #[test]
    fn kernels_are_transposed_without_a_flip() {
        // 2x1 kernel, 2 inputs, 3 outputs: K[y][x][i][o] = 100y + 10i + o.
        let shape = [2, 1, 2, 3];
        let mut k = Vec::new();
        for y in 0..2 {
            for i in 0..2 {
                for o in 0..3 {
                    k.push((100 * y + 10 * i + o) as f32);
                }
            }
        }
        let (s, w) = hwio_to_oihw(&shape, &k).unwrap();
        assert_eq!(s, [3, 2, 2, 1]);
        assert_eq!(w[(2 * 2 + 1) * 2 + 1], 112.0); // o=2, i=1, y=1
        assert!(hwio_to_oihw(&[3, 3], &[0.0; 9]).is_none());
    }
}

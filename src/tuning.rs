//! Which conv kernel each layer runs on this adapter.
//!
//! By default a rule table measured on lavapipe picks the variant of each layer
//! ([`Variant::for_shape`]). [`Detector::tune`](crate::Detector::tune) (`retinaface bench
//! --tune`) times every variant of the kernel family on every conv shape of a network input
//! size on the device itself and keeps the fastest; the choices are saved per adapter, driver
//! and kernel family in the per-user cache (`tuning.json`) and read back by every detector
//! built later on the same adapter. Whatever is chosen, the detections are the same within
//! float rounding: every variant computes the same convolution (tests/tuning.rs runs the
//! golden images with each one).

use std::collections::HashMap;

use crate::gpu::{GpuContext, KernelPath};
use crate::ops::conv::{ConvShape, Variant};
// The cache is a file, and measuring times submits with the wall clock and waits on the GPU:
// none of that in a browser (`std::time::Instant` panics on wasm32-unknown-unknown).
#[cfg(feature = "native")]
use {
    crate::error::{Error, Result},
    crate::gpu::storage_buffer,
    crate::model::arch::{Graph, Op},
    crate::model::plan::{head_shape, Kernels},
    crate::model::weights::Packed,
    crate::ops::conv::{self, PackedAt},
    crate::ops::Activation,
    std::path::{Path, PathBuf},
    std::time::{Duration, Instant},
};

/// The file in the per-user cache directory.
pub const FILE: &str = "tuning.json";

/// Measured kernel choices for one adapter and kernel family; shapes it does not list get
/// the rule table's choice.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tuning {
    choices: HashMap<ConvShape, Variant>,
    /// Every layer that can run it gets this variant (tests and benchmarks).
    forced: Option<Variant>,
}

/// One conv shape's measurement: each candidate's time and the one chosen.
#[derive(Clone, Debug)]
pub struct TunedShape {
    pub shape: ConvShape,
    /// Layers of the network with this shape (one name, or the first of several).
    pub layer: String,
    /// Median milliseconds per dispatch of each candidate.
    pub candidates: Vec<(Variant, f64)>,
    pub chosen: Variant,
    /// What the rule table would have picked.
    pub rule: Variant,
}

impl Tuning {
    /// A tuning that runs `variant` on every layer it can run, the rule table elsewhere.
    pub fn forcing(variant: Variant) -> Self {
        Self {
            choices: HashMap::new(),
            forced: Some(variant),
        }
    }

    /// The variant `shape` runs with the `path` family.
    pub fn variant(&self, path: KernelPath, shape: &ConvShape) -> Variant {
        let usable = |v: &Variant| v.path() == path && v.runs(shape);
        self.forced
            .filter(usable)
            .or_else(|| self.choices.get(shape).copied().filter(usable))
            .unwrap_or_else(|| Variant::for_shape(path, shape))
    }

    pub fn set(&mut self, shape: ConvShape, variant: Variant) {
        self.choices.insert(shape, variant);
    }

    pub fn len(&self) -> usize {
        self.choices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.choices.is_empty()
    }

    /// What tells adapters apart in the cache: name, driver and its version, backend, family.
    pub fn adapter_key(ctx: &GpuContext, path: KernelPath) -> String {
        let a = ctx.device.adapter_info();
        format!(
            "{} | {} {} | {:?} | {:?}",
            a.name, a.driver, a.driver_info, a.backend, path
        )
    }

    /// The cache file: `tuning.json` in the per-user cache directory.
    #[cfg(feature = "native")]
    pub fn default_file() -> Option<PathBuf> {
        crate::model::weights::cache_dir().map(|d| d.join(FILE))
    }

    /// The choices saved for `key` in `file`; empty when there is no file, no entry, or the
    /// file cannot be read (a damaged cache is rebuilt by the next `--tune`, never fatal).
    #[cfg(feature = "native")]
    pub fn load(file: &Path, key: &str) -> Self {
        let mut t = Self::default();
        let Ok(text) = std::fs::read_to_string(file) else {
            return t;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            return t;
        };
        if let Some(entries) = json["adapters"][key].as_object() {
            for (shape, variant) in entries {
                if let (Some(s), Some(v)) = (
                    parse_shape(shape),
                    variant.as_str().and_then(Variant::from_name),
                ) {
                    t.choices.insert(s, v);
                }
            }
        }
        t
    }

    /// Writes the choices for `key` into `file`, keeping other adapters' entries; written to
    /// a temporary file and renamed ([`crate::fs_atomic`]), so a crash leaves the old cache.
    #[cfg(feature = "native")]
    pub fn save(&self, file: &Path, key: &str) -> Result<()> {
        let err = |reason: String| Error::WriteFile {
            path: file.to_path_buf(),
            reason,
        };
        let mut json = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .filter(|v| v["adapters"].is_object())
            .unwrap_or_else(|| serde_json::json!({ "version": 1, "adapters": {} }));
        let mut entries = serde_json::Map::new();
        let mut shapes: Vec<_> = self.choices.iter().collect();
        shapes.sort_by_key(|(s, _)| shape_name(s));
        for (shape, variant) in shapes {
            entries.insert(shape_name(shape), variant.name().into());
        }
        json["adapters"][key] = serde_json::Value::Object(entries);
        let text = serde_json::to_string_pretty(&json).map_err(|e| err(e.to_string()))?;
        crate::fs_atomic::write_atomic(file, text.as_bytes())
    }
}

/// Milliseconds per dispatch of each of `variants` on `shape`. The candidates take turns
/// (one submit of [`DISPATCHES`] dispatches each per round, after a round that compiles the
/// pipelines, as drivers compile at the first dispatch), so a slow stretch of a shared or
/// clocked-down machine hits them all alike, and each keeps its fastest round.
#[allow(clippy::too_many_arguments)]
#[cfg(feature = "native")]
fn time_variants(
    ctx: &GpuContext,
    k: &Kernels,
    shape: ConvShape,
    variants: &[Variant],
    src: &wgpu::Buffer,
    weights: &wgpu::Buffer,
    at: PackedAt,
    dst: &wgpu::Buffer,
) -> Result<Vec<f64>> {
    let steps: Vec<_> = variants
        .iter()
        .map(|&v| {
            let target = conv::Target {
                buffer: dst,
                channels: shape.out_c,
                offset: 0,
            };
            conv::step(
                ctx,
                &k.conv,
                "tune",
                shape,
                v,
                Activation::None,
                conv::Source::after_image(src, shape.in_w, shape.in_h, shape.in_c),
                weights,
                at,
                target,
            )
        })
        .collect();
    let run = |step: &crate::ops::Step| -> Result<f64> {
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for _ in 0..DISPATCHES {
                step.record(&mut pass);
            }
        }
        let t0 = Instant::now();
        ctx.queue.submit([encoder.finish()]);
        ctx.wait("tuning")?;
        Ok(t0.elapsed().as_secs_f64() * 1e3 / DISPATCHES as f64)
    };
    for step in &steps {
        run(step)?;
    }
    let mut best = vec![f64::INFINITY; steps.len()];
    for _ in 0..ROUNDS {
        for (b, step) in best.iter_mut().zip(&steps) {
            *b = b.min(run(step)?);
        }
    }
    Ok(best)
}

/// Timed rounds per shape, and dispatches per timed submit.
#[cfg(feature = "native")]
const ROUNDS: usize = 5;
#[cfg(feature = "native")]
const DISPATCHES: usize = 3;

/// Times every variant of `k`'s family on every conv shape of `graph` (the heads too, where
/// the family runs them as a conv) and returns the measurements, slowest shapes first.
/// Stops measuring new shapes once `budget` has passed: those keep the rule table's choice.
#[cfg(feature = "native")]
pub(crate) fn measure(
    ctx: &GpuContext,
    k: &Kernels,
    weights: &wgpu::Buffer,
    packed: &Packed,
    graph: &Graph,
    budget: Duration,
) -> Result<Vec<TunedShape>> {
    let path = k.conv.path;
    let mut shapes: Vec<(ConvShape, String, PackedAt)> = Vec::new();
    for op in &graph.ops {
        let found = match op {
            Op::Conv { layer, shape, .. } => {
                Some((*shape, layer.name.clone(), packed.at[&layer.name]))
            }
            Op::Heads {
                level, src, size, ..
            } if path == KernelPath::Subgroup => Some((
                head_shape(size, graph.tensors[*src].c),
                format!("heads.{level}"),
                packed.heads[*level],
            )),
            _ => None,
        };
        if let Some(f) = found {
            if !shapes.iter().any(|(s, _, _)| *s == f.0) {
                shapes.push(f);
            }
        }
    }
    let start = Instant::now();
    let mut out = Vec::new();
    for (shape, layer, at) in shapes {
        if start.elapsed() > budget {
            break;
        }
        let src_bytes = (shape.in_w as u64 * shape.in_h as u64 + 1) * shape.in_c as u64 * 4;
        let dst_bytes = shape.out_w() as u64 * shape.out_h() as u64 * shape.out_c as u64 * 4;
        let src = storage_buffer(ctx, "tune input", src_bytes);
        let dst = storage_buffer(ctx, "tune output", dst_bytes);
        let variants: Vec<Variant> = Variant::of(path)
            .into_iter()
            .filter(|v| v.runs(&shape))
            .collect();
        let times = time_variants(ctx, k, shape, &variants, &src, weights, at, &dst)?;
        let candidates: Vec<(Variant, f64)> = variants.into_iter().zip(times).collect();
        let chosen = candidates
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|c| c.0)
            .unwrap_or_else(|| Variant::for_shape(path, &shape));
        out.push(TunedShape {
            shape,
            layer,
            candidates,
            chosen,
            rule: Variant::for_shape(path, &shape),
        });
    }
    Ok(out)
}

/// `WxHxC-O-kK-sS`: input size and channels, output channels, kernel size, stride.
#[cfg(feature = "native")]
fn shape_name(s: &ConvShape) -> String {
    format!(
        "{}x{}x{}-{}-k{}-s{}",
        s.in_w, s.in_h, s.in_c, s.out_c, s.ksize, s.stride
    )
}

#[cfg(feature = "native")]
fn parse_shape(name: &str) -> Option<ConvShape> {
    let mut parts = name.split('-');
    let dims: Vec<u32> = parts
        .next()?
        .split('x')
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let out_c = parts.next()?.parse().ok()?;
    let ksize = parts.next()?.strip_prefix('k')?.parse().ok()?;
    let stride = parts.next()?.strip_prefix('s')?.parse().ok()?;
    let [in_w, in_h, in_c] = dims[..] else {
        return None;
    };
    let shape = ConvShape {
        in_w,
        in_h,
        in_c,
        out_c,
        ksize,
        stride,
    };
    // A hand-edited or foreign entry must not make a kernel divide by zero.
    let sane = in_w > 0
        && in_h > 0
        && in_c > 0
        && in_c.is_multiple_of(4)
        && out_c > 0
        && (1..=7).contains(&ksize)
        && (1..=2).contains(&stride);
    sane.then_some(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> ConvShape {
        ConvShape {
            in_w: 80,
            in_h: 60,
            in_c: 64,
            out_c: 64,
            ksize: 3,
            stride: 1,
        }
    }

    #[test]
    fn shape_names_round_trip() {
        assert_eq!(parse_shape(&shape_name(&shape())), Some(shape()));
        for bad in [
            "",
            "80x60-64-k3-s1",
            "80x60x63-64-k3-s1",
            "0x60x64-64-k3-s1",
            "a-b-c-d",
        ] {
            assert_eq!(parse_shape(bad), None, "{bad}");
        }
    }

    #[test]
    fn save_and_load_keep_other_adapters_and_survive_damage() {
        let dir = std::env::temp_dir().join(format!("rf-tuning-{}", std::process::id()));
        let file = dir.join(FILE);
        let mut a = Tuning::default();
        a.set(shape(), Variant::Subgroup4x16);
        a.save(&file, "adapter A").unwrap();
        let mut b = Tuning::default();
        b.set(shape(), Variant::Portable2x16);
        b.save(&file, "adapter B").unwrap();
        assert_eq!(Tuning::load(&file, "adapter A"), a);
        assert_eq!(Tuning::load(&file, "adapter B"), b);
        assert!(Tuning::load(&file, "adapter C").is_empty());
        std::fs::write(&file, b"{ not json").unwrap();
        assert!(Tuning::load(&file, "adapter A").is_empty());
        // A damaged file is replaced by the next save.
        a.save(&file, "adapter A").unwrap();
        assert_eq!(Tuning::load(&file, "adapter A"), a);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn choices_apply_only_where_the_variant_runs() {
        let s = shape();
        let one = ConvShape { ksize: 1, ..s };
        let mut t = Tuning::default();
        t.set(s, Variant::Subgroup4x8);
        assert_eq!(t.variant(KernelPath::Subgroup, &s), Variant::Subgroup4x8);
        // Another family's detector ignores it.
        assert_eq!(
            t.variant(KernelPath::Portable, &s),
            Variant::for_shape(KernelPath::Portable, &s)
        );
        let forced = Tuning::forcing(Variant::Subgroup3x3s1);
        assert_eq!(
            forced.variant(KernelPath::Subgroup, &s),
            Variant::Subgroup3x3s1
        );
        assert_eq!(
            forced.variant(KernelPath::Subgroup, &one),
            Variant::for_shape(KernelPath::Subgroup, &one)
        );
    }
}

//! `retinaface info`: the adapter, its limits and the weights a run would use.

use std::path::PathBuf;

use clap::Args;
use retinaface::model::weights::{self, Weights};
use retinaface::GpuContext;

use crate::console::print;
use crate::fatal::Fatal;

/// `retinaface info --help`'s closing text.
pub const AFTER_HELP: &str = "Exit codes: 0 adapter and weights found, 2 either is missing.";

#[derive(Args)]
pub struct InfoArgs {
    #[arg(long)]
    weights: Option<PathBuf>,
}

pub fn run(args: InfoArgs) -> Result<bool, Fatal> {
    let mut ok = true;
    let mut text = format!("retinaface {}\n", env!("CARGO_PKG_VERSION"));
    match GpuContext::new() {
        Ok(ctx) => {
            if let Some(a) = &ctx.adapter_info {
                text += &format!("adapter:    {} ({:?})\n", a.name, a.device_type);
                text += &format!("backend:    {:?}\n", a.backend);
                text += &format!("driver:     {} {}\n", a.driver, a.driver_info);
            }
            let timestamps = ctx
                .device
                .features()
                .contains(retinaface::wgpu::Features::TIMESTAMP_QUERY);
            text += &format!(
                "timestamps: {}\n",
                if timestamps {
                    "yes (bench shows GPU time per shader)"
                } else {
                    "no"
                }
            );
            let path = ctx.kernel_path();
            let sub = ctx.device.adapter_info();
            text += &format!(
                "kernels:    {} (subgroups: {}, {}..{} lanes; RETINAFACE_KERNELS=portable forces the portable ones)\n",
                match path {
                    retinaface::KernelPath::Subgroup => "subgroup",
                    retinaface::KernelPath::Portable => "portable",
                },
                if ctx.device.features().contains(retinaface::wgpu::Features::SUBGROUP) {
                    "yes"
                } else {
                    "no"
                },
                sub.subgroup_min_size,
                sub.subgroup_max_size,
            );
            let l = ctx.limits();
            text += "limits:\n";
            let rows: [(&str, u64); 7] = [
                ("max_buffer_size", l.max_buffer_size),
                (
                    "max_storage_buffer_binding_size",
                    l.max_storage_buffer_binding_size,
                ),
                (
                    "max_storage_buffers_per_shader_stage",
                    l.max_storage_buffers_per_shader_stage as u64,
                ),
                (
                    "max_compute_workgroup_storage_size",
                    l.max_compute_workgroup_storage_size as u64,
                ),
                (
                    "max_compute_invocations_per_workgroup",
                    l.max_compute_invocations_per_workgroup as u64,
                ),
                (
                    "max_compute_workgroups_per_dimension",
                    l.max_compute_workgroups_per_dimension as u64,
                ),
                ("max_bind_groups", l.max_bind_groups as u64),
            ];
            for (name, v) in rows {
                text += &format!("  {name:<40} {v}{}\n", mib(v));
            }
        }
        Err(e) => {
            text += &format!("adapter:    none: {e}\n");
            ok = false;
        }
    }
    let loaded = weights::resolve(args.weights.as_deref())
        .and_then(|path| Weights::load(&path).map(|w| (path, w)));
    match loaded {
        Ok((path, w)) => {
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let packed = w.pack();
            text += &format!(
                "weights:    {} ({bytes} bytes; {} convolutions, {} parameters after batch-norm folding)\n",
                path.display(),
                w.convs.len() + 3 * w.heads.len(),
                packed.data.len()
            );
        }
        Err(e) => {
            text += &format!("weights:    not usable: {e}\n");
            ok = false;
        }
    }
    print(&text)?;
    if ok {
        Ok(true)
    } else {
        Err(Fatal("setup incomplete (see above)".into()))
    }
}

fn mib(v: u64) -> String {
    if v >= 1 << 20 {
        format!(" ({} MiB)", v >> 20)
    } else {
        String::new()
    }
}

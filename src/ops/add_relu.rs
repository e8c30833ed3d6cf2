//! Host side of `shaders/add_relu.wgsl`: ResNet's residual join `x = relu(x + identity)`
//! (or without the ReLU), in place on the bottleneck's output.

use std::sync::Arc;

use super::{div_ceil, Kernel, Slot, Step, Workgroups};
use crate::gpu::GpuContext;

pub const SOURCE: &str = include_str!("../../shaders/add_relu.wgsl");

/// Invocations per workgroup; must match the shader's `@workgroup_size`.
const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    row: u32,
    relu: u32,
    _pad: u32,
}

pub(crate) fn kernel(ctx: &GpuContext) -> Arc<Kernel> {
    Kernel::new(
        ctx,
        "add_relu",
        SOURCE,
        "main",
        &[Slot::Uniform, Slot::Read, Slot::ReadWrite],
    )
}

/// `x[..n] = relu(x[..n] + identity[..n])`, without the ReLU unless `relu`.
fn params(n: u32, relu: bool) -> (Params, [u32; 3]) {
    let (gx, gy) = super::grid_2d(div_ceil(n, WG));
    let params = Params {
        n,
        row: gx * WG,
        relu: relu as u32,
        _pad: 0,
    };
    (params, [gx, gy, 1])
}

pub(crate) fn step(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    label: &str,
    n: u32,
    relu: bool,
    identity: &wgpu::Buffer,
    x: &wgpu::Buffer,
) -> Step {
    let (params, workgroups) = params(n, relu);
    Step::with_uniform(
        ctx,
        kernel,
        label,
        &params,
        &[identity, x],
        Workgroups::Direct(workgroups),
    )
}

/// The op over chunks of the `n` elements, bound as windows that start exactly on a chunk
/// (chunks are whole multiples of the offset alignment), so the shader runs unchanged.
#[allow(clippy::too_many_arguments)]
pub(crate) fn banded_steps(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    limits: &super::band::BindLimits,
    label: &str,
    n: u32,
    relu: bool,
    identity: &wgpu::Buffer,
    x: &wgpu::Buffer,
) -> Option<Vec<Step>> {
    super::band::chunked_steps(
        ctx,
        kernel,
        limits,
        label,
        (n, (limits.align / 4) as u32, 4),
        &[identity, x],
        &[true, true],
        |len| params(len, relu),
    )
}

/// CPU reference, in place on `x`.
pub fn cpu(identity: &[f32], x: &mut [f32], relu: bool) {
    for (v, i) in x.iter_mut().zip(identity) {
        let s = *v + *i;
        *v = if relu { s.max(0.0) } else { s };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{download_f32, upload_f32};
    use crate::ops::run_steps;
    use crate::ops::testutil::{ctx, Rng};

    fn check(n: usize, seed: u64) {
        for relu in [true, false] {
            check_with(n, seed, relu);
        }
    }

    fn check_with(n: usize, seed: u64, relu: bool) {
        let ctx = ctx();
        let mut rng = Rng(seed);
        let identity = rng.vec(n);
        let mut x = rng.vec(n);
        // A tail past n (the zero pixel convolutions read) must stay untouched.
        let mut x_buf = x.clone();
        x_buf.extend([-3.0; 5]);
        let (ib, xb) = (
            upload_f32(ctx, "id", &identity),
            upload_f32(ctx, "x", &x_buf),
        );
        run_steps(
            ctx,
            &[step(
                ctx,
                &kernel(ctx),
                "add_relu",
                n as u32,
                relu,
                &ib,
                &xb,
            )],
        );
        let gpu = download_f32(ctx, &xb, n + 5).unwrap();
        cpu(&identity, &mut x, relu);
        // One rounding (the add) on both sides: exact agreement.
        assert_eq!(&gpu[..n], &x[..], "n = {n}");
        assert_eq!(&gpu[n..], &[-3.0; 5], "n = {n}: wrote past n");
        if n > 100 {
            // Both signs come in: the ReLU zeroes the negative sums, no ReLU keeps them.
            if relu {
                assert!(x.contains(&0.0));
            } else {
                assert!(x.iter().any(|v| *v < 0.0));
            }
            assert!(x.iter().any(|v| *v > 0.0));
        }
    }

    #[test]
    fn odd_lengths() {
        for (i, n) in [1usize, 255, 257, 13 * 7 * 33].into_iter().enumerate() {
            check(n, 60 + i as u64);
        }
    }

    #[test]
    fn folds_into_2d_grid_past_65535_groups() {
        // 65536 workgroups of 256 need a second grid row.
        check(256 * 65535 + 300, 70);
    }
}

//! One host module per shader in `shaders/`: its parameters, pipeline, bind group, dispatch
//! size, and a plain-Rust CPU reference that the tests compare the GPU against.

pub mod add_relu;
pub mod affine;
pub mod band;
pub mod conv;
pub mod decode;
pub mod depthwise;
pub mod heads;
pub mod maxpool;
pub mod nms;
pub mod preprocess;
pub mod sort;
pub mod upsample_add;
pub mod warp;

use std::sync::Arc;

use crate::gpu::GpuContext;

/// How a shader binding is declared; the order of the slice is the binding number.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Slot {
    Uniform,
    Read,
    ReadWrite,
    /// A 2D float texture read with `textureLoad`.
    Texture,
    /// A binding number this entry point does not use (another entry point of the same
    /// shader file does).
    Skip,
}

/// A compiled compute pipeline and the bind group layout of its single group.
#[derive(Debug)]
pub(crate) struct Kernel {
    pub name: &'static str,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

impl Kernel {
    pub fn new(
        ctx: &GpuContext,
        name: &'static str,
        source: &str,
        entry: &str,
        slots: &[Slot],
    ) -> Arc<Self> {
        Self::with_constants(ctx, name, source, entry, slots, &[])
    }

    /// Like [`Kernel::new`] with values for the shader's `override` constants (e.g. the
    /// `BANDED` variant of a convolution).
    pub fn with_constants(
        ctx: &GpuContext,
        name: &'static str,
        source: &str,
        entry: &str,
        slots: &[Slot],
        constants: &[(&str, f64)],
    ) -> Arc<Self> {
        let entries: Vec<_> = slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| !matches!(slot, Slot::Skip))
            .map(|(i, slot)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: match slot {
                    Slot::Uniform => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    Slot::Read | Slot::ReadWrite => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage {
                            read_only: matches!(slot, Slot::Read),
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    Slot::Texture => wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: false },
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                    Slot::Skip => unreachable!("filtered out above"),
                },
                count: None,
            })
            .collect();
        let layout = ctx
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(name),
                entries: &entries,
            });
        let module = ctx
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline_layout = ctx
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(name),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = ctx
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            });
        Arc::new(Self {
            name,
            pipeline,
            layout,
        })
    }

    /// Binds whole buffers, in slot order.
    pub fn bind(&self, ctx: &GpuContext, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let windows: Vec<_> = buffers
            .iter()
            .map(|b| b.as_entire_buffer_binding())
            .collect();
        self.bind_windows(ctx, &windows)
    }

    /// Binds buffer windows (offset and size), in slot order.
    pub fn bind_windows(
        &self,
        ctx: &GpuContext,
        windows: &[wgpu::BufferBinding<'_>],
    ) -> wgpu::BindGroup {
        let entries: Vec<_> = windows
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(b.clone()),
            })
            .collect();
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.name),
            layout: &self.layout,
            entries: &entries,
        })
    }
}

/// How many workgroups a step launches.
#[derive(Debug)]
pub(crate) enum Workgroups {
    Direct([u32; 3]),
    /// Counts written by an earlier shader (e.g. NMS sized by the number of candidates).
    Indirect(wgpu::Buffer, u64),
}

/// One recorded dispatch of a plan: built once per input size, replayed for every image.
#[derive(Debug)]
pub(crate) struct Step {
    pub label: String,
    pub kernel: Arc<Kernel>,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: Workgroups,
}

impl Step {
    /// A step whose binding 0 is a new uniform buffer holding `params` and whose next
    /// bindings are `buffers`, in order: the shape of most ops.
    pub fn with_uniform<P: bytemuck::Pod>(
        ctx: &GpuContext,
        kernel: &Arc<Kernel>,
        label: &str,
        params: &P,
        buffers: &[&wgpu::Buffer],
        workgroups: Workgroups,
    ) -> Step {
        let uniform = crate::gpu::uniform_buffer(ctx, label, params);
        let all: Vec<&wgpu::Buffer> = std::iter::once(&uniform)
            .chain(buffers.iter().copied())
            .collect();
        Step {
            label: label.to_string(),
            kernel: kernel.clone(),
            bind_group: kernel.bind(ctx, &all),
            workgroups,
        }
    }

    /// Like [`Step::with_uniform`] with windows of buffers (banded ops, see [`band`]).
    pub fn with_uniform_windows<P: bytemuck::Pod>(
        ctx: &GpuContext,
        kernel: &Arc<Kernel>,
        label: &str,
        params: &P,
        windows: &[wgpu::BufferBinding<'_>],
        workgroups: Workgroups,
    ) -> Step {
        let uniform = crate::gpu::uniform_buffer(ctx, label, params);
        let all: Vec<wgpu::BufferBinding<'_>> = std::iter::once(uniform.as_entire_buffer_binding())
            .chain(windows.iter().cloned())
            .collect();
        Step {
            label: label.to_string(),
            kernel: kernel.clone(),
            bind_group: kernel.bind_windows(ctx, &all),
            workgroups,
        }
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.kernel.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        match &self.workgroups {
            Workgroups::Direct([x, y, z]) => pass.dispatch_workgroups(*x, *y, *z),
            Workgroups::Indirect(buf, off) => pass.dispatch_workgroups_indirect(buf, *off),
        }
    }
}

/// Records `steps` into one compute pass of a new encoder and submits it; for tests of single ops.
#[cfg(test)]
pub(crate) fn run_steps(ctx: &GpuContext, steps: &[Step]) {
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        for s in steps {
            s.record(&mut pass);
        }
    }
    ctx.queue.submit([encoder.finish()]);
}

pub(crate) fn div_ceil(a: u32, b: u32) -> u32 {
    a.div_ceil(b)
}

/// `groups` workgroups laid out as (x, y) within the 65535-per-dimension limit: x as large as
/// allowed, the rest in y. Shaders flatten with `gid.y * x * workgroup_size + gid.x`.
pub(crate) fn grid_2d(groups: u32) -> (u32, u32) {
    let x = groups.clamp(1, 65535);
    (x, div_ceil(groups, x))
}

/// Activation fused into a convolution's epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Activation {
    None = 0,
    Relu = 1,
    /// LeakyReLU with slope 0.1, as in the MobileNet and FPN/SSH blocks of RetinaFace.
    Leaky = 2,
}

impl Activation {
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Activation::None => v,
            Activation::Relu => v.max(0.0),
            Activation::Leaky => {
                if v >= 0.0 {
                    v
                } else {
                    v * 0.1
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use std::sync::OnceLock;

    use crate::gpu::GpuContext;

    /// One device for all tests of a binary: lavapipe is slow to open and is `Sync`.
    pub fn ctx() -> &'static GpuContext {
        static CTX: OnceLock<GpuContext> = OnceLock::new();
        CTX.get_or_init(|| GpuContext::new().expect("tests need a wgpu adapter (lavapipe on CI)"))
    }

    /// Small deterministic generator so failures reproduce.
    pub struct Rng(pub u64);
    impl Rng {
        pub fn next_f32(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
        pub fn vec(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| self.next_f32()).collect()
        }
    }

    /// GPU and CPU agree when every element is within `rel` of the output's largest magnitude:
    /// element-wise relative error is meaningless for values near zero after long sums.
    pub fn assert_close(gpu: &[f32], cpu: &[f32], rel: f32, what: &str) {
        assert_eq!(gpu.len(), cpu.len(), "{what}: length");
        let scale = cpu.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
            assert!(
                approx::abs_diff_eq!(*g, *c, epsilon = rel * scale),
                "{what}: element {i}: gpu {g} cpu {c} (scale {scale})"
            );
        }
    }
}

//! Device acquisition: our own instance/adapter/device, or the caller's device and queue.

mod buffers;
pub(crate) mod profiler;

#[cfg(test)]
pub(crate) use buffers::read_buffer;
pub use buffers::{download_f32, upload_f32};
pub(crate) use buffers::{map_and_copy, storage_buffer, uniform_buffer};

use crate::error::{Error, Result};

/// Which family of kernels runs the convolutions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelPath {
    /// Weights shared between lanes with `subgroupBroadcast`.
    Subgroup,
    /// No optional features: WebGPU without subgroups, GL, small-subgroup adapters.
    Portable,
}

impl KernelPath {
    /// The fastest family `device` supports.
    pub fn best_for(device: &wgpu::Device) -> KernelPath {
        let info = device.adapter_info();
        if device.features().contains(wgpu::Features::SUBGROUP) && info.subgroup_min_size >= 8 {
            KernelPath::Subgroup
        } else {
            KernelPath::Portable
        }
    }

    /// Whether `device` can run this family.
    pub fn supported_by(self, device: &wgpu::Device) -> bool {
        self == KernelPath::Portable || KernelPath::best_for(device) == KernelPath::Subgroup
    }
}

/// A device and queue the detector runs on, with the limits it may use.
///
/// Cheap to clone: wgpu's handles are reference counted.
#[derive(Clone, Debug)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    /// `None` when the caller handed us a device without its adapter.
    pub adapter_info: Option<wgpu::AdapterInfo>,
}

impl GpuContext {
    /// Opens the default adapter, honouring `WGPU_BACKEND`, `WGPU_ADAPTER_NAME` and
    /// `WGPU_POWER_PREF`, and asks for the adapter's own limits: the defaults (128 MiB per
    /// binding, 8 storage buffers per stage) are smaller than what most adapters give.
    pub fn new() -> Result<Self> {
        pollster::block_on(Self::new_async())
    }

    pub async fn new_async() -> Result<Self> {
        let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        let backends = format!("{:?}", desc.backends);
        let instance = wgpu::Instance::new(desc);
        let adapter = wgpu::util::initialize_adapter_from_env_or_default(&instance, None)
            .await
            .map_err(|_| Error::NoAdapter { backends })?;
        let info = adapter.get_info();
        // Timestamps are optional: profiling is off where the adapter lacks them.
        // Subgroups are optional too: they pick the faster kernels (`KernelPath`).
        let wanted = wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
            | wgpu::Features::SUBGROUP;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("retinaface"),
                required_features: adapter.features() & wanted,
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::DeviceRequest {
                adapter: info.name.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            device,
            queue,
            adapter_info: Some(info),
        })
    }

    /// Runs on a device the caller already has (a game's or a renderer's).
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        Self {
            device,
            queue,
            adapter_info: None,
        }
    }

    /// The kernel family this device runs: subgroup kernels where the device has
    /// `Features::SUBGROUP` and subgroups of at least 8 lanes (the kernels hand out 8-vec4
    /// weight blocks from lanes 0..7), the portable ones elsewhere. `RETINAFACE_KERNELS=portable`
    /// forces the portable family (to test or compare it on any adapter).
    pub fn kernel_path(&self) -> KernelPath {
        if std::env::var("RETINAFACE_KERNELS").as_deref() == Ok("portable") {
            return KernelPath::Portable;
        }
        KernelPath::best_for(&self.device)
    }

    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// The largest storage buffer one shader binding may see.
    pub fn max_binding_bytes(&self) -> u64 {
        let l = self.device.limits();
        l.max_storage_buffer_binding_size.min(l.max_buffer_size)
    }

    /// Blocks until all submitted work is done, turning a lost device into an error.
    pub(crate) fn wait(&self, stage: &str) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu {
                stage: stage.to_string(),
                reason: e.to_string(),
            })
    }
}

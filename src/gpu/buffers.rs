//! Buffer creation and the one blocking readback path.

use wgpu::util::DeviceExt;

use super::GpuContext;
use crate::error::Result;

pub(crate) fn uniform_buffer<T: bytemuck::Pod>(
    ctx: &GpuContext,
    label: &str,
    value: &T,
) -> wgpu::Buffer {
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::bytes_of(value),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
}

/// A storage buffer of at least `bytes` bytes (never zero: wgpu rejects empty bindings).
pub(crate) fn storage_buffer(ctx: &GpuContext, label: &str, bytes: u64) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.max(16).next_multiple_of(16),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::INDIRECT,
        mapped_at_creation: false,
    })
}

/// Copies `bytes` bytes from the start of `buffer` back to the CPU and waits for them.
#[cfg(feature = "native")]
pub(crate) fn read_buffer(ctx: &GpuContext, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
    let size = bytes.next_multiple_of(4).max(4);
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
    ctx.queue.submit([encoder.finish()]);
    map_and_copy(ctx, &staging, bytes as usize)
}

/// Maps an already filled MAP_READ buffer and copies its first `bytes` bytes out.
#[cfg(feature = "native")]
pub(crate) fn map_and_copy(
    ctx: &GpuContext,
    staging: &wgpu::Buffer,
    bytes: usize,
) -> Result<Vec<u8>> {
    pollster::block_on(map_and_copy_async(ctx, staging, bytes))
}

/// [`map_and_copy`] for async callers: natively the wait inside completes the mapping; in a
/// browser the mapping completes while this awaits it.
pub(crate) async fn map_and_copy_async(
    ctx: &GpuContext,
    staging: &wgpu::Buffer,
    bytes: usize,
) -> Result<Vec<u8>> {
    let slice = staging.slice(..);
    let (done, mapped) = super::callback();
    slice.map_async(wgpu::MapMode::Read, done);
    ctx.wait("readback")?;
    // A lost device may never call the mapping back: do not wait for it then.
    ctx.check_alive()?;
    mapped
        .await
        .ok_or_else(|| ctx.fault("readback", "the mapping callback was dropped"))?
        .map_err(|e| ctx.fault("readback", e))?;
    let data = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| ctx.fault("readback", e))?;
        view[..bytes].to_vec()
    };
    staging.unmap();
    Ok(data)
}

/// A storage buffer holding `data`; for tests and tools that feed a tensor in directly.
pub fn upload_f32(ctx: &GpuContext, label: &str, data: &[f32]) -> wgpu::Buffer {
    if data.is_empty() {
        return storage_buffer(ctx, label, 16);
    }
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::INDIRECT,
        })
}

/// Reads `len` floats back from `buffer`; blocking, never used on the detection path.
#[cfg(feature = "native")]
pub fn download_f32(ctx: &GpuContext, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
    let bytes = read_buffer(ctx, buffer, (len * 4) as u64)?;
    Ok(bytemuck::cast_slice(&bytes).to_vec())
}

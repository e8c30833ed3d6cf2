//! GPU timestamps around every dispatch: each step gets its own compute pass whose beginning
//! and end are timestamped, so the report is per shader invocation, not per frame.

use super::GpuContext;
use crate::error::Result;

/// Timestamp queries for up to `capacity` passes, reused from run to run.
pub(crate) struct Timestamps {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
    capacity: u32,
    period_ns: f32,
}

impl Timestamps {
    /// `None` when the device was opened without `TIMESTAMP_QUERY`.
    pub fn new(ctx: &GpuContext, capacity: u32) -> Option<Self> {
        if !ctx
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return None;
        }
        let count = (capacity * 2).min(wgpu::QUERY_SET_MAX_QUERIES);
        let bytes = count as u64 * 8;
        Some(Self {
            set: ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolve: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            staging: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            capacity: count / 2,
            period_ns: ctx.queue.get_timestamp_period(),
        })
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The timestamp writes for pass `i`.
    pub fn writes(&self, i: u32) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: Some(2 * i),
            end_of_pass_write_index: Some(2 * i + 1),
        }
    }

    /// Resolves the first `passes` passes' timestamps at the end of `encoder`.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder, passes: u32) {
        encoder.resolve_query_set(&self.set, 0..passes * 2, &self.resolve, 0);
    }

    /// Reads the durations (ns) of the first `passes` passes. Call after the submit that
    /// resolved them; the copy goes in an encoder of its own (wgpu #6406).
    pub async fn read(&self, ctx: &GpuContext, passes: u32) -> Result<Vec<f64>> {
        let bytes = passes as u64 * 16;
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.staging, 0, bytes);
        ctx.queue.submit([encoder.finish()]);
        let raw = super::map_and_copy_async(ctx, &self.staging, bytes as usize).await?;
        // A Vec<u8> need not be 8-byte aligned: decode rather than cast.
        let ticks: Vec<u64> = raw
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .collect();
        Ok(ticks
            .chunks_exact(2)
            .map(|t| t[1].saturating_sub(t[0]) as f64 * self.period_ns as f64)
            .collect())
    }
}

//! Banded execution: an op whose buffers are larger than one storage binding may see runs as
//! several dispatches over horizontal bands of its output rows, each binding only the rows it
//! writes and the rows (with the halo its kernel needs) it reads, as windows of the buffers at
//! offsets that respect the device's `min_storage_buffer_offset_alignment`. The shaders take
//! the band's first row and where each window starts in its tensor (`*_base`), so their index
//! arithmetic stays that of the whole tensor. A 12-megapixel photo at its own size has a
//! 150 MB network input on a device with 128 MiB bindings; with bands every tensor up to
//! `max_buffer_size` runs.

use std::num::NonZeroU64;
use std::sync::Arc;

use super::{Kernel, Step, Workgroups};
use crate::gpu::GpuContext;

/// How much of a buffer one binding may see, and where a binding may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindLimits {
    /// Bytes one storage binding may cover.
    pub max_binding: u64,
    /// Bytes one buffer may hold.
    pub max_buffer: u64,
    /// Offsets of storage bindings are multiples of this (a multiple of 16, so that windows
    /// of vec4 arrays start on whole vec4s).
    pub align: u64,
}

impl BindLimits {
    /// The device's limits.
    pub fn of(ctx: &GpuContext) -> Self {
        let l = ctx.limits();
        let align = l.min_storage_buffer_offset_alignment.max(1) as u64;
        Self {
            max_binding: ctx.max_binding_bytes(),
            max_buffer: l.max_buffer_size,
            align: lcm(align.next_power_of_two(), 16),
        }
    }

    /// Whether `buffer` can be bound whole.
    pub fn binds_whole(&self, buffer: &wgpu::Buffer) -> bool {
        buffer.size() <= self.max_binding
    }

    /// The window of a `buffer_size`-byte buffer that covers bytes `start..end`: the offset
    /// rounded down to the alignment, the end rounded up to 16 bytes (within the buffer).
    pub fn span(&self, buffer_size: u64, start: u64, end: u64) -> (u64, u64) {
        let offset = start - start % self.align;
        let end = end.next_multiple_of(16).min(buffer_size);
        (offset, end.max(offset + 16) - offset)
    }

    /// Whether the window over `start..end` of a `buffer_size`-byte buffer fits a binding.
    pub fn fits(&self, buffer_size: u64, start: u64, end: u64) -> bool {
        self.span(buffer_size, start, end).1 <= self.max_binding
    }

    /// The binding of bytes `start..end` of `buffer` and the byte offset where it starts.
    pub fn window<'a>(
        &self,
        buffer: &'a wgpu::Buffer,
        start: u64,
        end: u64,
    ) -> (wgpu::BufferBinding<'a>, u64) {
        let (offset, size) = self.span(buffer.size(), start, end);
        (
            wgpu::BufferBinding {
                buffer,
                offset,
                size: NonZeroU64::new(size),
            },
            offset,
        )
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

pub(crate) fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
}

/// Splits rows `0..n` into consecutive bands `[y0, y1)` for which `fits(y0, y1)` holds, each
/// as tall as fits allows (`fits` must be monotone: a band that fits still fits shortened).
/// `None` when not even one row fits.
pub(crate) fn split(n: u32, fits: impl Fn(u32, u32) -> bool) -> Option<Vec<(u32, u32)>> {
    let mut bands = Vec::new();
    let mut y0 = 0;
    while y0 < n {
        if !fits(y0, y0 + 1) {
            return None;
        }
        // The largest y1 that fits: binary search over y0 + 1 ..= n.
        let (mut lo, mut hi) = (y0 + 1, n);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(y0, mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        bands.push((y0, lo));
        y0 = lo;
    }
    Some(bands)
}

/// An op over `rows` output rows as one dispatch per band. `buffers` are the op's bindings
/// after the uniform; `ranges(y0, y1)` gives, per buffer, the bytes rows `y0..y1` touch
/// (`None`: bound whole, e.g. the weights or the raw head outputs, which the plan has checked
/// against the device's binding size); `params(y0, y1, offsets)` the band's parameters and
/// workgroups, given where each buffer's window starts (bytes; 0 for a whole buffer).
/// `None` when not even one row fits a binding.
#[allow(clippy::too_many_arguments)]
pub(crate) fn steps<P: bytemuck::Pod>(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    limits: &BindLimits,
    label: &str,
    rows: u32,
    buffers: &[&wgpu::Buffer],
    ranges: impl Fn(u32, u32) -> Vec<Option<(u64, u64)>>,
    params: impl Fn(u32, u32, &[u64]) -> (P, [u32; 3]),
) -> Option<Vec<Step>> {
    let fits = |y0, y1| {
        buffers.iter().zip(ranges(y0, y1)).all(|(b, r)| match r {
            Some((start, end)) => limits.fits(b.size(), start, end),
            None => true,
        })
    };
    let bands = split(rows, fits)?;
    let n = bands.len();
    let steps = bands.into_iter().enumerate().map(|(i, (y0, y1))| {
        let (windows, offsets): (Vec<_>, Vec<_>) = buffers
            .iter()
            .zip(ranges(y0, y1))
            .map(|(b, r)| match r {
                Some((start, end)) => limits.window(b, start, end),
                None => (b.as_entire_buffer_binding(), 0),
            })
            .unzip();
        let (p, workgroups) = params(y0, y1, &offsets);
        let label = match n {
            1 => label.to_string(),
            _ => format!("{label} (band {}/{n})", i + 1),
        };
        Step::with_uniform_windows(
            ctx,
            kernel,
            &label,
            &p,
            &windows,
            Workgroups::Direct(workgroups),
        )
    });
    Some(steps.collect())
}

/// An element-wise op over `n` elements of `elem` bytes as one dispatch per chunk of whole
/// `unit`-element blocks; `windowed[i]` says whether buffer `i` is bound as the chunk's
/// window (else whole). A window starts exactly on its chunk (`unit * elem` is a multiple of
/// the alignment), so the shader indexes from 0 and only needs the chunk's length, which
/// `params(len)` turns into its parameters and workgroups.
#[allow(clippy::too_many_arguments)]
pub(crate) fn chunked_steps<P: bytemuck::Pod>(
    ctx: &GpuContext,
    kernel: &Arc<Kernel>,
    limits: &BindLimits,
    label: &str,
    (n, unit, elem): (u32, u32, u64),
    buffers: &[&wgpu::Buffer],
    windowed: &[bool],
    params: impl Fn(u32) -> (P, [u32; 3]),
) -> Option<Vec<Step>> {
    debug_assert_eq!(
        (unit as u64 * elem) % limits.align,
        0,
        "chunks start aligned"
    );
    let range = move |y0: u32, y1: u32| (y0 * unit, (y1 * unit).min(n));
    steps(
        ctx,
        kernel,
        limits,
        label,
        n.div_ceil(unit),
        buffers,
        |y0, y1| {
            let (a, b) = range(y0, y1);
            windowed
                .iter()
                .map(|&w| w.then_some((a as u64 * elem, b as u64 * elem)))
                .collect()
        },
        |y0, y1, _| {
            let (a, b) = range(y0, y1);
            params(b - a)
        },
    )
}

/// The input rows a k x k window of stride `s` and padding `pad` reads for output rows
/// `y0..y1`, within `0..in_h`.
pub(crate) fn input_rows(y0: u32, y1: u32, k: u32, s: u32, pad: u32, in_h: u32) -> (u32, u32) {
    let first = (y0 * s).saturating_sub(pad);
    let last = ((y1 - 1) * s + k).saturating_sub(pad).min(in_h);
    (first.min(last), last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_start_aligned_and_cover_the_range() {
        let l = BindLimits {
            max_binding: 1000,
            max_buffer: 1 << 20,
            align: 256,
        };
        assert_eq!(l.span(10_000, 300, 700), (256, 448));
        assert_eq!(l.span(10_000, 0, 5), (0, 16));
        // The end never passes the buffer.
        assert_eq!(l.span(710, 512, 709), (512, 198));
        assert!(l.fits(10_000, 300, 1248));
        assert!(!l.fits(10_000, 300, 1249));
        assert_eq!(lcm(4, 16), 16);
        assert_eq!(lcm(256, 16), 256);
        assert_eq!(lcm(48, 16), 48);
    }

    #[test]
    fn split_makes_the_fewest_bands_that_fit() {
        // Each row 10 units, bands of at most 35: 3 rows each.
        let b = split(10, |y0, y1| (y1 - y0) * 10 <= 35).unwrap();
        assert_eq!(b, vec![(0, 3), (3, 6), (6, 9), (9, 10)]);
        assert_eq!(split(4, |_, _| true).unwrap(), vec![(0, 4)]);
        assert!(split(4, |_, _| false).is_none());
        assert!(split(0, |_, _| false).unwrap().is_empty());
    }

    #[test]
    fn input_rows_include_the_halo_within_the_image() {
        // 3x3 stride 1 pad 1 over 10 rows.
        assert_eq!(input_rows(0, 4, 3, 1, 1, 10), (0, 5));
        assert_eq!(input_rows(4, 10, 3, 1, 1, 10), (3, 10));
        // 3x3 stride 2 pad 1: output row 2 reads input rows 3..6.
        assert_eq!(input_rows(2, 3, 3, 2, 1, 10), (3, 6));
        // 1x1 stride 1.
        assert_eq!(input_rows(5, 7, 1, 1, 0, 10), (5, 7));
    }
}

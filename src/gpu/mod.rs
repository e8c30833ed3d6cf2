//! Device acquisition: our own instance/adapter/device, or the caller's device and queue.

mod buffers;
mod callback;
pub(crate) mod profiler;

#[cfg(feature = "native")]
pub use buffers::download_f32;
#[cfg(feature = "native")]
pub(crate) use buffers::map_and_copy;
#[cfg(all(test, feature = "native"))]
pub(crate) use buffers::read_buffer;
pub use buffers::upload_f32;
pub(crate) use buffers::{map_and_copy_async, storage_buffer, uniform_buffer};
pub(crate) use callback::{callback, Callback};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
///
/// GPU faults come back as errors from the call that hit them: [`Error::DeviceLost`] once the
/// device is lost or destroyed, [`Error::OutOfMemory`] when an allocation fails, and
/// [`Error::Gpu`] for other errors wgpu reports. A device this crate opens
/// ([`GpuContext::new`]) gets a device-lost callback (for the reason in the error) and an
/// uncaptured-error handler that logs instead of wgpu's default panic; a device you hand in
/// ([`GpuContext::from_device`]) keeps its own callbacks, and its loss is still detected.
#[derive(Clone, Debug)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    /// `None` when the caller handed us a device without its adapter.
    pub adapter_info: Option<wgpu::AdapterInfo>,
    /// Why the device was lost, once known; shared by the clones of this context.
    lost: Arc<Mutex<Option<String>>>,
    /// Whether this crate opened the device, so may open another after a loss.
    owned: bool,
}

impl GpuContext {
    /// Opens the default adapter, honouring `WGPU_BACKEND`, `WGPU_ADAPTER_NAME` and
    /// `WGPU_POWER_PREF`, and asks for the adapter's own limits: the defaults (128 MiB per
    /// binding, 8 storage buffers per stage) are smaller than what most adapters give.
    #[cfg(feature = "native")]
    pub fn new() -> Result<Self> {
        pollster::block_on(Self::new_async())
    }

    /// [`GpuContext::new`] without blocking: in a browser (WebGPU) the adapter and device
    /// arrive through promises, so this is the way to open one there.
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
        let lost = Arc::new(Mutex::new(None));
        let on_lost = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            let why = match (reason, message.is_empty()) {
                (wgpu::DeviceLostReason::Destroyed, _) => "the device was destroyed".to_string(),
                (_, true) => "the driver reported the device lost".to_string(),
                (_, false) => message,
            };
            *on_lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        });
        // Every call of ours runs inside error scopes (`GpuContext::scoped`); errors outside
        // them come from other users of the device, and wgpu's default for those is a panic.
        device.on_uncaptured_error(Arc::new(|e| log::error!("uncaptured wgpu error: {e}")));
        Ok(Self {
            device,
            queue,
            adapter_info: Some(info),
            lost,
            owned: true,
        })
    }

    /// Runs on a device the caller already has (a game's or a renderer's). Its device-lost
    /// callback and uncaptured-error handler stay the caller's: a loss is found by probing
    /// the device when a call fails or a frame is read back.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        Self {
            device,
            queue,
            adapter_info: None,
            lost: Arc::new(Mutex::new(None)),
            owned: false,
        }
    }

    /// Whether this crate opened the device ([`GpuContext::new`]) rather than the caller
    /// ([`GpuContext::from_device`]); only then can [`crate::Detector::recover`] open a new one.
    pub fn owns_device(&self) -> bool {
        self.owned
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

    /// Blocks until all submitted work is done, turning a lost device into an error. In a
    /// browser the device is polled by the page's event loop and this returns at once: the
    /// async readbacks then await their mapping callbacks instead.
    pub(crate) fn wait(&self, stage: &str) -> Result<()> {
        self.wait_for(None, stage)
    }

    /// Blocks until submission `index` (all work when `None`) is done.
    ///
    /// wgpu's `Device::poll` panics ("Error in Device::poll") when the driver reports the
    /// device lost during the wait, instead of returning an error; that panic is caught here
    /// and becomes [`Error::DeviceLost`], so a driver reset cannot take the caller down.
    pub(crate) fn wait_for(&self, index: Option<wgpu::SubmissionIndex>, stage: &str) -> Result<()> {
        let poll = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.device.poll(wgpu::PollType::Wait {
                submission_index: index,
                timeout: None,
            })
        }));
        match poll {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.fault(stage, e)),
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "wgpu panicked while waiting for the GPU".into());
                self.mark_lost(reason.trim());
                Err(self.lost_error().unwrap_or(Error::DeviceLost { reason }))
            }
        }
    }

    /// The error for a failure during `stage`: [`Error::DeviceLost`] if the device is gone
    /// (what failed then is only a consequence), else [`Error::Gpu`].
    pub(crate) fn fault(&self, stage: &str, reason: impl std::fmt::Display) -> Error {
        self.lost_error().unwrap_or_else(|| Error::Gpu {
            stage: stage.to_string(),
            reason: reason.to_string(),
        })
    }

    /// `Err(DeviceLost)` once the device is lost or destroyed.
    pub(crate) fn check_alive(&self) -> Result<()> {
        self.lost_error().map_or(Ok(()), Err)
    }

    /// [`Error::DeviceLost`] if the device is lost or destroyed, found by its device-lost
    /// callback or, where that has not run (it runs only once the queue is empty, and a
    /// caller's device does not call ours), by a probe.
    pub fn lost_error(&self) -> Option<Error> {
        if let Some(reason) = self.lost_reason() {
            return Some(Error::DeviceLost { reason });
        }
        if self.refuses_work() {
            self.mark_lost("the device was destroyed or lost");
            return self
                .lost_reason()
                .map(|reason| Error::DeviceLost { reason });
        }
        None
    }

    fn lost_reason(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records a loss; the first reason wins (later failures are its consequences).
    fn mark_lost(&self, reason: &str) {
        self.lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| reason.to_string());
    }

    /// Whether the device refuses new work. wgpu has no query for this, but a lost or
    /// destroyed device refuses to map a new buffer at once: `map_async` calls its callback
    /// with an error before returning, where a live device only queues the mapping.
    fn refuses_work(&self) -> bool {
        // Mapping an invalid buffer is also reported as a validation error: keep it from the
        // caller's scopes and the uncaptured-error handler.
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let probe = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("device probe"),
            size: wgpu::MAP_ALIGNMENT,
            usage: wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        let refused = Arc::new(AtomicBool::new(false));
        let flag = refused.clone();
        probe.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            // On a live device this runs later, after `probe` is gone, with an error that
            // nobody reads any more.
            flag.store(r.is_err(), Ordering::Release);
        });
        let refused = refused.load(Ordering::Acquire);
        drop(probe);
        // The pop takes effect at once; the error it would report is not wanted, so there is
        // nothing to wait for (and in a browser nothing may wait).
        drop(scope.pop());
        refused
    }

    /// Runs `f` inside error scopes, so that wgpu's validation, out-of-memory and internal
    /// errors come back as ours instead of reaching the uncaptured-error handler (wgpu's
    /// default: a panic). `what` and `bytes` describe the allocation for
    /// [`Error::OutOfMemory`]. Scopes are per thread, so threads sharing a device do not see
    /// each other's errors.
    ///
    /// A device lost while `f` runs (another thread destroying it, a driver reset) can make
    /// wgpu itself panic: `create_buffer_init` unwraps a mapping that a lost device refuses.
    /// Such a panic becomes [`Error::DeviceLost`]; with the device alive, a panic is a bug and
    /// goes on unwinding.
    #[cfg(feature = "native")]
    pub(crate) fn scoped<T>(
        &self,
        what: &str,
        bytes: Option<u64>,
        f: impl FnOnce() -> T,
    ) -> Result<T> {
        pollster::block_on(self.scoped_async(what, bytes, async move || f()))
    }

    /// [`GpuContext::scoped`] for async work, whose awaits the scopes cover too. In a browser
    /// the scopes are one stack per device, so work sharing the device must not interleave
    /// with it (the web crate runs one detection at a time); there a panic aborts instead of
    /// unwinding, so only the error scopes apply.
    pub(crate) async fn scoped_async<T>(
        &self,
        what: &str,
        bytes: Option<u64>,
        f: impl AsyncFnOnce() -> T,
    ) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = CatchUnwind(Box::pin(f())).await;
        // Popped innermost first, as wgpu requires.
        let errors = [
            validation.pop().await,
            internal.pop().await,
            oom.pop().await,
        ];
        let out = match out {
            Ok(out) => out,
            Err(panic) => match self.lost_error() {
                Some(lost) => return Err(lost),
                None => std::panic::resume_unwind(panic),
            },
        };
        match errors.into_iter().flatten().next() {
            None => Ok(out),
            Some(e) => Err(self.classify(what, bytes, e)),
        }
    }

    /// Our error for a wgpu error met while doing `what`.
    pub(crate) fn classify(&self, what: &str, bytes: Option<u64>, e: wgpu::Error) -> Error {
        if let Some(lost) = self.lost_error() {
            return lost;
        }
        match e {
            wgpu::Error::OutOfMemory { source } => Error::OutOfMemory {
                what: what.to_string(),
                bytes,
                reason: format!("the device refused the allocation ({source})"),
            },
            e => Error::Gpu {
                stage: what.to_string(),
                reason: e.to_string(),
            },
        }
    }
}

/// A future whose panics come out as `Err`, as `std::panic::catch_unwind` does for a
/// closure: each poll runs inside `catch_unwind`.
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_from_wgpu_becomes_our_typed_error() {
        let ctx = crate::ops::testutil::ctx();
        let e = wgpu::Error::OutOfMemory {
            source: Box::new(std::io::Error::other("vkAllocateMemory failed")),
        };
        match ctx.classify("buffers for a 640x480 input", Some(48 << 20), e) {
            Error::OutOfMemory { what, bytes, .. } => {
                assert_eq!(what, "buffers for a 640x480 input");
                assert_eq!(bytes, Some(48 << 20));
            }
            other => panic!("expected OutOfMemory, got {other:?}"),
        }
    }

    #[test]
    fn a_live_device_is_not_reported_lost() {
        let ctx = crate::ops::testutil::ctx();
        assert!(ctx.lost_error().is_none());
        assert!(ctx.check_alive().is_ok());
    }
}

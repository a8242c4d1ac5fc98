//! # tnml-cuda
//!
//! One CUDA GPU behind a safe API: device buffers ([`CudaSlice`], views), row-major `f32`
//! products through cuBLAS ([`Gpu::gemm`]) and the few elementwise and per-row kernels of the
//! MPS trainers ([`kernels.cu`](https://example.invalid), compiled by NVRTC when the device is
//! opened). Nothing here knows about tensor networks: `tnml-mps` builds its CUDA engine on it.
//!
//! The CUDA libraries are loaded at run time (cudarc's `dynamic-loading`): a build needs no CUDA
//! toolkit, and [`Gpu::open`] reports a missing driver, library or device as an error instead of
//! the loader's panic. Every launch checks the lengths of the buffers it is given against the
//! sizes it will touch, so no call here can read or write outside a buffer.
//!
//! Conventions: matrices are row-major; `n` rows of width `w` are `n * w` consecutive values;
//! per-row log-scales are `f64`.

use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, DeviceRepr, ValidAsZeroBits};
pub use cudarc::driver::{CudaSlice, CudaView, CudaViewMut};
use thiserror::Error;

mod ffi;

/// Errors of the device layer.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GpuError {
    /// libcuda (the driver) is not on this machine.
    #[error("no CUDA driver found (libcuda could not be loaded): this machine has no NVIDIA driver; train on the CPU")]
    NoDriver,
    /// The driver is there but has no device of that ordinal.
    #[error("no CUDA device cuda:{ordinal}: the driver sees {count} device(s)")]
    NoDevice {
        /// The ordinal asked for.
        ordinal: usize,
        /// Devices the driver sees.
        count: usize,
    },
    /// A CUDA library other than the driver is missing.
    #[error("{lib} could not be loaded: it comes with the CUDA toolkit (13.x); add its folder (for example /usr/local/cuda/lib64) to LD_LIBRARY_PATH")]
    MissingLibrary {
        /// The library (`libcublas`, `libnvrtc`).
        lib: &'static str,
    },
    /// A call into CUDA failed.
    #[error("CUDA {op} failed: {detail}")]
    Runtime {
        /// What was called.
        op: &'static str,
        /// CUDA's message.
        detail: String,
    },
    /// Buffers too small for the sizes given (a bug of the caller, reported, never run).
    #[error("{op}: {what}")]
    Shape {
        /// The operation.
        op: &'static str,
        /// Which buffer, and its length against the length needed.
        what: String,
    },
}

/// Result alias of the device layer.
pub type Result<T> = std::result::Result<T, GpuError>;

pub(crate) fn runtime(op: &'static str) -> impl FnOnce(String) -> GpuError {
    move |detail| GpuError::Runtime { op, detail }
}

/// Checks that a buffer holds at least `need` values.
fn fits(op: &'static str, name: &str, len: usize, need: usize) -> Result<()> {
    if len < need {
        return Err(GpuError::Shape {
            op,
            what: format!("{name} holds {len} values, {need} needed"),
        });
    }
    Ok(())
}

/// The loss of [`Gpu::label_head`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadLoss {
    /// Softmax cross-entropy; the class is `argmax f`.
    CrossEntropy,
    /// `sum_l (f_l - [l = y])^2 / 2`; the class is `argmax |f|`.
    Squared,
}

/// The kernels of `kernels.cu`.
struct Kernels {
    gather: CudaFunction,
    combine: CudaFunction,
    outer: CudaFunction,
    normalize: CudaFunction,
    scale_rows: CudaFunction,
    label_head: CudaFunction,
    label_carry: CudaFunction,
    adam: CudaFunction,
}

/// The kernels' source, compiled by NVRTC when a device is opened.
pub const KERNELS_SOURCE: &str = include_str!("kernels.cu");

/// Most labels [`Gpu::label_head`] takes (a per-thread array of scores).
pub const MAX_LABELS: usize = 64;

/// One CUDA device with a stream, a cuBLAS handle and the compiled kernels. All work is queued
/// on the one stream, in order; reads back to the host wait for it.
pub struct Gpu {
    ordinal: usize,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    k: Kernels,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu(cuda:{})", self.ordinal)
    }
}

impl Gpu {
    /// Opens device `ordinal`: driver, context, stream, cuBLAS, and the kernels compiled for it.
    ///
    /// # Errors
    /// [`GpuError::NoDriver`] without libcuda, [`GpuError::NoDevice`] for an ordinal the driver
    /// does not have, [`GpuError::MissingLibrary`] without libcublas or libnvrtc, and
    /// [`GpuError::Runtime`] when CUDA itself fails.
    pub fn open(ordinal: usize) -> Result<Self> {
        ffi::check_libraries()?;
        let count = CudaContext::device_count().map_err(|e| runtime("cuDeviceGetCount")(e.to_string()))?;
        let count = usize::try_from(count).unwrap_or(0);
        if ordinal >= count {
            return Err(GpuError::NoDevice { ordinal, count });
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| runtime("cuCtxCreate")(e.to_string()))?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(|e| runtime("cublasCreate")(e.to_string()))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| runtime("cuDeviceGetAttribute")(e.to_string()))?;
        let module = ffi::compile(&ctx, major, minor)?;
        let load = |name: &'static str| {
            module
                .load_function(name)
                .map_err(|e| runtime("cuModuleGetFunction")(format!("{name}: {e}")))
        };
        let k = Kernels {
            gather: load("gather")?,
            combine: load("combine")?,
            outer: load("outer")?,
            normalize: load("normalize")?,
            scale_rows: load("scale_rows")?,
            label_head: load("label_head")?,
            label_carry: load("label_carry")?,
            adam: load("adam")?,
        };
        Ok(Self {
            ordinal,
            ctx,
            stream,
            blas,
            k,
        })
    }

    /// The device's name and ordinal, as `cuda:0 (NVIDIA H200)`.
    pub fn describe(&self) -> String {
        let name = self.ctx.name().unwrap_or_else(|_| "unknown".into());
        format!("cuda:{} ({name})", self.ordinal)
    }

    /// Free and total device memory in bytes.
    ///
    /// # Errors
    /// A failing driver call.
    pub fn memory(&self) -> Result<(usize, usize)> {
        self.ctx
            .mem_get_info()
            .map_err(|e| runtime("cuMemGetInfo")(e.to_string()))
    }

    /// A device copy of `host`.
    ///
    /// # Errors
    /// Out of device memory, or a failing copy.
    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        self.stream
            .clone_htod(host)
            .map_err(|e| runtime("cuMemcpyHtoD")(e.to_string()))
    }

    /// Copies `host` into the start of `dst`.
    ///
    /// # Errors
    /// `dst` shorter than `host`, or a failing copy.
    pub fn write<T: DeviceRepr>(&self, dst: &mut CudaSlice<T>, host: &[T]) -> Result<()> {
        fits("write", "the destination", dst.len(), host.len())?;
        let mut view = dst.slice_mut(..host.len());
        self.stream
            .memcpy_htod(host, &mut view)
            .map_err(|e| runtime("cuMemcpyHtoD")(e.to_string()))
    }

    /// `len` zeros on the device.
    ///
    /// # Errors
    /// Out of device memory.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<CudaSlice<T>> {
        self.stream
            .alloc_zeros(len.max(1))
            .map_err(|e| runtime("cuMemAlloc")(e.to_string()))
    }

    /// The values of `src` on the host (waits for the queued work).
    ///
    /// # Errors
    /// A failing copy (or an earlier kernel's failure, reported here).
    pub fn download<T: DeviceRepr>(&self, src: &CudaView<'_, T>) -> Result<Vec<T>> {
        self.stream
            .clone_dtoh(src)
            .map_err(|e| runtime("cuMemcpyDtoH")(e.to_string()))
    }

    /// `dst[..src.len()] = src` on the device.
    ///
    /// # Errors
    /// `dst` shorter than `src`, or a failing copy.
    pub fn copy<T: DeviceRepr>(&self, src: &CudaView<'_, T>, dst: &mut CudaViewMut<'_, T>) -> Result<()> {
        fits("copy", "the destination", dst.len(), src.len())?;
        let mut head = dst.slice_mut(..src.len());
        self.stream
            .memcpy_dtod(src, &mut head)
            .map_err(|e| runtime("cuMemcpyDtoD")(e.to_string()))
    }

    /// Waits for all queued work.
    ///
    /// # Errors
    /// The first failure of the queued work.
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| runtime("cuStreamSynchronize")(e.to_string()))
    }
}

pub use ffi::{compile_kernels, AdamBuffers, GemmShape, HeadOutputs};

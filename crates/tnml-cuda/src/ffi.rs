//! The unsafe calls of the crate, each behind a safe wrapper that checks every buffer's length
//! against what the call touches: loading the libraries, compiling the kernels, cuBLAS `sgemm`
//! and the kernel launches.
#![allow(unsafe_code)]

use std::sync::Arc;

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig};
use cudarc::driver::{
    CudaContext, CudaModule, CudaSlice, CudaView, CudaViewMut, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};

use crate::{fits, runtime, Gpu, GpuError, HeadLoss, Result, KERNELS_SOURCE, MAX_LABELS};

/// Checks that the driver, cuBLAS and NVRTC can be loaded (cudarc panics on first use of a
/// missing library; this asks first).
pub(crate) fn check_libraries() -> Result<()> {
    // SAFETY: each only tries to dlopen the library by its usual names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(GpuError::NoDriver);
    }
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(GpuError::MissingLibrary { lib: "libcublas" });
    }
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(GpuError::MissingLibrary { lib: "libnvrtc" });
    }
    Ok(())
}

/// `kernels.cu` compiled by NVRTC for `sm_{major}{minor}`.
fn kernels_ptx(major: i32, minor: i32) -> Result<cudarc::nvrtc::Ptx> {
    let arch: &'static str = match (major, minor) {
        (9, 0) => "sm_90",
        (10, 0) => "sm_100",
        (8, 0) => "sm_80",
        (8, 9) => "sm_89",
        (8, 6) => "sm_86",
        (12, 0) => "sm_120",
        // an architecture not listed: leak one short string per process (opened once)
        _ => Box::leak(format!("sm_{major}{minor}").into_boxed_str()),
    };
    let opts = CompileOptions {
        arch: Some(arch),
        fmad: Some(true),
        ..Default::default()
    };
    compile_ptx_with_opts(KERNELS_SOURCE, opts).map_err(|e| runtime("nvrtcCompileProgram")(e.to_string()))
}

/// Compiles `kernels.cu` for the device's architecture and loads it.
pub(crate) fn compile(ctx: &Arc<CudaContext>, major: i32, minor: i32) -> Result<Arc<CudaModule>> {
    let ptx = kernels_ptx(major, minor)?;
    ctx.load_module(ptx)
        .map_err(|e| runtime("cuModuleLoadData")(e.to_string()))
}

/// The kernels compiled to PTX for compute capability `major.minor`, with no GPU or driver:
/// only libnvrtc is needed. Lets a machine without a GPU (CI) check that the kernels compile.
///
/// # Errors
/// [`GpuError::MissingLibrary`] without libnvrtc; the compiler's log when a kernel does not
/// compile.
pub fn compile_kernels(major: i32, minor: i32) -> Result<String> {
    // SAFETY: only tries to dlopen the library by its usual names.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(GpuError::MissingLibrary { lib: "libnvrtc" });
    }
    Ok(kernels_ptx(major, minor)?.to_src())
}

/// Sizes of a product `C = op(A) op(B)`: `C` is `m x n`, `op(A)` is `m x k`, `op(B)` is `k x n`.
/// With `a_t`, `A` is stored as `k x m` (row-major) and transposed; likewise `b_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmShape {
    /// Rows of `C`.
    pub m: usize,
    /// Columns of `C`.
    pub n: usize,
    /// The summed dimension.
    pub k: usize,
    /// Use `A^T` (A stored `k x m`).
    pub a_t: bool,
    /// Use `B^T` (B stored `n x k`).
    pub b_t: bool,
}

fn int(op: &'static str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| GpuError::Shape {
        op,
        what: format!("size {v} exceeds what a kernel takes (2^31 - 1)"),
    })
}

/// A grid-stride launch over `total` elements.
fn grid(total: usize) -> LaunchConfig {
    let blocks = total.div_ceil(256).clamp(1, 65_535 * 8) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn launched(
    op: &'static str,
    r: std::result::Result<
        Option<(cudarc::driver::CudaEvent, cudarc::driver::CudaEvent)>,
        cudarc::driver::DriverError,
    >,
) -> Result<()> {
    r.map(|_| ()).map_err(|e| runtime(op)(e.to_string()))
}

impl Gpu {
    /// `C = op(A) op(B)` in `f32` (row-major, cuBLAS), overwriting `C`.
    ///
    /// # Complexity
    /// `2 m n k` flops.
    ///
    /// # Errors
    /// A buffer shorter than its matrix, or a failing cuBLAS call.
    pub fn gemm(
        &self,
        s: GemmShape,
        a: &CudaView<'_, f32>,
        b: &CudaView<'_, f32>,
        c: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        fits("gemm", "A", a.len(), s.m * s.k)?;
        fits("gemm", "B", b.len(), s.k * s.n)?;
        fits("gemm", "C", c.len(), s.m * s.n)?;
        if s.m == 0 || s.n == 0 {
            return Ok(());
        }
        if s.k == 0 {
            return Err(GpuError::Shape {
                op: "gemm",
                what: "an empty inner dimension".into(),
            });
        }
        let a_cols = if s.a_t { s.m } else { s.k };
        let b_cols = if s.b_t { s.k } else { s.n };
        let op = |t: bool| {
            if t {
                cublasOperation_t::CUBLAS_OP_T
            } else {
                cublasOperation_t::CUBLAS_OP_N
            }
        };
        // row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T
        let cfg = GemmConfig {
            transa: op(s.b_t),
            transb: op(s.a_t),
            m: int("gemm", s.n)?,
            n: int("gemm", s.m)?,
            k: int("gemm", s.k)?,
            alpha: 1.0f32,
            lda: int("gemm", b_cols)?,
            ldb: int("gemm", a_cols)?,
            beta: 0.0f32,
            ldc: int("gemm", s.n)?,
        };
        // SAFETY: the three lengths were checked against the sizes cuBLAS reads and writes.
        unsafe { self.blas.gemm(cfg, b, a, c) }.map_err(|e| runtime("cublasSgemm")(e.to_string()))
    }

    /// The batch's features: `out[k][i][s] = feats[k][idx[i]][s]` for `sites` sites of `samples`
    /// samples of dimension `d` (`idx` goes to the device through `idx_buf`).
    ///
    /// # Errors
    /// An index past `samples`, a short buffer, or a failing launch.
    #[allow(clippy::too_many_arguments)]
    pub fn gather(
        &self,
        out: &mut CudaViewMut<'_, f32>,
        feats: &CudaView<'_, f32>,
        idx: &[usize],
        idx_buf: &mut CudaSlice<i32>,
        sites: usize,
        samples: usize,
        d: usize,
    ) -> Result<()> {
        let n = idx.len();
        if let Some(&bad) = idx.iter().find(|&&i| i >= samples) {
            return Err(GpuError::Shape {
                op: "gather",
                what: format!("sample {bad} of {samples}"),
            });
        }
        fits("gather", "out", out.len(), sites * n * d)?;
        fits("gather", "feats", feats.len(), sites * samples * d)?;
        let host: Vec<i32> = idx.iter().map(|&i| int("gather", i)).collect::<Result<_>>()?;
        self.write(idx_buf, &host)?;
        let (s, m, nn, dd) = (
            int("gather", sites)?,
            int("gather", samples)?,
            int("gather", n)?,
            int("gather", d)?,
        );
        let mut b = self.stream.launch_builder(&self.k.gather);
        b.arg(out)
            .arg(feats)
            .arg(&*idx_buf)
            .arg(&s)
            .arg(&m)
            .arg(&nn)
            .arg(&dd);
        // SAFETY: out, feats and idx were checked against the sizes the kernel touches, and
        // every index is below `samples`.
        launched("gather", unsafe { b.launch(grid(sites * n * d)) })
    }

    /// `out[i, b] = sum_s phi[i, s] t[i, s w + b]` (`t` is `n x (d w)`).
    ///
    /// # Errors
    /// A short buffer, or a failing launch.
    pub fn combine(
        &self,
        out: &mut CudaViewMut<'_, f32>,
        t: &CudaView<'_, f32>,
        phi: &CudaView<'_, f32>,
        n: usize,
        d: usize,
        w: usize,
    ) -> Result<()> {
        fits("combine", "out", out.len(), n * w)?;
        fits("combine", "t", t.len(), n * d * w)?;
        fits("combine", "phi", phi.len(), n * d)?;
        let (ni, di, wi) = (int("combine", n)?, int("combine", d)?, int("combine", w)?);
        let mut b = self.stream.launch_builder(&self.k.combine);
        b.arg(out).arg(t).arg(phi).arg(&ni).arg(&di).arg(&wi);
        // SAFETY: lengths checked above.
        launched("combine", unsafe { b.launch(grid(n * w)) })
    }

    /// `out[i, s w + b] = phi[i, s] v[i, b]`.
    ///
    /// # Errors
    /// A short buffer, or a failing launch.
    pub fn outer(
        &self,
        out: &mut CudaViewMut<'_, f32>,
        phi: &CudaView<'_, f32>,
        v: &CudaView<'_, f32>,
        n: usize,
        d: usize,
        w: usize,
    ) -> Result<()> {
        fits("outer", "out", out.len(), n * d * w)?;
        fits("outer", "phi", phi.len(), n * d)?;
        fits("outer", "v", v.len(), n * w)?;
        let (ni, di, wi) = (int("outer", n)?, int("outer", d)?, int("outer", w)?);
        let mut b = self.stream.launch_builder(&self.k.outer);
        b.arg(out).arg(phi).arg(v).arg(&ni).arg(&di).arg(&wi);
        // SAFETY: lengths checked above.
        launched("outer", unsafe { b.launch(grid(n * d * w)) })
    }

    /// Scales each of the `n` rows of width `w` by a power of two to a norm in `[1, 2)` and adds
    /// the removed `ln` scale to `log` (rows out of `f32`'s normal range: unit norm in `f64`; a
    /// zero row: `log = -inf`).
    ///
    /// # Errors
    /// A short buffer, or a failing launch.
    pub fn normalize(
        &self,
        v: &mut CudaViewMut<'_, f32>,
        log: &mut CudaViewMut<'_, f64>,
        n: usize,
        w: usize,
    ) -> Result<()> {
        fits("normalize", "v", v.len(), n * w)?;
        fits("normalize", "log", log.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let (ni, wi) = (int("normalize", n)?, int("normalize", w)?);
        let cfg = LaunchConfig {
            grid_dim: (ni as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream.launch_builder(&self.k.normalize);
        b.arg(v).arg(log).arg(&ni).arg(&wi);
        // SAFETY: lengths checked above; one block per row.
        launched("normalize", unsafe { b.launch(cfg) })
    }

    /// `out[i, :] = v[i, :] exp(a[i] + b[i])` (a zero entry stays zero whatever the scale).
    ///
    /// # Errors
    /// A short buffer, or a failing launch.
    #[allow(clippy::too_many_arguments)]
    pub fn scale_rows(
        &self,
        out: &mut CudaViewMut<'_, f32>,
        v: &CudaView<'_, f32>,
        n: usize,
        w: usize,
        a: &CudaView<'_, f64>,
        b: &CudaView<'_, f64>,
    ) -> Result<()> {
        fits("scale_rows", "out", out.len(), n * w)?;
        fits("scale_rows", "v", v.len(), n * w)?;
        fits("scale_rows", "a", a.len(), n)?;
        fits("scale_rows", "b", b.len(), n)?;
        let (ni, wi) = (int("scale_rows", n)?, int("scale_rows", w)?);
        let mut l = self.stream.launch_builder(&self.k.scale_rows);
        l.arg(out).arg(v).arg(&ni).arg(&wi).arg(a).arg(b);
        // SAFETY: lengths checked above.
        launched("scale_rows", unsafe { l.launch(grid(n * w)) })
    }

    /// `h[i, b] = sum_l delta[i, l] u[i, l, b]`.
    ///
    /// # Errors
    /// A short buffer, or a failing launch.
    pub fn label_carry(
        &self,
        h: &mut CudaViewMut<'_, f32>,
        delta: &CudaView<'_, f32>,
        u: &CudaView<'_, f32>,
        n: usize,
        nl: usize,
        cr: usize,
    ) -> Result<()> {
        fits("label_carry", "h", h.len(), n * cr)?;
        fits("label_carry", "delta", delta.len(), n * nl)?;
        fits("label_carry", "u", u.len(), n * nl * cr)?;
        let (ni, li, ci) = (
            int("label_carry", n)?,
            int("label_carry", nl)?,
            int("label_carry", cr)?,
        );
        let mut b = self.stream.launch_builder(&self.k.label_carry);
        b.arg(h).arg(delta).arg(u).arg(&ni).arg(&li).arg(&ci);
        // SAFETY: lengths checked above.
        launched("label_carry", unsafe { b.launch(grid(n * cr)) })
    }

    /// The label site of `n` samples (see [`HeadOutputs`]): from `u` (`n x nl x cr`), the right
    /// contraction `rc` (`n x cr`), the two log-scales and the labels (`< nl`, sent through
    /// `labels_buf`), the scores, loss, prediction and `delta = dLoss/df / batch` of every sample.
    ///
    /// # Errors
    /// More than [`MAX_LABELS`] labels, a label `>= nl`, a short buffer, or a failing launch.
    #[allow(clippy::too_many_arguments)]
    pub fn label_head(
        &self,
        out: HeadOutputs<'_, '_>,
        u: &CudaView<'_, f32>,
        rc: &CudaView<'_, f32>,
        left_log: &CudaView<'_, f64>,
        right_log: &CudaView<'_, f64>,
        labels: &[usize],
        labels_buf: &mut CudaSlice<i32>,
        nl: usize,
        cr: usize,
        loss: HeadLoss,
        batch: usize,
    ) -> Result<()> {
        let n = labels.len();
        if nl == 0 || nl > MAX_LABELS {
            return Err(GpuError::Shape {
                op: "label_head",
                what: format!("{nl} labels: the GPU path takes 1 to {MAX_LABELS}"),
            });
        }
        if let Some(&bad) = labels.iter().find(|&&y| y >= nl) {
            return Err(GpuError::Shape {
                op: "label_head",
                what: format!("label {bad} of {nl}"),
            });
        }
        fits("label_head", "delta", out.delta.len(), n * nl)?;
        fits("label_head", "sigma", out.sigma.len(), n)?;
        fits("label_head", "loss", out.loss.len(), n)?;
        fits("label_head", "wrong", out.wrong.len(), n)?;
        fits("label_head", "u", u.len(), n * nl * cr)?;
        fits("label_head", "rc", rc.len(), n * cr)?;
        fits("label_head", "left_log", left_log.len(), n)?;
        fits("label_head", "right_log", right_log.len(), n)?;
        let host: Vec<i32> = labels
            .iter()
            .map(|&y| int("label_head", y))
            .collect::<Result<_>>()?;
        self.write(labels_buf, &host)?;
        let (ni, li, ci) = (
            int("label_head", n)?,
            int("label_head", nl)?,
            int("label_head", cr)?,
        );
        let kind: i32 = match loss {
            HeadLoss::CrossEntropy => 0,
            HeadLoss::Squared => 1,
        };
        let bi = int("label_head", batch.max(1))?;
        let mut b = self.stream.launch_builder(&self.k.label_head);
        b.arg(out.delta).arg(out.sigma).arg(out.loss).arg(out.wrong);
        b.arg(u).arg(rc).arg(left_log).arg(right_log).arg(&*labels_buf);
        b.arg(&ni).arg(&li).arg(&ci).arg(&kind).arg(&bi);
        let cfg = LaunchConfig {
            grid_dim: (n.div_ceil(128).max(1) as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: lengths checked above, labels < nl <= MAX_LABELS (the kernel's array).
        launched("label_head", unsafe { b.launch(cfg) })
    }

    /// One Adam step over `len` weights (see [`AdamBuffers`]) at rate `lr`, bias corrections
    /// `c1 = 1 - b1^t`, `c2 = 1 - b2^t`. Returns the index of the first weight that would leave
    /// `[-max_w, max_w]` or not be finite (then the caller keeps its old weights).
    ///
    /// # Errors
    /// A short buffer, or a failing launch.
    #[allow(clippy::too_many_arguments)]
    pub fn adam(
        &self,
        bufs: AdamBuffers<'_>,
        len: usize,
        lr: f64,
        t: i32,
        betas: (f64, f64),
        eps: f64,
        max_w: f64,
    ) -> Result<Option<usize>> {
        for (name, l) in [
            ("staged", bufs.staged.len()),
            ("staged32", bufs.staged32.len()),
            ("m", bufs.m.len()),
            ("v", bufs.v.len()),
            ("w", bufs.w.len()),
            ("g", bufs.g.len()),
        ] {
            fits("adam", name, l, len)?;
        }
        fits("adam", "bad", bufs.bad.len(), 1)?;
        self.write(bufs.bad, &[u64::MAX])?;
        let (b1, b2) = betas;
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        let n = i64::try_from(len).map_err(|_| runtime("adam")("too many weights".into()))?;
        let mut b = self.stream.launch_builder(&self.k.adam);
        b.arg(bufs.staged)
            .arg(bufs.staged32)
            .arg(bufs.m)
            .arg(bufs.v)
            .arg(bufs.w)
            .arg(bufs.g);
        b.arg(&n)
            .arg(&lr)
            .arg(&c1)
            .arg(&c2)
            .arg(&b1)
            .arg(&b2)
            .arg(&eps)
            .arg(&max_w)
            .arg(&mut *bufs.bad);
        // SAFETY: lengths checked above.
        launched("adam", unsafe { b.launch(grid(len)) })?;
        let bad = self.download(&bufs.bad.slice(..1))?;
        Ok((bad[0] != u64::MAX).then_some(bad[0] as usize))
    }
}

/// The per-sample outputs of [`Gpu::label_head`].
pub struct HeadOutputs<'a, 'b> {
    /// `n x nl`: `dLoss/df / batch`.
    pub delta: &'a mut CudaViewMut<'b, f32>,
    /// `n`: the sample's total log-scale.
    pub sigma: &'a mut CudaViewMut<'b, f64>,
    /// `n`: its loss.
    pub loss: &'a mut CudaViewMut<'b, f64>,
    /// `n`: 1 where the prediction is wrong.
    pub wrong: &'a mut CudaViewMut<'b, i32>,
}

/// The buffers of [`Gpu::adam`]: the new weights go to `staged` (`f64`) and `staged32` (their
/// `f32` image), the moments `m`, `v` are updated in place, `w` and `g` are read.
pub struct AdamBuffers<'a> {
    /// New weights.
    pub staged: &'a mut CudaSlice<f64>,
    /// New weights in `f32`.
    pub staged32: &'a mut CudaSlice<f32>,
    /// First moment.
    pub m: &'a mut CudaSlice<f64>,
    /// Second moment.
    pub v: &'a mut CudaSlice<f64>,
    /// Current weights.
    pub w: &'a CudaSlice<f64>,
    /// Gradient.
    pub g: &'a CudaSlice<f32>,
    /// One value: the first bad index (scratch).
    pub bad: &'a mut CudaSlice<u64>,
}

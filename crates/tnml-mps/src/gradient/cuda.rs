//! The gradient trainer's engine on one CUDA GPU (`cuda` feature).
//!
//! The same passes as the CPU's ([`super::pass`], whose formulas this follows line by line), on
//! the whole minibatch at once: every site's product is one cuBLAS `sgemm` over the batch
//! (`n x l` by `l x d r`), the feature combinations and per-row rescalings are kernels
//! (`tnml-cuda`), the label site's scores, loss and `dLoss/df` one thread per sample, and the
//! weight gradient `dA_k = (scaled l_k)^T (phi (x) G)` sums the batch inside its `sgemm`.
//! Features, labels' batch, partial contractions, cores (`f64` and an `f32` image), Adam's
//! moments and the gradients stay on the device; per batch only the indices go up and the
//! samples' losses and mistakes come back (2 n values). The cores come back once per epoch.
//!
//! # Memory
//! `4 N S d` bytes of features (N sites, S samples), `28 P` bytes for the `P` weights
//! (`f64` weights, staged copy and two moments, `f32` image, staged image and gradient), and
//! per batch of `n`: `4 n sum_k (l_k + d r_k)` bytes of partial contractions.

use tnml_core::SiteTensor;
use tnml_cuda::{AdamBuffers, CudaSlice, GemmShape, Gpu, GpuError, HeadLoss, HeadOutputs};

use super::engine::{BadWeight, BatchOutcome, GradientEngine, ADAM_BETA1, ADAM_BETA2, ADAM_EPS};
use super::pass::Shape;
use crate::device::Device;
use crate::error::{MpsError, Result};
use crate::feature::SiteFeatures;
use crate::model::{Loss, MpsClassifier};

fn device_error(ordinal: usize) -> impl Fn(GpuError) -> MpsError {
    move |e| MpsError::Device {
        device: Device::Cuda(ordinal).to_string(),
        reason: e.to_string(),
    }
}

/// Buffers of one minibatch, sized for `n` samples.
struct BatchBuffers {
    n: usize,
    phi: CudaSlice<f32>,
    idx: CudaSlice<i32>,
    labels: CudaSlice<i32>,
    left: Vec<CudaSlice<f32>>,
    left_log: Vec<CudaSlice<f64>>,
    right: Vec<CudaSlice<f32>>,
    right_log: Vec<CudaSlice<f64>>,
    outer: Vec<CudaSlice<f32>>,
    wide: CudaSlice<f32>,
    carry: CudaSlice<f32>,
    next: CudaSlice<f32>,
    scaled: CudaSlice<f32>,
    carry_log: CudaSlice<f64>,
    u: CudaSlice<f32>,
    dr: CudaSlice<f32>,
    delta: CudaSlice<f32>,
    sigma: CudaSlice<f64>,
    loss: CudaSlice<f64>,
    wrong: CudaSlice<i32>,
    zeros: CudaSlice<f64>,
}

/// The gradient trainer's hot operations on one GPU (see the module docs).
pub(crate) struct CudaEngine<'a> {
    gpu: Gpu,
    ordinal: usize,
    labels: &'a [usize],
    loss: Loss,
    shapes: Vec<Shape>,
    offsets: Vec<usize>,
    params: usize,
    label_site: usize,
    num_labels: usize,
    dim: usize,
    samples: usize,
    feats: CudaSlice<f32>,
    w64: CudaSlice<f64>,
    w32: CudaSlice<f32>,
    staged64: CudaSlice<f64>,
    staged32: CudaSlice<f32>,
    m: CudaSlice<f64>,
    v: CudaSlice<f64>,
    grads: CudaSlice<f32>,
    bad: CudaSlice<u64>,
    batch: Option<BatchBuffers>,
}

fn flat_features(feats: &SiteFeatures) -> Vec<f32> {
    feats.sites.concat()
}

impl<'a> CudaEngine<'a> {
    /// Opens GPU `ordinal` and puts the model, the features and Adam's state on it.
    ///
    /// # Errors
    /// [`MpsError::Device`]: no driver or device, not enough device memory, a CUDA failure.
    pub(crate) fn new(
        ordinal: usize,
        model: &MpsClassifier,
        feats: &'a SiteFeatures,
        labels: &'a [usize],
        loss: Loss,
    ) -> Result<Self> {
        let err = device_error(ordinal);
        let gpu = Gpu::open(ordinal).map_err(&err)?;
        let shapes: Vec<Shape> = model
            .sites
            .iter()
            .map(|s| (s.left(), s.phys(), s.right()))
            .collect();
        let mut offsets = Vec::with_capacity(shapes.len() + 1);
        let mut params = 0;
        for &(l, p, r) in &shapes {
            offsets.push(params);
            params += l * p * r;
        }
        offsets.push(params);
        let need = 4 * feats.sites.len() * feats.samples * feats.dim + 28 * params;
        let (free, _) = gpu.memory().map_err(&err)?;
        if need > free {
            return Err(MpsError::Device {
                device: Device::Cuda(ordinal).to_string(),
                reason: format!(
                    "the features and the model need {} MB of device memory, {} MB are free",
                    need >> 20,
                    free >> 20
                ),
            });
        }
        if model.num_labels > tnml_cuda::MAX_LABELS {
            return Err(MpsError::Device {
                device: Device::Cuda(ordinal).to_string(),
                reason: format!(
                    "{} labels: the GPU path takes at most {}",
                    model.num_labels,
                    tnml_cuda::MAX_LABELS
                ),
            });
        }
        let w: Vec<f64> = model
            .sites
            .iter()
            .flat_map(|s| s.data().iter().copied())
            .collect();
        let w32: Vec<f32> = w.iter().map(|&x| x as f32).collect();
        let feats_dev = gpu.upload(&flat_features(feats)).map_err(&err)?;
        let engine = Self {
            w64: gpu.upload(&w).map_err(&err)?,
            w32: gpu.upload(&w32).map_err(&err)?,
            staged64: gpu.zeros(params).map_err(&err)?,
            staged32: gpu.zeros(params).map_err(&err)?,
            m: gpu.zeros(params).map_err(&err)?,
            v: gpu.zeros(params).map_err(&err)?,
            grads: gpu.zeros(params).map_err(&err)?,
            bad: gpu.zeros(1).map_err(&err)?,
            feats: feats_dev,
            gpu,
            ordinal,
            labels,
            loss,
            shapes,
            offsets,
            params,
            label_site: model.label_site,
            num_labels: model.num_labels,
            dim: feats.dim,
            samples: feats.samples,
            batch: None,
        };
        Ok(engine)
    }

    fn err(&self) -> impl Fn(GpuError) -> MpsError {
        device_error(self.ordinal)
    }

    /// Buffers for a batch of `n` (kept while batches are no larger).
    fn buffers(&mut self, n: usize) -> Result<BatchBuffers> {
        if let Some(b) = self.batch.take() {
            if b.n >= n {
                return Ok(b);
            }
        }
        let err = self.err();
        let g = &self.gpu;
        let (c, d, nl) = (self.label_site, self.dim, self.num_labels);
        let sites = self.shapes.len();
        let zeros_f = |len: usize| g.zeros::<f32>(len).map_err(&err);
        let zeros_d = |len: usize| g.zeros::<f64>(len).map_err(&err);
        let ones = |len: usize| g.upload(&vec![1.0f32; len]).map_err(&err);
        let max_bond = self.shapes.iter().map(|&(l, _, r)| l.max(r)).max().unwrap_or(1);
        let (_, _, cr) = self.shapes[c];
        let wide = (d * max_bond).max(d * nl * cr).max(1);
        let mut left = vec![ones(n)?];
        let mut left_log = vec![zeros_d(n)?];
        for k in 0..c {
            left.push(zeros_f(n * self.shapes[k].2)?);
            left_log.push(zeros_d(n)?);
        }
        // right[j] = r_{c+1+j}, of width shapes[c+1+j].0; the last is the boundary (ones)
        let nr = sites - c;
        let (mut right, mut right_log, mut outer) = (Vec::new(), Vec::new(), Vec::new());
        for j in 0..nr {
            let k = c + 1 + j;
            if k < sites {
                right.push(zeros_f(n * self.shapes[k].0)?);
                outer.push(zeros_f(n * d * self.shapes[k].2)?);
            } else {
                right.push(ones(n)?);
            }
            right_log.push(zeros_d(n)?);
        }
        Ok(BatchBuffers {
            n,
            phi: zeros_f(sites * n * d)?,
            idx: g.zeros::<i32>(n).map_err(&err)?,
            labels: g.zeros::<i32>(n).map_err(&err)?,
            left,
            left_log,
            right,
            right_log,
            outer,
            wide: zeros_f(n * wide)?,
            carry: zeros_f(n * max_bond.max(nl * cr))?,
            next: zeros_f(n * max_bond)?,
            scaled: zeros_f(n * max_bond)?,
            carry_log: zeros_d(n)?,
            u: zeros_f(n * nl * cr)?,
            dr: zeros_f(n * nl * cr)?,
            delta: zeros_f(n * nl)?,
            sigma: zeros_d(n)?,
            loss: zeros_d(n)?,
            wrong: g.zeros::<i32>(n).map_err(&err)?,
            zeros: zeros_d(n)?,
        })
    }

    /// The forward and backward passes of the samples `idx` (see `pass.rs`, whose steps
    /// these follow one for one).
    fn pass(
        &mut self,
        b: &mut BatchBuffers,
        idx: &[usize],
        batch: usize,
    ) -> std::result::Result<BatchOutcome, GpuError> {
        let n = idx.len();
        self.gpu.gather(
            &mut b.phi.slice_mut(..),
            &self.feats.slice(..),
            idx,
            &mut b.idx,
            self.shapes.len(),
            self.samples,
            self.dim,
        )?;
        self.forward_left(b, n)?;
        self.forward_right(b, n)?;
        let outcome = self.label_head(b, idx, batch)?;
        if !outcome.loss_sum.is_finite() {
            return Ok(outcome);
        }
        self.backward_left(b, n)?;
        self.backward_right(b, n)?;
        Ok(outcome)
    }

    /// Site `k`'s values in the flat core buffers.
    fn site(&self, k: usize) -> std::ops::Range<usize> {
        self.offsets[k]..self.offsets[k + 1]
    }

    /// `l_{k+1} = sum_s phi_s (l_k A_k)` for `k < c`, rows normalized.
    fn forward_left(&self, b: &mut BatchBuffers, n: usize) -> std::result::Result<(), GpuError> {
        let (g, d) = (&self.gpu, self.dim);
        for k in 0..self.label_site {
            let (l, _, r) = self.shapes[k];
            g.gemm(
                gemm_shape(n, d * r, l, false, false),
                &b.left[k].slice(..),
                &self.w32.slice(self.site(k)),
                &mut b.wide.slice_mut(..),
            )?;
            g.combine(
                &mut b.left[k + 1].slice_mut(..),
                &b.wide.slice(..),
                &b.phi.slice(phi(k, n, d)),
                n,
                d,
                r,
            )?;
            let (lo, hi) = b.left_log.split_at_mut(k + 1);
            g.copy(&lo[k].slice(..n), &mut hi[0].slice_mut(..))?;
            g.normalize(&mut b.left[k + 1].slice_mut(..), &mut hi[0].slice_mut(..), n, r)?;
        }
        Ok(())
    }

    /// `r_k = A_k (phi_k (x) r_{k+1})` for `k > c`: `right[j] = r_{c+1+j}`, `outer[j]` kept.
    fn forward_right(&self, b: &mut BatchBuffers, n: usize) -> std::result::Result<(), GpuError> {
        let (g, d, c) = (&self.gpu, self.dim, self.label_site);
        for k in (c + 1..self.shapes.len()).rev() {
            let j = k - c - 1;
            let (l, _, r) = self.shapes[k];
            g.outer(
                &mut b.outer[j].slice_mut(..),
                &b.phi.slice(phi(k, n, d)),
                &b.right[j + 1].slice(..),
                n,
                d,
                r,
            )?;
            g.gemm(
                gemm_shape(n, l, d * r, false, true),
                &b.outer[j].slice(..),
                &self.w32.slice(self.site(k)),
                &mut b.right[j].slice_mut(..),
            )?;
            let (lo, hi) = b.right_log.split_at_mut(j + 1);
            g.copy(&hi[0].slice(..n), &mut lo[j].slice_mut(..))?;
            g.normalize(&mut b.right[j].slice_mut(..), &mut lo[j].slice_mut(..), n, l)?;
        }
        Ok(())
    }

    /// The label site: `U = sum_s phi_s (l_c A_c)`, the scores, each sample's loss, mistakes
    /// and `delta` (one thread per sample); the losses and mistakes come back to the host.
    fn label_head(
        &self,
        b: &mut BatchBuffers,
        idx: &[usize],
        batch: usize,
    ) -> std::result::Result<BatchOutcome, GpuError> {
        let (g, d, c, nl, n) = (&self.gpu, self.dim, self.label_site, self.num_labels, idx.len());
        let (cl, _, cr) = self.shapes[c];
        let w = nl * cr;
        g.gemm(
            gemm_shape(n, d * w, cl, false, false),
            &b.left[c].slice(..),
            &self.w32.slice(self.site(c)),
            &mut b.wide.slice_mut(..),
        )?;
        g.combine(
            &mut b.u.slice_mut(..),
            &b.wide.slice(..),
            &b.phi.slice(phi(c, n, d)),
            n,
            d,
            w,
        )?;
        let labels: Vec<usize> = idx.iter().map(|&i| self.labels[i]).collect();
        let kind = match self.loss {
            Loss::CrossEntropy => HeadLoss::CrossEntropy,
            Loss::Squared => HeadLoss::Squared,
        };
        g.label_head(
            HeadOutputs {
                delta: &mut b.delta.slice_mut(..),
                sigma: &mut b.sigma.slice_mut(..),
                loss: &mut b.loss.slice_mut(..),
                wrong: &mut b.wrong.slice_mut(..),
            },
            &b.u.slice(..),
            &b.right[0].slice(..),
            &b.left_log[c].slice(..),
            &b.right_log[0].slice(..),
            &labels,
            &mut b.labels,
            nl,
            cr,
            kind,
            batch,
        )?;
        let loss_sum: f64 = g.download(&b.loss.slice(..n))?.iter().sum();
        let wrong = g
            .download(&b.wrong.slice(..n))?
            .iter()
            .filter(|&&x| x != 0)
            .count();
        Ok(BatchOutcome { loss_sum, wrong })
    }

    /// `dA_c = (l_c e^sigma)^T Z` with `Z = phi (x) delta (x) r_{c+1}`, then `G = Z A_c^T`
    /// carried left: `dA_k = l_k^T (phi_k (x) G_{k+1})`.
    fn backward_left(&mut self, b: &mut BatchBuffers, n: usize) -> std::result::Result<(), GpuError> {
        let (d, c, nl) = (self.dim, self.label_site, self.num_labels);
        let (cl, _, cr) = self.shapes[c];
        let w = nl * cr;
        let (site_c, g) = (self.site(c), &self.gpu);
        g.outer(
            &mut b.dr.slice_mut(..),
            &b.delta.slice(..),
            &b.right[0].slice(..),
            n,
            nl,
            cr,
        )?;
        g.outer(
            &mut b.wide.slice_mut(..),
            &b.phi.slice(phi(c, n, d)),
            &b.dr.slice(..),
            n,
            d,
            w,
        )?;
        g.scale_rows(
            &mut b.scaled.slice_mut(..),
            &b.left[c].slice(..),
            n,
            cl,
            &b.sigma.slice(..),
            &b.zeros.slice(..),
        )?;
        g.gemm(
            gemm_shape(cl, d * w, n, true, false),
            &b.scaled.slice(..),
            &b.wide.slice(..),
            &mut self.grads.slice_mut(site_c.clone()),
        )?;
        g.gemm(
            gemm_shape(n, cl, d * w, false, true),
            &b.wide.slice(..),
            &self.w32.slice(site_c),
            &mut b.carry.slice_mut(..),
        )?;
        g.copy(&b.right_log[0].slice(..n), &mut b.carry_log.slice_mut(..))?;
        g.normalize(&mut b.carry.slice_mut(..), &mut b.carry_log.slice_mut(..), n, cl)?;
        for k in (0..c).rev() {
            let (l, _, r) = self.shapes[k];
            let site_k = self.offsets[k]..self.offsets[k + 1];
            g.outer(
                &mut b.wide.slice_mut(..),
                &b.phi.slice(phi(k, n, d)),
                &b.carry.slice(..),
                n,
                d,
                r,
            )?;
            g.scale_rows(
                &mut b.scaled.slice_mut(..),
                &b.left[k].slice(..),
                n,
                l,
                &b.left_log[k].slice(..),
                &b.carry_log.slice(..),
            )?;
            g.gemm(
                gemm_shape(l, d * r, n, true, false),
                &b.scaled.slice(..),
                &b.wide.slice(..),
                &mut self.grads.slice_mut(site_k.clone()),
            )?;
            if k > 0 {
                g.gemm(
                    gemm_shape(n, l, d * r, false, true),
                    &b.wide.slice(..),
                    &self.w32.slice(site_k),
                    &mut b.carry.slice_mut(..),
                )?;
                g.normalize(&mut b.carry.slice_mut(..), &mut b.carry_log.slice_mut(..), n, l)?;
            }
        }
        Ok(())
    }

    /// `H_{c+1}[i, b] = sum_l delta[i, l] U[i, l, b]` carried right:
    /// `dA_k = H_k^T (phi_k (x) r_{k+1})`, `H_{k+1} = sum_s phi_s (H_k A_k)`.
    fn backward_right(&mut self, b: &mut BatchBuffers, n: usize) -> std::result::Result<(), GpuError> {
        let (d, c, nl, sites) = (self.dim, self.label_site, self.num_labels, self.shapes.len());
        let cr = self.shapes[c].2;
        let g = &self.gpu;
        g.label_carry(
            &mut b.carry.slice_mut(..),
            &b.delta.slice(..),
            &b.u.slice(..),
            n,
            nl,
            cr,
        )?;
        g.copy(&b.left_log[c].slice(..n), &mut b.carry_log.slice_mut(..))?;
        g.normalize(&mut b.carry.slice_mut(..), &mut b.carry_log.slice_mut(..), n, cr)?;
        for k in c + 1..sites {
            let j = k - c - 1;
            let (l, _, r) = self.shapes[k];
            let site_k = self.offsets[k]..self.offsets[k + 1];
            g.scale_rows(
                &mut b.scaled.slice_mut(..),
                &b.carry.slice(..),
                n,
                l,
                &b.carry_log.slice(..),
                &b.right_log[j + 1].slice(..),
            )?;
            g.gemm(
                gemm_shape(l, d * r, n, true, false),
                &b.scaled.slice(..),
                &b.outer[j].slice(..),
                &mut self.grads.slice_mut(site_k.clone()),
            )?;
            if k + 1 < sites {
                g.gemm(
                    gemm_shape(n, d * r, l, false, false),
                    &b.carry.slice(..),
                    &self.w32.slice(site_k),
                    &mut b.wide.slice_mut(..),
                )?;
                g.combine(
                    &mut b.next.slice_mut(..),
                    &b.wide.slice(..),
                    &b.phi.slice(phi(k, n, d)),
                    n,
                    d,
                    r,
                )?;
                std::mem::swap(&mut b.carry, &mut b.next);
                g.normalize(&mut b.carry.slice_mut(..), &mut b.carry_log.slice_mut(..), n, r)?;
            }
        }
        Ok(())
    }
}

/// Site `k`'s features in the gathered batch (`n x d` per site).
fn phi(k: usize, n: usize, d: usize) -> std::ops::Range<usize> {
    k * n * d..(k + 1) * n * d
}

/// A row-major product `m x k` by `k x n`, either operand transposed.
fn gemm_shape(m: usize, n: usize, k: usize, a_t: bool, b_t: bool) -> GemmShape {
    GemmShape { m, n, k, a_t, b_t }
}

impl GradientEngine for CudaEngine<'_> {
    fn set_features(&mut self, feats: SiteFeatures) -> Result<()> {
        let err = self.err();
        self.gpu
            .write(&mut self.feats, &flat_features(&feats))
            .map_err(err)
    }

    fn gradients(&mut self, idx: &[usize], batch: usize) -> Result<BatchOutcome> {
        let mut b = self.buffers(idx.len())?;
        let out = self.pass(&mut b, idx, batch);
        self.batch = Some(b);
        out.map_err(self.err())
    }

    fn export_gradients(&mut self) -> Result<Vec<f64>> {
        let g = self
            .gpu
            .download(&self.grads.slice(..self.params))
            .map_err(self.err())?;
        Ok(g.into_iter().map(f64::from).collect())
    }

    fn import_gradients(&mut self, flat: &[f64]) -> Result<()> {
        let low: Vec<f32> = flat.iter().map(|&x| x as f32).collect();
        let err = self.err();
        self.gpu.write(&mut self.grads, &low).map_err(err)
    }

    fn adam_step(&mut self, lr: f64, t: i32, max_weight: f64) -> Result<Option<BadWeight>> {
        let err = self.err();
        let bad = self
            .gpu
            .adam(
                AdamBuffers {
                    staged: &mut self.staged64,
                    staged32: &mut self.staged32,
                    m: &mut self.m,
                    v: &mut self.v,
                    w: &self.w64,
                    g: &self.grads,
                    bad: &mut self.bad,
                },
                self.params,
                lr,
                t,
                (ADAM_BETA1, ADAM_BETA2),
                ADAM_EPS,
                max_weight,
            )
            .map_err(&err)?;
        if let Some(i) = bad {
            let value = self.gpu.download(&self.staged64.slice(i..i + 1)).map_err(&err)?[0];
            let site = self.offsets.partition_point(|&o| o <= i) - 1;
            return Ok(Some(BadWeight { site, value }));
        }
        std::mem::swap(&mut self.w64, &mut self.staged64);
        std::mem::swap(&mut self.w32, &mut self.staged32);
        Ok(None)
    }

    fn store(&mut self, model: &mut MpsClassifier) -> Result<()> {
        let w = self
            .gpu
            .download(&self.w64.slice(..self.params))
            .map_err(self.err())?;
        for (k, s) in model.sites.iter_mut().enumerate() {
            let data = w[self.offsets[k]..self.offsets[k + 1]].to_vec();
            *s = SiteTensor::new(s.left(), s.phys(), s.right(), data)?;
        }
        Ok(())
    }
}

//! [`MpoLinear`]: a dense layer `y = W x + b` whose weight is a matrix product operator.
//!
//! Cores are burn parameters `G_k[r_{k-1}, I_k, J_k, r_k]` (the tnml-core `Mpo` layout), the bias is
//! dense and not counted in the compression ratio (Gao's Eq. 6). The input vector is split
//! row-major as `(i_1, .., i_d)`, the output as `(j_1, .., j_d)`.
//!
//! Forward plans ([`Plan`]), all built from burn tensor ops so that autodiff gives exact gradients:
//!
//! * right to left: the state `[B * prod_{j<k} I_j, I_k r_k, prod_{j>k} J_j]` is multiplied from
//!   the left by core k viewed as `[r_{k-1} J_k, I_k r_k]`: one broadcast batched GEMM per core and
//!   no transposes, `(prod_{j<=k} I_j)(prod_{j>=k} J_j) r_{k-1} r_k` multiply-adds per sample;
//! * left to right: state `[B * prod_{j<k} J_j, r_{k-1}, I_k, prod_{j>k} I_j]`, one transpose, one
//!   GEMM `[(B * prod_{j<k} J_j * prod_{j>k} I_j), r_{k-1} I_k] x [r_{k-1} I_k, J_k r_k]` and one
//!   transpose per core (`(prod_{j>=k} I_j)(prod_{j<=k} J_j) r_{k-1} r_k` multiply-adds per sample);
//! * dense: rebuild `W^T` (`[prod I, prod J]`, `sum_k prod_{j<=k}(I_j J_j) r_{k-1} r_k` multiply-adds,
//!   independent of the batch) and do one GEMM;
//! * split at bond m: merge cores `0..m` and `m..d` into two small tensors and contract the batch
//!   with each in one GEMM (`r_m (N_in J_>=m + I_<m N_out)` multiply-adds per sample): fewer than
//!   the dense GEMM's `N_in N_out` when the layer is large and `r_m` is moderate (4096x4096 at
//!   D = 16: half), and two large GEMMs instead of `d` thin ones.
//!
//! [`MpoLinear::forward`] picks the cheapest by the cost model of [`MpoSpec::plan_costs`].

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use tnml_core::faer::MatRef;
use tnml_core::{Mpo, TruncParams, TruncReport};

use crate::error::{NnError, Result};
use crate::init::{random_cores, WeightInit};
use crate::spec::{MpoSpec, Plan};

/// A linear layer with an MPO weight and an optional dense bias.
#[derive(Module, Debug)]
pub struct MpoLinear {
    /// Cores `[r_{k-1}, I_k, J_k, r_k]`.
    pub cores: Vec<Param<Tensor<4>>>,
    /// Dense bias of length `prod J_k`.
    pub bias: Option<Param<Tensor<1>>>,
    /// The shape the cores have (with the clamps of the spec it was built from); not a
    /// parameter, so a loaded record keeps the spec of the model it is loaded into.
    #[module(skip)]
    spec: MpoSpec,
}

/// How to build a fresh [`MpoLinear`] (burn's `XConfig { .. }.init(&device)` pattern).
#[derive(Debug, Clone, PartialEq)]
pub struct MpoLinearConfig {
    /// Modes and bond dimensions.
    pub spec: MpoSpec,
    /// Target variance of the reconstructed weight (see [`crate::init`]).
    pub init: WeightInit,
    /// Whether the layer has a (zero-initialized) bias.
    pub bias: bool,
    /// Seed of the random cores.
    pub seed: u64,
}

impl MpoLinearConfig {
    /// Random cores with `Var(W_ij)` at `init`'s target, zero bias if any.
    pub fn init(&self, device: &Device) -> MpoLinear {
        let cores = random_cores(&self.spec, self.init, self.seed);
        let bias = self.bias.then(|| vec![0.0; self.spec.out_features()]);
        MpoLinear::from_core_data(self.spec.clone(), cores, bias, device)
    }
}

/// Reads a float tensor back as `Vec<f32>`.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float tensor data")
}

/// The cores of `mpo` in f32, the scale spread evenly over them: core `k` is multiplied by
/// `2^a_k` with `sum_k a_k = 0` (exact, the operator unchanged) so that every core's largest
/// entry is about the geometric mean of theirs. A TT-SVD puts the whole norm on one core, which
/// overflows f32 for weights near its range (entries of 1e37 on 200,000 parameters) although
/// the operator fits.
///
/// # Errors
/// A core entry that still leaves f32's range (`CoreError::NonFinite`, naming the core).
pub(crate) fn f32_cores(mpo: &Mpo) -> Result<Vec<Vec<f32>>> {
    let n = mpo.len();
    let data: Vec<&[f64]> = (0..n)
        .map(|k| mpo.core(k).map(|(_, d)| d))
        .collect::<std::result::Result<_, _>>()?;
    let exps: Vec<i64> = data
        .iter()
        .map(|d| {
            let peak = d.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            if peak > 0.0 {
                peak.log2().round() as i64
            } else {
                0
            }
        })
        .collect();
    let total: i64 = exps.iter().sum();
    let mean = total.div_euclid(n as i64);
    let mut extra = total.rem_euclid(n as i64);
    let mut cores = Vec::with_capacity(n);
    for (k, (d, e)) in data.iter().zip(&exps).enumerate() {
        let target = mean + i64::from(extra > 0);
        extra -= i64::from(extra > 0);
        let shift = i32::try_from((target - e).clamp(-2000, 2000)).unwrap_or(0);
        let core: Vec<f32> = d.iter().map(|&v| scale_pow2(v, shift) as f32).collect();
        if let Some(i) = core.iter().position(|x| !x.is_finite()) {
            return Err(tnml_core::CoreError::NonFinite {
                what: if k == 0 {
                    "the first MPO core in f32"
                } else {
                    "an MPO core in f32"
                },
                position: format!("core {k}, index {i} (the operator exceeds f32's range, 3.4e38)"),
                value: f64::from(core[i]),
            }
            .into());
        }
        cores.push(core);
    }
    Ok(cores)
}

/// `v * 2^e` without overflowing the factor.
fn scale_pow2(v: f64, e: i32) -> f64 {
    let half = e / 2;
    v * 2f64.powi(half) * 2f64.powi(e - half)
}

impl MpoLinear {
    fn from_core_data(spec: MpoSpec, cores: Vec<Vec<f32>>, bias: Option<Vec<f32>>, device: &Device) -> Self {
        let cores = cores
            .into_iter()
            .enumerate()
            .map(|(k, data)| {
                let shape = spec.core_shape(k);
                Param::from_tensor(Tensor::from_data(TensorData::new(data, shape), device))
            })
            .collect();
        let bias = bias.map(|b| {
            let n = b.len();
            Param::from_tensor(Tensor::from_data(TensorData::new(b, [n]), device))
        });
        Self { cores, bias, spec }
    }

    /// Compresses a dense weight `w` (`prod J x prod I`, PyTorch's `Linear.weight` layout) by TT-SVD
    /// (tnml-core), truncated by `params`; `bias` is copied.
    ///
    /// # Errors
    /// Modes that do not multiply to the matrix size, invalid truncation parameters, a bias of the
    /// wrong length, non-finite entries.
    pub fn from_dense(
        w: MatRef<'_, f64>,
        in_modes: &[usize],
        out_modes: &[usize],
        params: &TruncParams,
        bias: Option<&[f32]>,
        device: &Device,
    ) -> Result<(Self, TruncReport)> {
        let (mpo, report) = Mpo::from_dense(w, in_modes, out_modes, params)?;
        // `from_mpo` checks the bias length.
        Ok((Self::from_mpo(&mpo, bias, device)?, report))
    }

    /// A layer with the cores of a tnml-core [`Mpo`] (converted to f32).
    ///
    /// # Errors
    /// A bias whose length is not the number of outputs.
    pub fn from_mpo(mpo: &Mpo, bias: Option<&[f32]>, device: &Device) -> Result<Self> {
        let spec = MpoSpec::new(mpo.in_modes(), mpo.out_modes(), &mpo.bond_dims())?;
        if let Some(b) = bias {
            if b.len() != spec.out_features() {
                return Err(NnError::BiasLength {
                    got: b.len(),
                    outputs: spec.out_features(),
                });
            }
        }
        let cores = f32_cores(mpo)?;
        Ok(Self::from_core_data(
            spec,
            cores,
            bias.map(|b| b.to_vec()),
            device,
        ))
    }

    /// The cores as a tnml-core [`Mpo`] (f64) for analysis: entanglement, truncation, TT-SVD.
    ///
    /// # Errors
    /// Non-finite entries (a diverged layer).
    pub fn to_mpo(&self) -> Result<Mpo> {
        let cores = self
            .cores
            .iter()
            .map(|c| {
                let t = c.val();
                let shape = t.dims();
                (shape, to_vec(t).into_iter().map(f64::from).collect())
            })
            .collect();
        Ok(Mpo::from_cores(cores)?)
    }

    /// The layer's shape (modes and bond dimensions), as it was built.
    pub fn spec(&self) -> &MpoSpec {
        &self.spec
    }

    /// `y = x W^T + b` for `x: [batch, prod I]`, with the plan chosen by the cost model.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let plan = self.spec().best_plan(x.dims()[0]);
        self.forward_with(x, plan)
    }

    /// `y = x W^T + b` with an explicit contraction plan.
    pub fn forward_with(&self, x: Tensor<2>, plan: Plan) -> Tensor<2> {
        let spec = &self.spec;
        let [batch, n_in] = x.dims();
        assert_eq!(
            n_in,
            spec.in_features(),
            "MpoLinear {spec}: input has {n_in} features, the layer takes {}",
            spec.in_features()
        );
        let y = match plan {
            Plan::Dense if spec.len() >= 2 && crate::kernels::on_flex(&x) => {
                self.over_halves(true, x, spec, batch, spec.len() / 2)
            }
            Plan::Dense => x.matmul(self.dense_transposed()),
            Plan::RightToLeft => self.sweep_right_to_left(x, spec, batch),
            Plan::LeftToRight => self.sweep_left_to_right(x, spec, batch),
            Plan::Split(m) => self.over_halves(false, x, spec, batch, m),
        };
        match &self.bias {
            Some(b) => y + b.val().unsqueeze::<2>(),
            None => y,
        }
    }

    fn sweep_right_to_left(&self, x: Tensor<2>, spec: &MpoSpec, batch: usize) -> Tensor<2> {
        let d = spec.len();
        let r = spec.bond_dims_with_boundaries();
        let n_before = |k: usize| spec.in_modes[..k].iter().product::<usize>();
        // state [B * prod_{j<k} I_j, I_k r_k, prod_{j>k} J_j], starting at k = d-1 with r_d = 1.
        let mut m_after = 1;
        let mut state: Tensor<3> = x.reshape([batch * n_before(d - 1), spec.in_modes[d - 1], 1]);
        for k in (0..d).rev() {
            let [rl, i, j, rr] = spec.core_shape(k);
            // core as [r_{k-1} J_k, I_k r_k]
            let a = self.cores[k]
                .val()
                .permute([0, 2, 1, 3])
                .reshape([1, rl * j, i * rr]);
            let p = batch * n_before(k);
            let out = if m_after == 1 {
                // [P, I r] @ [I r, r' J]: one plain GEMM
                let s2: Tensor<2> = state.reshape([p, i * rr]);
                s2.matmul(a.reshape([rl * j, i * rr]).transpose())
                    .reshape([p, rl * j, 1])
            } else {
                a.matmul(state) // [P, r_{k-1} J_k, M_{>k}]
            };
            m_after *= j;
            state = if k > 0 {
                let i_prev = spec.in_modes[k - 1];
                out.reshape([p / i_prev, i_prev * r[k], m_after])
            } else {
                out
            };
        }
        state.reshape([batch, spec.out_features()])
    }

    fn sweep_left_to_right(&self, x: Tensor<2>, spec: &MpoSpec, batch: usize) -> Tensor<2> {
        let d = spec.len();
        // state [B * prod_{j<k} J_j, r_{k-1}, I_k, prod_{j>k} I_j]; each step is one GEMM
        // [(P rest), r I] x [r I, J r'] between two transposes, so the GEMM sees all samples at once.
        let mut p = batch;
        let mut state: Tensor<4> =
            x.reshape([batch, 1, spec.in_modes[0], spec.in_features() / spec.in_modes[0]]);
        for k in 0..d {
            let [rl, i, j, rr] = spec.core_shape(k);
            let rest = state.dims()[3];
            let g: Tensor<2> = self.cores[k].val().reshape([rl * i, j * rr]);
            let flat: Tensor<2> = state.permute([0, 3, 1, 2]).reshape([p * rest, rl * i]);
            let out = flat.matmul(g).reshape([p, rest, j, rr]).permute([0, 2, 3, 1]); // [P, J, r', rest]
            p *= j;
            state = if k + 1 < d {
                let i_next = spec.in_modes[k + 1];
                out.reshape([p, rr, i_next, rest / i_next])
            } else {
                out.reshape([p, 1, 1, 1])
            };
        }
        state.reshape([batch, spec.out_features()])
    }

    /// Cores `lo..hi` contracted over their inner bonds: `[r_lo, prod I, prod J, r_hi]` with the
    /// input and output indices row-major (differentiable). Multiply-adds:
    /// `sum_{k in lo+1..hi} r_lo (prod_{lo<=j<=k} I_j J_j) r_{k-1} r_k`.
    pub fn merged_cores(&self, lo: usize, hi: usize) -> Tensor<4> {
        let spec = self.spec();
        let [r0, i0, j0, r1] = spec.core_shape(lo);
        let (mut n, mut m, mut r) = (i0, j0, r1);
        let mut t: Tensor<4> = self.cores[lo].val();
        for k in lo + 1..hi {
            let [_, i, j, rr] = spec.core_shape(k);
            let g: Tensor<2> = self.cores[k].val().reshape([r, i * j * rr]);
            let prod: Tensor<2> = t.reshape([r0 * n * m, r]).matmul(g);
            // [r0, n, m, i, j, rr] -> [r0, n, i, m, j, rr]
            t = prod
                .reshape([r0 * n, m, i, j * rr])
                .swap_dims(1, 2)
                .reshape([r0, n * i, m * j, rr]);
            (n, m, r) = (n * i, m * j, rr);
        }
        t
    }

    /// The split plan at bond `m` (`0 < m < d`): with `A = cores 0..m` (`[I_<, J_<, r_m]`) and
    /// `B = cores m..d` (`[r_m, I_>=, J_>=]`) merged,
    /// `T[b, i_<, r, j_>=] = sum_{i_>=} x[b, i_<, i_>=] B[r, i_>=, j_>=]` (one GEMM of
    /// `B I_< x I_>= x r_m J_>=`), then `y[b, j_<, j_>=] = sum_{i_<, r} T A` (one GEMM of
    /// `B J_>= x I_< r_m x J_<`). Two large GEMMs instead of `d` thin ones, and fewer
    /// multiply-adds than the sweeps when the bond in the middle is large:
    /// `r_m (N_in J_>= + I_< N_out)` per sample.
    ///
    /// On the Flex backend both this and the reconstruct plan run as fused kernels over the two
    /// halves (`rebuild`: [`crate::kernels::rebuild`], else [`crate::kernels::split`]); elsewhere
    /// the split plan is written with burn ops.
    fn over_halves(&self, rebuild: bool, x: Tensor<2>, spec: &MpoSpec, batch: usize, m: usize) -> Tensor<2> {
        let d = spec.len();
        assert!(0 < m && m < d, "split plan at bond {m} of a {d}-core MPO");
        let r = spec.bond_dims_with_boundaries()[m];
        let i_lo: usize = spec.in_modes[..m].iter().product();
        let i_hi = spec.in_features() / i_lo;
        let j_lo: usize = spec.out_modes[..m].iter().product();
        let j_hi = spec.out_features() / j_lo;
        let on_flex = crate::kernels::on_flex(&x);
        let shape = [batch, i_lo, i_hi, r, j_lo, j_hi];
        if rebuild && on_flex {
            // the reconstruct kernel takes the halves as merged: [(i_<, j_<), r], [r, (i_>=, j_>=)]
            let left = self.merged_cores(0, m).reshape([i_lo * j_lo, r]);
            let right = self.merged_cores(m, d).reshape([r, i_hi * j_hi]);
            return crate::kernels::mpo_halves(true, x, left, right, shape);
        }
        let right: Tensor<2> = self
            .merged_cores(m, d)
            .reshape([r, i_hi, j_hi])
            .swap_dims(0, 1)
            .reshape([i_hi, r * j_hi]);
        let left: Tensor<2> = self.merged_cores(0, m).reshape([i_lo * j_lo, r]);
        let left: Tensor<2> = left
            .reshape([i_lo, j_lo, r])
            .swap_dims(1, 2)
            .reshape([i_lo * r, j_lo]);
        if on_flex {
            return crate::kernels::mpo_halves(false, x, left, right, shape);
        }
        let t: Tensor<2> = x.reshape([batch * i_lo, i_hi]).matmul(right);
        let t: Tensor<2> = t
            .reshape([batch, i_lo * r, j_hi])
            .swap_dims(1, 2)
            .reshape([batch * j_hi, i_lo * r]);
        t.matmul(left)
            .reshape([batch, j_hi, j_lo])
            .swap_dims(1, 2)
            .reshape([batch, spec.out_features()])
    }

    /// `W^T` as a `[prod I, prod J]` tensor, rebuilt from the cores (differentiable).
    pub fn dense_transposed(&self) -> Tensor<2> {
        let spec = self.spec();
        self.merged_cores(0, spec.len())
            .reshape([spec.in_features(), spec.out_features()])
    }

    /// The dense weight `W` (`prod J x prod I`, row-major), as f32.
    pub fn to_dense(&self) -> Vec<f32> {
        to_vec(self.dense_transposed().transpose())
    }

    /// Parameters of the cores (no bias).
    pub fn num_params(&self) -> usize {
        self.spec().num_params()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_cores(a: f64, b: f64) -> Mpo {
        Mpo::from_cores(vec![
            ([1, 2, 2, 1], vec![a, 0.5 * a, 0.0, a]),
            ([1, 2, 2, 1], vec![b, b, -b, 0.25 * b]),
        ])
        .unwrap()
    }

    /// A TT-SVD leaves the norm on one core; f32 holds the operator when it is spread out.
    #[test]
    fn f32_cores_spread_the_scale_and_keep_the_operator() {
        let mpo = two_cores(1e-30, 1e60);
        let cores = f32_cores(&mpo).unwrap();
        let back = Mpo::from_cores(
            cores
                .iter()
                .map(|c| ([1, 2, 2, 1], c.iter().map(|&v| f64::from(v)).collect()))
                .collect(),
        )
        .unwrap();
        let (a, b) = (mpo.to_dense().unwrap(), back.to_dense().unwrap());
        assert!((&a - &b).norm_max() <= 1e-6 * a.norm_max(), "{a:?} vs {b:?}");
        // ordinary cores are unchanged but for the power-of-two balance
        let plain = f32_cores(&two_cores(1.0, 1.0)).unwrap();
        assert_eq!(plain[0], vec![1.0, 0.5, 0.0, 1.0]);
        // an operator past f32's range is refused, naming the core
        let err = f32_cores(&two_cores(1e200, 1e200)).unwrap_err().to_string();
        assert!(err.contains("exceeds f32's range"), "{err}");
    }
}

//! [`Mps`]: a matrix product state, its dense conversions and TT-SVD.
//!
//! ```text
//!   bond:     1       2             N-1
//!   A[0] --- A[1] --- A[2] - ... - A[N-1]        A[k]: [left, phys, right]
//!    |        |        |             |           boundary bonds have size 1
//!    d0       d1       d2            d_{N-1}
//! ```
//!
//! `bond` b is the link between site b-1 and site b (= number of sites to its left), valid
//! `1..len`. The state is the vector `psi[p0, ..., p_{N-1}] = A[0][:, p0, :] ... A[N-1][:, p_{N-1}, :]`
//! with `p0` the most significant index (row-major).

use crate::bonds::rank_caps;
use crate::error::{check_finite, check_modes, saturating_product, CoreError, Result};
use crate::linalg::{matmul, svd_unchecked, to_row_major, view};
use crate::site::SiteTensor;
use crate::trunc::{BondClamp, TruncParams, TruncReport, Truncation};

/// Largest dense vector `to_dense` builds (2^27 entries = 1 GiB of f64).
pub const DENSE_LIMIT: usize = 1 << 27;

/// A matrix product state with open boundaries.
///
/// Invariants: at least one site, boundary bonds of size 1, matching inner bonds. `center` is
/// `Some(c)` only when every site left of `c` is left-canonical and every site right of `c` is
/// right-canonical.
#[derive(Debug, Clone, PartialEq)]
pub struct Mps {
    pub(crate) sites: Vec<SiteTensor>,
    pub(crate) center: Option<usize>,
}

impl Mps {
    /// Builds an MPS from its site tensors. The gauge is unknown (no orthogonality center).
    ///
    /// # Errors
    /// No sites, a boundary bond other than 1, or neighbouring bonds that disagree.
    pub fn from_sites(sites: Vec<SiteTensor>) -> Result<Self> {
        let n = sites.len();
        if n == 0 {
            return Err(CoreError::EmptyModes { what: "sites" });
        }
        if sites[0].left() != 1 || sites[n - 1].right() != 1 {
            return Err(CoreError::ShapeMismatch {
                what: "boundary bonds (left of site 0, right of the last site)".into(),
                expected: "1 and 1".into(),
                got: format!("{} and {}", sites[0].left(), sites[n - 1].right()),
            });
        }
        for k in 0..n - 1 {
            if sites[k].right() != sites[k + 1].left() {
                return Err(CoreError::ShapeMismatch {
                    what: format!("bond {} (site {k} right vs site {} left)", k + 1, k + 1),
                    expected: sites[k].right().to_string(),
                    got: sites[k + 1].left().to_string(),
                });
            }
        }
        Ok(Self { sites, center: None })
    }

    /// The product state `v_0 (x) v_1 (x) ... (x) v_{N-1}` (bond dimension 1).
    ///
    /// # Errors
    /// An empty list, an empty vector, or a non-finite entry.
    pub fn product_state(vectors: &[Vec<f64>]) -> Result<Self> {
        let sites = vectors
            .iter()
            .map(|v| SiteTensor::new(1, v.len(), 1, v.clone()))
            .collect::<Result<Vec<_>>>()?;
        Self::from_sites(sites)
    }

    /// Number of sites.
    pub fn len(&self) -> usize {
        self.sites.len()
    }

    /// Always false: an MPS has at least one site.
    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// The site tensors.
    pub fn sites(&self) -> &[SiteTensor] {
        &self.sites
    }

    /// Takes the site tensors out (no copy); [`Mps::from_sites`] puts them back.
    pub fn into_sites(self) -> Vec<SiteTensor> {
        self.sites
    }

    /// The physical dimension of every site.
    pub fn phys_dims(&self) -> Vec<usize> {
        self.sites.iter().map(SiteTensor::phys).collect()
    }

    /// Bond dimensions; entry `b - 1` is bond `b` (`len - 1` entries).
    pub fn bond_dims(&self) -> Vec<usize> {
        self.sites[..self.len() - 1]
            .iter()
            .map(SiteTensor::right)
            .collect()
    }

    /// Dimension of one bond.
    ///
    /// # Errors
    /// [`CoreError::BondOutOfRange`] unless `1 <= bond < len`.
    pub fn bond_dim(&self, bond: usize) -> Result<usize> {
        self.check_bond(bond)?;
        Ok(self.sites[bond].left())
    }

    /// Largest bond dimension (1 for a single site).
    pub fn max_bond_dim(&self) -> usize {
        self.bond_dims().into_iter().max().unwrap_or(1)
    }

    /// Number of stored parameters, `sum_k left_k * phys_k * right_k`.
    pub fn num_params(&self) -> usize {
        self.sites.iter().map(SiteTensor::len).sum()
    }

    /// Rank cap of each bond, `min(prod of phys dims left of it, prod right of it)`.
    pub fn rank_caps(&self) -> Vec<usize> {
        rank_caps(&self.phys_dims())
    }

    /// The orthogonality center, if the state is in (mixed) canonical form.
    pub fn ortho_center(&self) -> Option<usize> {
        self.center
    }

    pub(crate) fn check_bond(&self, bond: usize) -> Result<()> {
        if bond == 0 || bond >= self.len() {
            return Err(CoreError::BondOutOfRange {
                bond,
                len: self.len(),
            });
        }
        Ok(())
    }

    /// Inner product `<self|other> = sum_p self[p] other[p]`.
    ///
    /// The environment is rescaled at every site and the scale kept as a logarithm, so long
    /// chains do not underflow or overflow unless the result itself does.
    ///
    /// # Errors
    /// The two states have different physical dimensions.
    ///
    /// # Complexity
    /// O(N d D^3).
    pub fn inner(&self, other: &Mps) -> Result<f64> {
        if self.phys_dims() != other.phys_dims() {
            return Err(CoreError::ShapeMismatch {
                what: "physical dimensions of the two states".into(),
                expected: format!("{:?}", self.phys_dims()),
                got: format!("{:?}", other.phys_dims()),
            });
        }
        let mut env = vec![1.0];
        let mut log_scale = 0.0;
        for (a, b) in self.sites.iter().zip(&other.sites) {
            let (la, p, ra) = (a.left(), a.phys(), a.right());
            let (lb, rb) = (b.left(), b.right());
            // X[lb, (p, ra)] = sum_la E[la, lb] A[la, (p, ra)]
            let x = view(&env, la, lb).transpose() * view(a.data(), la, p * ra);
            let x = to_row_major(x.as_ref());
            // E'[ra, rb] = sum_(lb, p) X[(lb, p), ra] B[(lb, p), rb]
            let e = view(&x, lb * p, ra).transpose() * view(b.data(), lb * p, rb);
            env = to_row_major(e.as_ref());
            let m = env.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            if m == 0.0 {
                return Ok(0.0);
            }
            env.iter_mut().for_each(|x| *x /= m);
            log_scale += m.ln();
        }
        Ok(env[0] * log_scale.exp())
    }

    /// Euclidean norm `sqrt(<self|self>)`.
    pub fn norm(&self) -> f64 {
        self.inner(self).map(|x| x.max(0.0).sqrt()).unwrap_or(0.0)
    }

    /// Contracts the chain into the dense vector (row-major over `p0 .. p_{N-1}`).
    ///
    /// # Errors
    /// [`CoreError::TooLarge`] above [`DENSE_LIMIT`] entries.
    pub fn to_dense(&self) -> Result<Vec<f64>> {
        let entries = saturating_product(&self.phys_dims());
        if entries > DENSE_LIMIT {
            return Err(CoreError::TooLarge {
                what: "dense state",
                entries,
                limit: DENSE_LIMIT,
            });
        }
        let mut acc = vec![1.0];
        let mut prefix = 1;
        for s in &self.sites {
            acc = matmul(&acc, prefix, s.left(), s.data(), s.phys() * s.right());
            prefix *= s.phys();
        }
        Ok(acc)
    }

    /// TT-SVD: decomposes a dense vector with `phys_dims` (row-major, site 0 most significant)
    /// into an MPS by a left-to-right sweep of truncated SVDs.
    ///
    /// The result is left-canonical with its orthogonality center on the last site. The report
    /// has one [`Truncation`] per bond; the dropped pieces are orthogonal, so
    /// `report.total_discarded_weight() = ||psi - psi~||^2 / ||psi||^2`. Where a capped
    /// `max_bond` exceeds a bond's rank cap, the cap is used and a [`BondClamp`] recorded.
    ///
    /// # Errors
    /// Invalid `params` or modes, `prod(phys_dims) != data.len()`, a non-finite entry.
    ///
    /// # Complexity
    /// Dominated by the first SVD, O(d0^2 * len) for a vector of length `len`.
    pub fn from_dense(
        data: &[f64],
        phys_dims: &[usize],
        params: &TruncParams,
    ) -> Result<(Self, TruncReport)> {
        params.validate()?;
        check_modes("phys_dims", phys_dims)?;
        let product = saturating_product(phys_dims);
        if product != data.len() {
            return Err(CoreError::ModeProductMismatch {
                what: "phys_dims",
                product,
                target: "vector",
                expected: data.len(),
                axis: "entries",
            });
        }
        check_finite("vector", data)?;
        let (sites, report) = tt_svd(data.to_vec(), phys_dims, params)?;
        Ok((
            Self {
                sites,
                center: Some(phys_dims.len() - 1),
            },
            report,
        ))
    }
}

/// The TT-SVD sweep on validated input.
pub(crate) fn tt_svd(
    data: Vec<f64>,
    dims: &[usize],
    params: &TruncParams,
) -> Result<(Vec<SiteTensor>, TruncReport)> {
    let n = dims.len();
    let caps = rank_caps(dims);
    let mut report = TruncReport {
        initial_norm2: data.iter().map(|x| x * x).sum(),
        ..TruncReport::default()
    };
    let mut sites = Vec::with_capacity(n);
    let mut rem = data;
    let mut r_prev = 1;
    let mut right_size = rem.len();
    for k in 0..n - 1 {
        right_size /= dims[k];
        let rows = r_prev * dims[k];
        let bond = k + 1;
        if params.is_capped() && params.max_bond > caps[k] {
            report.clamps.push(BondClamp {
                bond,
                requested: params.max_bond,
                cap: caps[k],
            });
        }
        let svd = svd_unchecked(view(&rem, rows, right_size), params)?;
        let kept = svd.s.len();
        sites.push(SiteTensor::from_parts(
            r_prev,
            dims[k],
            kept,
            to_row_major(svd.u.as_ref()),
        ));
        let mut next = to_row_major(svd.vt.as_ref());
        for (row, s) in next.chunks_mut(right_size).zip(&svd.s) {
            row.iter_mut().for_each(|x| *x *= s);
        }
        rem = next;
        report.bonds.push(Truncation {
            bond,
            ..svd.truncation
        });
        r_prev = kept;
    }
    sites.push(SiteTensor::from_parts(r_prev, dims[n - 1], 1, rem));
    Ok((sites, report))
}

/// TT-SVD sweeping right to left: the last bond is split first, each split seeing the Schmidt
/// values of the (already truncated) state at its bond. This is the convention of
/// [`Mps::truncate`]: the result equals the exact decomposition truncated by `truncate(params)`
/// up to rounding and gauge, so one bond cap gives one answer whichever path made it. The sites
/// are right-canonical with the center on site 0; the report lists bonds in bond order.
///
/// Done as the left-to-right sweep of the tensor with its axes reversed (one O(len) transpose),
/// each site then flipped back.
pub(crate) fn tt_svd_right_to_left(
    data: Vec<f64>,
    dims: &[usize],
    params: &TruncParams,
) -> Result<(Vec<SiteTensor>, TruncReport)> {
    let n = dims.len();
    let reversed_dims: Vec<usize> = dims.iter().rev().copied().collect();
    let reversed = reverse_axes(&data, dims);
    drop(data);
    let (sites, mut report) = tt_svd(reversed, &reversed_dims, params)?;
    let out: Vec<SiteTensor> = sites.iter().rev().map(flip_site).collect();
    for t in &mut report.bonds {
        t.bond = n - t.bond;
    }
    for c in &mut report.clamps {
        c.bond = n - c.bond;
    }
    report.bonds.reverse();
    report.clamps.reverse();
    Ok((out, report))
}

/// The row-major tensor with `dims` re-laid out with its axes in reverse order.
fn reverse_axes(data: &[f64], dims: &[usize]) -> Vec<f64> {
    // strides of the reversed layout, indexed by the original axis
    let mut rev_stride = vec![1usize; dims.len()];
    for k in 1..dims.len() {
        rev_stride[k] = rev_stride[k - 1] * dims[k - 1];
    }
    let mut out = vec![0.0; data.len()];
    let mut index = vec![0usize; dims.len()];
    let mut target = 0usize;
    for &x in data {
        out[target] = x;
        // increment the original multi-index (last axis fastest), tracking the reversed offset
        for k in (0..dims.len()).rev() {
            index[k] += 1;
            target += rev_stride[k];
            if index[k] < dims[k] {
                break;
            }
            target -= rev_stride[k] * dims[k];
            index[k] = 0;
        }
    }
    out
}

/// A site `(l, p, r)` read as `(r, p, l)`: the same tensor with its bonds swapped.
fn flip_site(s: &SiteTensor) -> SiteTensor {
    let (l, p, r) = (s.left(), s.phys(), s.right());
    let src = s.data();
    let mut data = vec![0.0; src.len()];
    for a in 0..l {
        for x in 0..p {
            for b in 0..r {
                data[(b * p + x) * l + a] = src[(a * p + x) * r + b];
            }
        }
    }
    SiteTensor::from_parts(r, p, l, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ghz(n: usize) -> Mps {
        let mut sites = Vec::new();
        for k in 0..n {
            let (l, r) = (if k == 0 { 1 } else { 2 }, if k == n - 1 { 1 } else { 2 });
            let mut data = vec![0.0; l * 2 * r];
            for b in 0..2 {
                let (li, ri) = (if l == 1 { 0 } else { b }, if r == 1 { 0 } else { b });
                data[(li * 2 + b) * r + ri] = 1.0;
            }
            sites.push(SiteTensor::new(l, 2, r, data).unwrap());
        }
        Mps::from_sites(sites).unwrap()
    }

    #[test]
    fn ghz_dense_has_two_entries() {
        let d = ghz(3).to_dense().unwrap();
        assert_eq!(d, vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert!((ghz(3).norm() - 2f64.sqrt()).abs() < 1e-14);
    }

    #[test]
    fn inner_matches_dense_dot() {
        let v: Vec<f64> = (0..24).map(|i| ((i * 7 % 11) as f64) - 5.0).collect();
        let w: Vec<f64> = (0..24).map(|i| ((i * 5 % 13) as f64) * 0.5).collect();
        let (a, _) = Mps::from_dense(&v, &[2, 3, 4], &TruncParams::exact()).unwrap();
        let (b, _) = Mps::from_dense(&w, &[2, 3, 4], &TruncParams::exact()).unwrap();
        let dot: f64 = v.iter().zip(&w).map(|(x, y)| x * y).sum();
        assert!((a.inner(&b).unwrap() - dot).abs() < 1e-10 * dot.abs().max(1.0));
    }

    #[test]
    fn inner_rescales_environments_on_long_chains() {
        // The first 200 sites shrink the environment to 1e-600 (below f64's range), the last
        // 200 grow it back: the true inner product is 1, a naive contraction returns 0.
        let mut a = vec![vec![1e-3, 0.0]; 200];
        a.extend(vec![vec![1e3, 0.0]; 200]);
        let a = Mps::product_state(&a).unwrap();
        let b = Mps::product_state(&vec![vec![1.0, 1.0]; 400]).unwrap();
        assert!((a.inner(&b).unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn from_sites_rejects_bad_bonds() {
        let a = SiteTensor::new(1, 2, 3, vec![0.0; 6]).unwrap();
        let b = SiteTensor::new(2, 2, 1, vec![0.0; 4]).unwrap();
        let err = Mps::from_sites(vec![a, b]).unwrap_err();
        assert!(err.to_string().contains("bond 1"), "{err}");
        assert!(Mps::from_sites(vec![]).is_err());
    }

    #[test]
    fn from_dense_rejects_bad_input() {
        let v = vec![1.0; 12];
        let err = Mps::from_dense(&v, &[2, 5], &TruncParams::exact()).unwrap_err();
        assert_eq!(err.to_string(), "phys_dims multiply to 10, vector has 12 entries");
        assert!(matches!(
            Mps::from_dense(&v, &[], &TruncParams::exact()),
            Err(CoreError::EmptyModes { .. })
        ));
        assert!(matches!(
            Mps::from_dense(&v, &[3, 0, 4], &TruncParams::exact()),
            Err(CoreError::ZeroMode { index: 1, .. })
        ));
        assert_eq!(
            Mps::from_dense(&v, &[3, 4], &TruncParams::max_bond(0)).unwrap_err(),
            CoreError::ZeroMaxBond
        );
        let mut bad = v.clone();
        bad[5] = f64::NAN;
        let err = Mps::from_dense(&bad, &[3, 4], &TruncParams::exact()).unwrap_err();
        assert!(err.to_string().contains("index 5"), "{err}");
        assert!(matches!(
            ghz(3).bond_dim(3),
            Err(CoreError::BondOutOfRange { bond: 3, len: 3 })
        ));
        assert!(matches!(
            ghz(3).bond_dim(0),
            Err(CoreError::BondOutOfRange { bond: 0, len: 3 })
        ));
    }

    #[test]
    fn tt_svd_bond_dims_are_rank_caps_at_full_rank() {
        let v: Vec<f64> = (0..2 * 3 * 4 * 5)
            .map(|i| ((i * 37 % 101) as f64).sin())
            .collect();
        let (m, report) = Mps::from_dense(&v, &[2, 3, 4, 5], &TruncParams::exact()).unwrap();
        assert_eq!(m.bond_dims(), vec![2, 6, 5]);
        assert_eq!(m.bond_dims(), m.rank_caps());
        assert!(report.clamps.is_empty());
        let (_, capped) = Mps::from_dense(&v, &[2, 3, 4, 5], &TruncParams::max_bond(4)).unwrap();
        assert_eq!(
            capped.clamps,
            vec![BondClamp {
                bond: 1,
                requested: 4,
                cap: 2
            }]
        );
    }
}

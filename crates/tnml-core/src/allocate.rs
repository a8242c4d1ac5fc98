//! Bond dimensions chosen per bond from the entanglement spectra: the smallest MPO (or MPS)
//! within a relative error, without picking one bond dimension for everything.
//!
//! For a chain in canonical form, truncating bond `b` to `r_b` values drops the weight
//! `w_b(r_b) = sum_{i >= r_b} s_{b,i}^2` (Schmidt values of the normalized exact operator), and
//! truncating several bonds at once has squared relative error at most `sum_b w_b(r_b)` (the
//! TT-SVD bound, Oseledets 2011, Thm 2.2). So a budget `beta` on `sum_b w_b(r_b)` bounds the
//! error by `sqrt(beta)`.
//!
//! [`choose_bonds`] spends a budget `beta` greedily: starting from the exact ranks, it
//! repeatedly removes the one Schmidt value, over all bonds, that costs the least per parameter
//! saved (`r_{b-1} p_b + p_{b+1} r_{b+1}` parameters, `p` the physical dimensions of the two cores
//! it touches), as long as the weight kept, counted as `prod_b (1 - w_b(r_b))`, stays at least
//! `1 - beta`. The cost of a value is the growth of `-ln prod_b (1 - w_b)`: for small weights the
//! plain sum `sum_b w_b` (the TT-SVD bound), for large ones it lets several bonds each drop a
//! large share, as independent cuts do (the bound's sum would exceed 1 long before the true
//! error does). As DMRG truncates to one global error instead of one bond dimension, bonds whose
//! spectra fall fast give up many values and flat ones keep theirs. Cost: O(sum of ranks x
//! bonds).
//!
//! [`compress_to_error`] turns that into the smallest MPO whose *measured* relative error is
//! within a target (the bound is loose, so the budget is raised by bisection as long as the
//! measured error stays within the target); [`smallest_uniform_bond`] is the baseline: the
//! smallest single bond dimension for every bond that meets the same target.

use crate::error::{CoreError, Result};
use crate::mpo::Mpo;
use crate::trunc::TruncParams;

/// Parameters of a chain with physical dimensions `phys` (site k: `r_{k-1} p_k r_k`) and bond
/// dimensions `bonds` (`phys.len() - 1` entries; boundary bonds are 1).
pub fn chain_params(phys: &[usize], bonds: &[usize]) -> usize {
    (0..phys.len())
        .map(|k| {
            let l = if k == 0 { 1 } else { bonds[k - 1] };
            let r = bonds.get(k).copied().unwrap_or(1);
            l * phys[k] * r
        })
        .sum()
}

/// Bond dimensions chosen within a weight budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BondChoice {
    /// Bond dimension per bond, bond 1 first.
    pub bond_dims: Vec<usize>,
    /// `sum_b w_b(r_b)`: the bound on the squared relative error.
    pub discarded: f64,
    /// `prod_b (1 - w_b(r_b))`: the weight kept, as the budget counts it (`>= 1 - beta`).
    pub kept: f64,
    /// Parameters of the chain at these bond dimensions.
    pub params: usize,
}

/// Greedy allocation (module docs): `spectra[b - 1]` are the Schmidt values of bond `b`
/// (nonincreasing, normalized to `sum s^2 = 1`; their count is the exact rank), `phys` the
/// physical dimension of each site, `budget` the share of the weight that may be dropped
/// (`prod_b (1 - w_b) >= 1 - budget`).
///
/// # Errors
/// Spectra and sites that do not match, an empty spectrum, a budget outside `[0, 1]`.
pub fn choose_bonds(phys: &[usize], spectra: &[Vec<f64>], budget: f64) -> Result<BondChoice> {
    let mut out = choose_bonds_across(&[(phys, spectra)], budget)?;
    Ok(out.remove(0))
}

/// [`choose_bonds`] for several chains (the layers of a network) with one budget: the greedy
/// step looks at every bond of every chain, so the values dropped are those that cost the least
/// kept weight per parameter saved in the whole model (a small layer, which saves few
/// parameters per value, keeps its bonds), and `prod` over all bonds of all chains of
/// `(1 - w_b)` stays at least `1 - budget`.
///
/// # Errors
/// As [`choose_bonds`], for any chain.
pub fn choose_bonds_across(chains: &[(&[usize], &[Vec<f64>])], budget: f64) -> Result<Vec<BondChoice>> {
    for (phys, spectra) in chains {
        if spectra.len() + 1 != phys.len() {
            return Err(CoreError::ShapeMismatch {
                what: format!("spectra for {} sites", phys.len()),
                expected: format!("{} bonds", phys.len().saturating_sub(1)),
                got: format!("{} spectra", spectra.len()),
            });
        }
        if let Some(b) = spectra.iter().position(Vec::is_empty) {
            return Err(CoreError::ShapeMismatch {
                what: format!("the spectrum of bond {}", b + 1),
                expected: "at least one Schmidt value".into(),
                got: "none".into(),
            });
        }
    }
    if !(0.0..=1.0).contains(&budget) {
        return Err(CoreError::InvalidCutoff(budget));
    }
    let mut r: Vec<Vec<usize>> = chains
        .iter()
        .map(|(_, s)| s.iter().map(Vec::len).collect())
        .collect();
    let mut dropped: Vec<Vec<f64>> = r.iter().map(|v| vec![0.0; v.len()]).collect(); // w_b(r_b)
                                                                                     // -ln of the weight kept; the budget in the same units (infinite for budget = 1)
    let limit = -(1.0 - budget).ln();
    let mut spent = 0.0f64;
    loop {
        let mut best: Option<(usize, usize, f64, f64)> = None; // (chain, bond, cost, cost per param)
        for (c, (phys, spectra)) in chains.iter().enumerate() {
            let n_bonds = r[c].len();
            for b in 0..n_bonds {
                if r[c][b] <= 1 {
                    continue;
                }
                let w = spectra[b][r[c][b] - 1].powi(2);
                let after = (dropped[c][b] + w).min(1.0);
                let cost = (1.0 - dropped[c][b]).ln() - (1.0 - after).ln();
                if spent + cost > limit || (w > 0.0 && budget == 0.0) {
                    continue;
                }
                let left = if b == 0 { 1 } else { r[c][b - 1] };
                let right = if b + 1 == n_bonds { 1 } else { r[c][b + 1] };
                let saved = (left * phys[b] + phys[b + 1] * right) as f64;
                let ratio = cost / saved;
                if best.is_none_or(|(_, _, _, q)| ratio < q) {
                    best = Some((c, b, cost, ratio));
                }
            }
        }
        let Some((c, b, cost, _)) = best else { break };
        dropped[c][b] += chains[c].1[b][r[c][b] - 1].powi(2);
        r[c][b] -= 1;
        spent += cost;
    }
    Ok(chains
        .iter()
        .zip(r)
        .zip(dropped)
        .map(|(((phys, _), r), d)| BondChoice {
            params: chain_params(phys, &r),
            bond_dims: r,
            discarded: d.iter().sum(),
            kept: d.iter().map(|x| 1.0 - x).product(),
        })
        .collect())
}

/// An MPO compressed to a relative error.
#[derive(Debug, Clone, PartialEq)]
pub struct Compressed {
    /// The truncated operator.
    pub mpo: Mpo,
    /// Its bond dimensions.
    pub bond_dims: Vec<usize>,
    /// Measured relative Frobenius error `||W - W~|| / ||W||`.
    pub error: f64,
    /// Its parameters.
    pub params: usize,
}

/// Squared relative error of `mpo` truncated to `bonds` (exact: the dropped pieces of the
/// canonical sweep are orthogonal), with the truncated operator.
fn truncated(mpo: &Mpo, bonds: &[usize]) -> Result<(Mpo, f64)> {
    let mut m = mpo.clone();
    let report = m.truncate_to_bonds(bonds)?;
    Ok((m, report.total_discarded_weight()))
}

fn phys_dims(mpo: &Mpo) -> Vec<usize> {
    mpo.in_modes()
        .iter()
        .zip(mpo.out_modes())
        .map(|(i, o)| i * o)
        .collect()
}

fn check_error(max_error: f64) -> Result<()> {
    if !(0.0..1.0).contains(&max_error) {
        return Err(CoreError::InvalidCutoff(max_error));
    }
    Ok(())
}

/// The smallest MPO found within relative error `max_error` by the greedy allocation, the
/// budget raised by bisection (16 steps between `max_error^2` and 1) while the measured error
/// stays within the target. `mpo` should be exact (TT-SVD at full rank).
///
/// # Errors
/// `max_error` outside `[0, 1)`, a zero operator.
pub fn compress_to_error(mpo: &Mpo, max_error: f64) -> Result<Compressed> {
    check_error(max_error)?;
    let target = max_error * max_error;
    let phys = phys_dims(mpo);
    let profile = mpo.entanglement_profile()?;
    let spectra: Vec<Vec<f64>> = profile.bonds.into_iter().map(|b| b.spectrum).collect();
    let attempt = |beta: f64| -> Result<(BondChoice, Mpo, f64)> {
        let choice = choose_bonds(&phys, &spectra, beta)?;
        let (m, err2) = truncated(mpo, &choice.bond_dims)?;
        Ok((choice, m, err2))
    };
    let mut best = attempt(target)?;
    let (mut lo, mut hi) = (target, 1.0f64);
    for _ in 0..16 {
        let mid = 0.5 * (lo + hi);
        let cand = attempt(mid)?;
        if cand.2 <= target {
            lo = mid;
            if cand.0.params < best.0.params {
                best = cand;
            }
        } else {
            hi = mid;
        }
    }
    let (choice, m, err2) = best;
    Ok(Compressed {
        mpo: m,
        params: choice.params,
        bond_dims: choice.bond_dims,
        error: err2.max(0.0).sqrt(),
    })
}

/// The baseline: the smallest single bond dimension `D` (every bond capped at `D`) whose
/// measured relative error is within `max_error`.
///
/// # Errors
/// `max_error` outside `[0, 1)`.
pub fn smallest_uniform_bond(mpo: &Mpo, max_error: f64) -> Result<Compressed> {
    check_error(max_error)?;
    let target = max_error * max_error;
    let phys = phys_dims(mpo);
    let full = mpo.bond_dims().into_iter().max().unwrap_or(1);
    let run = |d: usize| -> Result<(Mpo, f64)> {
        let mut m = mpo.clone();
        let report = m.truncate(&TruncParams::max_bond(d))?;
        Ok((m, report.total_discarded_weight()))
    };
    let (mut lo, mut hi) = (1usize, full.max(1)); // the answer lies in lo..=hi
    while lo < hi {
        let mid = (lo + hi) / 2;
        if run(mid)?.1 <= target {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let (m, err2) = run(lo)?;
    let bond_dims = m.bond_dims();
    Ok(Compressed {
        params: chain_params(&phys, &bond_dims),
        bond_dims,
        error: err2.max(0.0).sqrt(),
        mpo: m,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    fn lcg(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    }

    /// An MPO with random cores of the given bond dimensions: generic, so its exact ranks are
    /// those dimensions (when they are below the rank caps).
    fn random_mpo(modes: &[usize], bonds: &[usize], seed: u64) -> Mpo {
        let mut s = seed;
        let n = modes.len();
        let cores = (0..n)
            .map(|k| {
                let l = if k == 0 { 1 } else { bonds[k - 1] };
                let r = if k + 1 == n { 1 } else { bonds[k] };
                let shape = [l, modes[k], modes[k], r];
                (
                    shape,
                    (0..l * modes[k] * modes[k] * r).map(|_| lcg(&mut s)).collect(),
                )
            })
            .collect();
        Mpo::from_cores(cores).unwrap()
    }

    fn exact(m: &Mpo) -> Mpo {
        let w = m.to_dense().unwrap();
        Mpo::from_dense(w.as_ref(), m.in_modes(), m.out_modes(), &TruncParams::exact())
            .unwrap()
            .0
    }

    #[test]
    fn zero_error_gives_the_known_ranks() {
        // consistent with their neighbours (rank_b <= r_{b-1} p and <= p r_{b+1}) and the rank caps
        for (bonds, seed) in [
            (vec![2, 3, 2], 1),
            (vec![4, 4, 1], 2),
            (vec![3, 8, 2], 3),
            (vec![4, 16, 4], 4),
        ] {
            let m = exact(&random_mpo(&[2, 2, 2, 2], &bonds, seed));
            let spectra: Vec<Vec<f64>> = m
                .entanglement_profile()
                .unwrap()
                .bonds
                .into_iter()
                .map(|b| b.spectrum)
                .collect();
            let choice = choose_bonds(&[4, 4, 4, 4], &spectra, 0.0).unwrap();
            assert_eq!(choice.bond_dims, bonds);
            assert_eq!(choice.discarded, 0.0);
            let c = compress_to_error(&m, 1e-10).unwrap();
            assert_eq!(c.bond_dims, bonds);
            assert!(c.error < 1e-10);
            assert_eq!(c.params, chain_params(&[4, 4, 4, 4], &bonds));
            assert_eq!(c.params, c.mpo.num_params());
        }
    }

    #[test]
    fn the_budget_is_respected_and_the_error_measured() {
        let w = {
            let mut s = 9;
            Mat::from_fn(64, 64, |i, j| lcg(&mut s) + 0.2 * ((i * j) as f64 / 400.0).cos())
        };
        let m = Mpo::from_dense(w.as_ref(), &[4, 4, 4], &[4, 4, 4], &TruncParams::exact())
            .unwrap()
            .0;
        let phys = [16, 16, 16];
        let spectra: Vec<Vec<f64>> = m
            .entanglement_profile()
            .unwrap()
            .bonds
            .into_iter()
            .map(|b| b.spectrum)
            .collect();
        for budget in [0.01, 0.1, 0.3, 0.9] {
            let c = choose_bonds(&phys, &spectra, budget).unwrap();
            assert!(
                c.kept >= 1.0 - budget - 1e-12,
                "kept {} for budget {budget}",
                c.kept
            );
            assert!(budget > 0.3 || c.discarded <= -(1.0f64 - budget).ln());
            let (_, err2) = truncated(&m, &c.bond_dims).unwrap();
            assert!(
                err2 <= c.discarded * (1.0 + 1e-9) + 1e-15,
                "{err2} > bound {}",
                c.discarded
            );
        }
        for e in [0.05, 0.3, 0.6] {
            let auto = compress_to_error(&m, e).unwrap();
            let uni = smallest_uniform_bond(&m, e).unwrap();
            assert!(
                auto.error <= e && uni.error <= e,
                "{} {} {e}",
                auto.error,
                uni.error
            );
            // dense check of the measured error
            let dense = auto.mpo.to_dense().unwrap();
            let diff = (&dense - &w).norm_l2() / w.norm_l2();
            assert!((diff - auto.error).abs() < 1e-9, "{diff} vs {}", auto.error);
            // uniform one below the found D misses the target
            let d = uni.bond_dims.iter().copied().max().unwrap();
            if d > 1 {
                let mut lower = m.clone();
                let r = lower.truncate(&TruncParams::max_bond(d - 1)).unwrap();
                assert!(r.total_discarded_weight().sqrt() > e);
            }
        }
    }

    #[test]
    fn uneven_spectra_need_fewer_parameters_than_one_bond_for_all() {
        // bonds 1 and 3 with steep spectra (their index j scaled by 10^-2j), bond 2 flat: one
        // bond dimension for all must be as large as bond 2 needs everywhere
        let (modes, bonds) = ([2usize, 2, 2, 2], [4usize, 16, 4]);
        let mut s = 7;
        let cores = (0..4)
            .map(|k| {
                let l = if k == 0 { 1 } else { bonds[k - 1] };
                let r = if k == 3 { 1 } else { bonds[k] };
                let shape = [l, modes[k], modes[k], r];
                let mut data: Vec<f64> = (0..l * 4 * r).map(|_| lcg(&mut s)).collect();
                for (i, x) in data.iter_mut().enumerate() {
                    let (a, b) = (i / (4 * r), i % r);
                    match k {
                        0 => *x *= 1e-2f64.powi(b as i32),
                        3 => *x *= 1e-2f64.powi(a as i32),
                        _ => {}
                    }
                }
                (shape, data)
            })
            .collect();
        let m = exact(&Mpo::from_cores(cores).unwrap());
        for e in [1e-3, 1e-2, 0.1] {
            let auto = compress_to_error(&m, e).unwrap();
            let uni = smallest_uniform_bond(&m, e).unwrap();
            assert!(auto.error <= e && uni.error <= e);
            assert!(
                auto.params < uni.params,
                "error {e}: auto {:?} {} params, uniform {:?} {} params",
                auto.bond_dims,
                auto.params,
                uni.bond_dims,
                uni.params
            );
            assert!(auto.bond_dims[0] < auto.bond_dims[1] && auto.bond_dims[2] < auto.bond_dims[1]);
        }
    }

    #[test]
    fn one_budget_across_layers_spares_the_small_layer() {
        // a big layer and a small one with the same (flat) spectra: the budget goes to the big
        // one, where each value dropped saves more parameters
        let flat = |n: usize| vec![(1.0 / n as f64).sqrt(); n];
        let big = ([64usize, 64], vec![flat(64)]);
        let small = ([4usize, 4], vec![flat(4)]);
        let chains: Vec<(&[usize], &[Vec<f64>])> = vec![(&big.0, &big.1), (&small.0, &small.1)];
        let c = choose_bonds_across(&chains, 0.5).unwrap();
        assert_eq!(c[1].bond_dims, vec![4], "the small layer keeps its bond");
        assert!(
            c[0].bond_dims[0] < 64 && c[0].bond_dims[0] >= 32,
            "{:?}",
            c[0].bond_dims
        );
        assert!(c[0].kept * c[1].kept >= 0.5 - 1e-12);
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(choose_bonds(&[4, 4], &[vec![1.0], vec![1.0]], 0.1).is_err());
        assert!(choose_bonds(&[4, 4], &[vec![]], 0.1).is_err());
        assert!(choose_bonds(&[4, 4], &[vec![1.0]], 1.5).is_err());
        let m = exact(&random_mpo(&[2, 2], &[2], 1));
        assert!(compress_to_error(&m, 1.0).is_err());
        assert!(compress_to_error(&m, f64::NAN).is_err());
        assert!(smallest_uniform_bond(&m, -0.1).is_err());
    }
}

//! Bond-dimension bookkeeping: rank caps and clamping of requested bond dimensions.
//!
//! A bond `b` splits the sites into `0..b` and `b..N`; no exact decomposition needs more than
//! `cap_b = min(prod_{k<b} d_k, prod_{k>=b} d_k)` there, and a larger bond only adds gauge
//! freedom (and parameters). Products saturate at `usize::MAX`.

use crate::error::{check_modes, CoreError, Result};
use crate::trunc::BondClamp;

/// Rank cap of every bond of a chain with physical dimensions `dims` (`dims.len() - 1` entries).
pub fn rank_caps(dims: &[usize]) -> Vec<usize> {
    let n = dims.len();
    let mut left = vec![1usize; n + 1];
    for k in 0..n {
        left[k + 1] = left[k].saturating_mul(dims[k]);
    }
    let mut right = vec![1usize; n + 1];
    for k in (0..n).rev() {
        right[k] = right[k + 1].saturating_mul(dims[k]);
    }
    (1..n).map(|b| left[b].min(right[b])).collect()
}

/// Clamps requested bond dimensions (entry `b - 1` for bond `b`) to the rank caps of `dims`.
///
/// Returns the bond dimensions to use and one [`BondClamp`] per lowered bond.
///
/// # Errors
/// Invalid `dims`, a requested dimension of 0, or a request list of the wrong length.
pub fn clamp_bond_dims(requested: &[usize], dims: &[usize]) -> Result<(Vec<usize>, Vec<BondClamp>)> {
    check_modes("phys_dims", dims)?;
    if requested.len() + 1 != dims.len() {
        return Err(CoreError::ShapeMismatch {
            what: format!("bond dimensions for {} sites", dims.len()),
            expected: format!("{} entries", dims.len() - 1),
            got: format!("{} entries", requested.len()),
        });
    }
    if requested.contains(&0) {
        return Err(CoreError::ZeroMaxBond);
    }
    let caps = rank_caps(dims);
    let mut clamps = Vec::new();
    let bonds = requested
        .iter()
        .zip(&caps)
        .enumerate()
        .map(|(i, (&r, &cap))| {
            if r > cap {
                clamps.push(BondClamp {
                    bond: i + 1,
                    requested: r,
                    cap,
                });
            }
            r.min(cap)
        })
        .collect();
    Ok((bonds, clamps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_of_gao_fc2_input_layer() {
        // 784 = 4*7*7*4 inputs, 256 = 4^4 outputs: grouped dims 16, 28, 28, 16.
        assert_eq!(rank_caps(&[16, 28, 28, 16]), vec![16, 448, 16]);
        assert_eq!(rank_caps(&[5]), Vec::<usize>::new());
    }

    #[test]
    fn clamp_reports_each_lowered_bond() {
        let (b, c) = clamp_bond_dims(&[22, 22, 22], &[16, 28, 28, 16]).unwrap();
        assert_eq!(b, vec![16, 22, 16]);
        assert_eq!(
            c,
            vec![
                BondClamp {
                    bond: 1,
                    requested: 22,
                    cap: 16
                },
                BondClamp {
                    bond: 3,
                    requested: 22,
                    cap: 16
                }
            ]
        );
        assert_eq!(
            clamp_bond_dims(&[2, 0, 2], &[4, 4, 4, 4]).unwrap_err(),
            CoreError::ZeroMaxBond
        );
        assert!(clamp_bond_dims(&[2], &[4, 4, 4]).is_err());
    }
}

//! [`MpoSpec`]: the shape of an MPO layer (input and output factorizations, bond dimensions), its
//! parameter count and the cost model that picks a contraction plan.
//!
//! Notation (Gao et al. 2020, Eq. 8): `M^{J1..Jd}_{I1..Id}(D)` maps `prod I_k` inputs to `prod J_k`
//! outputs; the superscript is the *output* factorization, the subscript the *input* one. Core `k`
//! is `G_k[r_{k-1}, I_k, J_k, r_k]` with `r_0 = r_d = 1`, and
//!
//! ```text
//! params = sum_k r_{k-1} I_k J_k r_k
//! ```
//!
//! A requested bond dimension above the rank cap
//! `min(prod_{j<=k} I_j J_j, prod_{j>k} I_j J_j)` adds parameters and nothing else, so it is clamped
//! to the cap and the clamp is reported ([`MpoSpec::clamps`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use tnml_core::{clamp_bond_dims, BondClamp};

use crate::error::{NnError, Result};

/// The shape of one MPO layer. Read from a file it goes through [`MpoSpec::new`]'s checks
/// (and clamps), as one built in code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredSpec")]
pub struct MpoSpec {
    /// Input factorization `I_1..I_d` (row-major split of the input vector).
    pub in_modes: Vec<usize>,
    /// Output factorization `J_1..J_d`.
    pub out_modes: Vec<usize>,
    /// Bond dimensions `r_1..r_{d-1}` after clamping to the rank caps.
    pub bond_dims: Vec<usize>,
    /// Requested bonds that were above their cap.
    #[serde(skip)]
    pub clamps: Vec<BondClamp>,
}

/// An [`MpoSpec`] as stored (checkpoints from before the rename wrote `bonds`).
#[derive(Deserialize)]
struct StoredSpec {
    in_modes: Vec<usize>,
    out_modes: Vec<usize>,
    #[serde(alias = "bonds")]
    bond_dims: Vec<usize>,
}

impl TryFrom<StoredSpec> for MpoSpec {
    type Error = NnError;
    fn try_from(s: StoredSpec) -> Result<Self> {
        MpoSpec::new(&s.in_modes, &s.out_modes, &s.bond_dims)
    }
}

impl MpoSpec {
    /// A spec with one bond dimension for every bond, clamped to the rank caps.
    ///
    /// # Errors
    /// Empty or zero modes, different numbers of input and output modes, a bond dimension of 0.
    pub fn uniform(in_modes: &[usize], out_modes: &[usize], bond: usize) -> Result<Self> {
        let n = in_modes.len();
        Self::new(in_modes, out_modes, &vec![bond; n.saturating_sub(1)])
    }

    /// A spec with per-bond dimensions (`in_modes.len() - 1` of them), clamped to the rank caps.
    ///
    /// # Errors
    /// As [`MpoSpec::uniform`], and a wrong number of bonds.
    pub fn new(in_modes: &[usize], out_modes: &[usize], bonds: &[usize]) -> Result<Self> {
        if in_modes.is_empty() || in_modes.len() != out_modes.len() {
            return Err(NnError::ModeCount {
                in_modes: in_modes.to_vec(),
                out_modes: out_modes.to_vec(),
            });
        }
        if let Some(k) = in_modes.iter().chain(out_modes).position(|&m| m == 0) {
            return Err(NnError::ZeroMode { position: k });
        }
        for (what, modes) in [("input modes", in_modes), ("output modes", out_modes)] {
            if modes.iter().try_fold(1usize, |p, &m| p.checked_mul(m)).is_none() {
                return Err(NnError::Overflow {
                    what,
                    modes: modes.to_vec(),
                });
            }
        }
        let (ins, outs) = (
            in_modes.iter().product::<usize>(),
            out_modes.iter().product::<usize>(),
        );
        if ins.checked_mul(outs).is_none() {
            return Err(NnError::Overflow {
                what: "input and output modes",
                modes: in_modes.iter().chain(out_modes).copied().collect(),
            });
        }
        if bonds.len() + 1 != in_modes.len() {
            return Err(NnError::BondCount {
                cores: in_modes.len(),
                got: bonds.len(),
            });
        }
        if let Some(k) = bonds.iter().position(|&b| b == 0) {
            return Err(NnError::ZeroBond { bond: k + 1 });
        }
        let dims: Vec<usize> = in_modes.iter().zip(out_modes).map(|(i, o)| i * o).collect();
        let (bond_dims, clamps) = clamp_bond_dims(bonds, &dims)?;
        Ok(Self {
            in_modes: in_modes.to_vec(),
            out_modes: out_modes.to_vec(),
            bond_dims,
            clamps,
        })
    }

    /// Parses `M^{4,4,4,4}_{4,7,7,4}(16)` (Gao's notation: output modes up, input modes down) or
    /// `4,7,7,4->4,4,4,4:16` (input -> output : bond). A bond list `(4,8,4)` / `:4,8,4` is accepted too.
    ///
    /// # Errors
    /// [`NnError::Spec`] for malformed text; shape errors as [`MpoSpec::new`].
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| NnError::Spec {
            spec: text.to_string(),
            why: why.to_string(),
        };
        let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let (ins, outs, bond_text) = if let Some(rest) = s.strip_prefix("M^{") {
            let (outs, rest) = rest
                .split_once("}_{")
                .ok_or_else(|| bad("expected M^{out modes}_{in modes}(D)"))?;
            let (ins, rest) = rest
                .split_once("}(")
                .ok_or_else(|| bad("expected (D) after the input modes"))?;
            let bond = rest
                .strip_suffix(')')
                .ok_or_else(|| bad("missing closing parenthesis"))?;
            (ins.to_string(), outs.to_string(), bond.to_string())
        } else {
            let (ins, rest) = s
                .split_once("->")
                .ok_or_else(|| bad("expected IN->OUT:D or M^{OUT}_{IN}(D)"))?;
            let (outs, bond) = rest
                .split_once(':')
                .ok_or_else(|| bad("expected :D after the output modes"))?;
            (ins.to_string(), outs.to_string(), bond.to_string())
        };
        let list = |t: &str, what: &str| -> Result<Vec<usize>> {
            t.split(',')
                .map(|v| {
                    v.parse::<usize>()
                        .map_err(|_| bad(&format!("{what}: {v:?} is not a non-negative integer")))
                })
                .collect()
        };
        let in_modes = list(&ins, "input modes")?;
        let out_modes = list(&outs, "output modes")?;
        let bonds = list(&bond_text, "bond dimension")?;
        if bonds.len() == 1 {
            Self::uniform(&in_modes, &out_modes, bonds[0])
        } else {
            Self::new(&in_modes, &out_modes, &bonds)
        }
    }

    /// Number of cores `d`.
    pub fn len(&self) -> usize {
        self.in_modes.len()
    }

    /// Always false (a spec has at least one core).
    pub fn is_empty(&self) -> bool {
        self.in_modes.is_empty()
    }

    /// `prod I_k`.
    pub fn in_features(&self) -> usize {
        self.in_modes.iter().product()
    }

    /// `prod J_k`.
    pub fn out_features(&self) -> usize {
        self.out_modes.iter().product()
    }

    /// Bond dimensions with the boundaries: `[1, r_1, .., r_{d-1}, 1]`.
    pub fn bond_dims_with_boundaries(&self) -> Vec<usize> {
        let mut b = vec![1];
        b.extend(&self.bond_dims);
        b.push(1);
        b
    }

    /// Shape `[r_{k-1}, I_k, J_k, r_k]` of core `k`.
    pub fn core_shape(&self, k: usize) -> [usize; 4] {
        let b = self.bond_dims_with_boundaries();
        [b[k], self.in_modes[k], self.out_modes[k], b[k + 1]]
    }

    /// Parameters of the cores (no bias): `sum_k r_{k-1} I_k J_k r_k`.
    pub fn num_params(&self) -> usize {
        (0..self.len())
            .map(|k| self.core_shape(k).iter().product::<usize>())
            .sum()
    }

    /// Parameters of the dense matrix it replaces, `prod I_k * prod J_k`.
    pub fn dense_params(&self) -> usize {
        self.in_features() * self.out_features()
    }

    /// Checks that the spec fits a layer of `in_features -> out_features`.
    ///
    /// # Errors
    /// [`NnError::LayerMismatch`] naming the products and the layer size.
    pub fn check_layer(&self, in_features: usize, out_features: usize) -> Result<()> {
        if self.in_features() != in_features || self.out_features() != out_features {
            return Err(NnError::LayerMismatch {
                spec: self.to_string(),
                in_product: self.in_features(),
                out_product: self.out_features(),
                in_features,
                out_features,
            });
        }
        Ok(())
    }

    /// Multiply-adds per sample of the left-to-right sweep (first input index first):
    /// `sum_k (prod_{j>=k} I_j)(prod_{j<=k} J_j) r_{k-1} r_k`.
    pub fn macs_left_to_right(&self) -> u64 {
        let b = self.bond_dims_with_boundaries();
        (0..self.len())
            .map(|k| {
                let n: u64 = self.in_modes[k..].iter().map(|&v| v as u64).product();
                let m: u64 = self.out_modes[..=k].iter().map(|&v| v as u64).product();
                n * m * b[k] as u64 * b[k + 1] as u64
            })
            .sum()
    }

    /// Multiply-adds per sample of the right-to-left sweep (last input index first):
    /// `sum_k (prod_{j<=k} I_j)(prod_{j>=k} J_j) r_{k-1} r_k`.
    pub fn macs_right_to_left(&self) -> u64 {
        let b = self.bond_dims_with_boundaries();
        (0..self.len())
            .map(|k| {
                let n: u64 = self.in_modes[..=k].iter().map(|&v| v as u64).product();
                let m: u64 = self.out_modes[k..].iter().map(|&v| v as u64).product();
                n * m * b[k] as u64 * b[k + 1] as u64
            })
            .sum()
    }

    /// Multiply-adds to rebuild the dense matrix from the cores as the reconstruct plan does
    /// (independent of the batch): merge the halves before and after the middle bond
    /// `m = d / 2` ([`MpoSpec::macs_merge`]), then one GEMM over that bond,
    /// `(prod_{j<m} I_j J_j) r_m (prod_{j>=m} I_j J_j)`.
    pub fn macs_reconstruct(&self) -> u64 {
        let d = self.len();
        if d < 2 {
            return 0;
        }
        let m = d / 2;
        let lo: u64 = (0..m)
            .map(|k| (self.in_modes[k] * self.out_modes[k]) as u64)
            .product();
        let hi: u64 = (m..d)
            .map(|k| (self.in_modes[k] * self.out_modes[k]) as u64)
            .product();
        let r = self.bond_dims_with_boundaries()[m] as u64;
        self.macs_merge(0, m) + self.macs_merge(m, d) + lo * r * hi
    }

    /// Multiply-adds to contract cores `lo..hi` into one `[r_lo, prod I, prod J, r_hi]` tensor:
    /// `sum_{k in lo+1..hi} r_lo (prod_{lo<=j<=k} I_j J_j) r_k r_{k+1}` (core k is
    /// `[r_k, I_k, J_k, r_{k+1}]` in the boundary-padded bond list).
    pub fn macs_merge(&self, lo: usize, hi: usize) -> u64 {
        let b = self.bond_dims_with_boundaries();
        let mut acc = (self.in_modes[lo] * self.out_modes[lo]) as u64;
        (lo + 1..hi)
            .map(|k| {
                acc *= (self.in_modes[k] * self.out_modes[k]) as u64;
                b[lo] as u64 * acc * b[k] as u64 * b[k + 1] as u64
            })
            .sum()
    }

    /// Multiply-adds per sample of the split plan at bond `m`:
    /// `r_m (N_in prod_{j>=m} J_j + prod_{j<m} I_j N_out)`.
    pub fn macs_split(&self, m: usize) -> u64 {
        let r = self.bond_dims_with_boundaries()[m] as u64;
        let i_lo: u64 = self.in_modes[..m].iter().map(|&v| v as u64).product();
        let j_hi: u64 = self.out_modes[m..].iter().map(|&v| v as u64).product();
        r * (self.in_features() as u64 * j_hi + i_lo * self.out_features() as u64)
    }
}

impl fmt::Display for MpoSpec {
    /// Gao's notation, with the bond list when the bonds differ: `M^{4,4,4,4}_{4,7,7,4}(16)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |v: &[usize]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
        let bonds = match self.bond_dims.first() {
            Some(&b0) if self.bond_dims.iter().all(|&b| b == b0) => b0.to_string(),
            Some(_) => join(&self.bond_dims),
            // one core has no inner bond; (1) parses back to it ("-" did not)
            None => "1".to_string(),
        };
        write!(
            f,
            "M^{{{}}}_{{{}}}({})",
            join(&self.out_modes),
            join(&self.in_modes),
            bonds
        )
    }
}

/// How a forward pass contracts the cores with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Plan {
    /// Contract core 1 first (the slowest input index).
    LeftToRight,
    /// Contract core d first (the fastest input index).
    RightToLeft,
    /// Rebuild the dense `prod I x prod J` matrix, then one GEMM.
    Dense,
    /// Merge cores `0..m` and `m..d` separately, then one GEMM with each (`0 < m < d`).
    Split(usize),
}

/// Cost of the sweep's small products relative to one big GEMM, per multiply-add (memory-bound
/// K = r*I_k inner dimensions and transposes against a compute-bound GEMM).
pub const SWEEP_PENALTY: f64 = 6.0;

/// Cost of rebuilding `W` (and of its backward into the cores) relative to one multiply-add of the
/// batch GEMM.
pub const RECONSTRUCT_PENALTY: f64 = 3.0;

/// Cost of the split plan's multiply-adds relative to one big GEMM (some of its GEMMs have the
/// small inner dimension `I_>=` or `J_<`, and its intermediate `T`, `I_< r_m J_>=` per sample, is
/// written and read in memory).
pub const SPLIT_PENALTY: f64 = 1.5;

// The three factors are fits to `cargo bench -p tnml-nn --bench mpo_vs_torch` on two cores with
// tnml's CPU kernels (the bench prints, for every shape and batch, the chosen plan's time over the
// fastest plan's).

impl MpoSpec {
    /// Estimated multiply-adds (weighted by [`SWEEP_PENALTY`] and [`RECONSTRUCT_PENALTY`]) of each plan for a
    /// batch of `batch` samples.
    pub fn plan_costs(&self, batch: usize) -> Vec<(Plan, f64)> {
        let b = batch as f64;
        let mut costs = vec![
            (
                Plan::LeftToRight,
                SWEEP_PENALTY * b * self.macs_left_to_right() as f64,
            ),
            (
                Plan::RightToLeft,
                SWEEP_PENALTY * b * self.macs_right_to_left() as f64,
            ),
            (
                Plan::Dense,
                RECONSTRUCT_PENALTY * self.macs_reconstruct() as f64 + b * self.dense_params() as f64,
            ),
        ];
        for m in 1..self.len() {
            let merge = (self.macs_merge(0, m) + self.macs_merge(m, self.len())) as f64;
            costs.push((
                Plan::Split(m),
                RECONSTRUCT_PENALTY * merge + SPLIT_PENALTY * b * self.macs_split(m) as f64,
            ));
        }
        costs
    }

    /// The cheapest plan for `batch` samples by [`MpoSpec::plan_costs`].
    pub fn best_plan(&self, batch: usize) -> Plan {
        let costs = self.plan_costs(batch);
        costs
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|c| c.0)
            .unwrap_or(Plan::Dense)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (fuzz/mpo_spec, crash-4a18da3e): a one-core spec printed as `(-)`, which
    /// does not parse; every printed spec must parse back to itself.
    #[test]
    fn a_one_core_spec_prints_to_text_that_parses_back() {
        let s = MpoSpec::parse("222224->1:4").unwrap();
        assert!(s.bond_dims.is_empty());
        let text = s.to_string();
        assert_eq!(text, "M^{1}_{222224}(1)");
        let back = MpoSpec::parse(&text).unwrap();
        assert_eq!(
            (back.in_modes, back.out_modes, back.bond_dims),
            (s.in_modes, s.out_modes, s.bond_dims)
        );
    }

    #[test]
    fn a_spec_read_from_a_file_is_checked_like_one_built_in_code() {
        let ok: MpoSpec =
            serde_json::from_str(r#"{"in_modes":[4,7],"out_modes":[4,4],"bonds":[100000]}"#).unwrap();
        assert_eq!(
            ok.bond_dims,
            vec![16],
            "the old key is read, the bond clamped to its rank cap"
        );
        for (json, msg) in [
            (
                r#"{"in_modes":[4,7],"out_modes":[4,4],"bond_dims":[2,2]}"#,
                "2 cores need 1 bond dimensions, got 2",
            ),
            (
                r#"{"in_modes":[4,7,1],"out_modes":[4,4],"bond_dims":[2]}"#,
                "as many input modes as output modes",
            ),
            (
                r#"{"in_modes":[4,0],"out_modes":[4,4],"bond_dims":[2]}"#,
                "mode 1 is 0",
            ),
            (
                r#"{"in_modes":[9223372036854775809,784],"out_modes":[1,256],"bond_dims":[1]}"#,
                "multiply past",
            ),
        ] {
            let err = serde_json::from_str::<MpoSpec>(json).unwrap_err().to_string();
            assert!(err.contains(msg), "{json}: {err}");
        }
        let err = MpoSpec::parse("9223372036854775809,784->1,256:1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the input modes [9223372036854775809, 784] multiply past"),
            "{err}"
        );
    }

    #[test]
    fn gao_fc2_parameter_counts() {
        let l2 = MpoSpec::parse("M^{1,1,10,1}_{4,4,4,4}(4)").unwrap();
        assert_eq!(l2.num_params(), 736);
        let l1 = MpoSpec::parse("M^{4,4,4,4}_{4,7,7,4}(2)").unwrap();
        assert_eq!(l1.num_params(), 288);
        let l1 = MpoSpec::parse("4,7,7,4 -> 4,4,4,4 : 16").unwrap();
        assert_eq!(l1.num_params() + l2.num_params(), 15_584);
        assert_eq!(l1.to_string(), "M^{4,4,4,4}_{4,7,7,4}(16)");
    }

    #[test]
    fn bonds_above_the_cap_are_clamped_and_reported() {
        let s = MpoSpec::uniform(&[4, 7, 7, 4], &[4, 4, 4, 4], 22).unwrap();
        assert_eq!(s.bond_dims, vec![16, 22, 16]);
        assert_eq!(s.clamps.len(), 2);
    }

    #[test]
    fn bad_specs_name_the_numbers() {
        let e = MpoSpec::uniform(&[4, 7], &[4, 4], 0).unwrap_err().to_string();
        assert!(e.contains("is 0"), "{e}");
        let e = MpoSpec::uniform(&[4, 7, 7], &[4, 4], 2).unwrap_err().to_string();
        assert!(e.contains("3 input modes"), "{e}");
        let s = MpoSpec::uniform(&[4, 7, 7, 4], &[4, 4, 4, 4], 2).unwrap();
        let e = s.check_layer(780, 256).unwrap_err().to_string();
        assert!(e.contains("multiply to 784") && e.contains("780 -> 256"), "{e}");
        assert!(MpoSpec::parse("M^{4,4}_{4,x}(2)").is_err());
        assert!(MpoSpec::parse("4,4:2").is_err());
    }

    #[test]
    fn cost_formulas_match_the_digest() {
        // Gao's 256 -> 10 layer: 4768 (right to left in the digest's convention = our left to right).
        let l2 = MpoSpec::parse("M^{1,1,10,1}_{4,4,4,4}(4)").unwrap();
        let (a, b) = (l2.macs_left_to_right(), l2.macs_right_to_left());
        assert_eq!(a.min(b), 4768);
        assert_eq!(a.max(b), 13_984);
        // Batch 1 on a large layer prefers a sweep, a large batch the dense product.
        let big = MpoSpec::uniform(&[4, 4, 8, 8, 4], &[4, 4, 8, 8, 4], 4).unwrap();
        assert_ne!(big.best_plan(1), Plan::Dense);
        let fc2 = MpoSpec::uniform(&[4, 7, 7, 4], &[4, 4, 4, 4], 16).unwrap();
        assert_eq!(fc2.best_plan(100), Plan::Dense);
    }
}

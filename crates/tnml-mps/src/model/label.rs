//! Moving the label index along the chain: merge two neighbouring sites into a bond tensor
//! `B = A_j A_{j+1}` and split it again by a (truncated) SVD with the label on the other side.
//!
//! ```text
//!        l                                    l                              l
//!        |                                     \                             |
//!  -A_j--A_{j+1}-   merge  ->   -[    B    ]-   split (right)  ->  -A_j--A_{j+1}-
//!    |    |                       |  |  |                            |    |
//!    s    t                       s  t                               s    t
//! ```
//!
//! Going right, `A_j = U` (left-orthogonal) and `A_{j+1} = S V^T` takes the label; going left,
//! `A_j = U S` takes the label and `A_{j+1} = V^T` (right-orthogonal). The scores `f^l(x)` change
//! only by what the truncation drops (nothing beyond rounding for [`TruncParams::exact`]).
//!
//! Cost of one move: the merge GEMM `(a d L, D) x (D, d b)` and an SVD of `(a d, d L b)` or
//! `(a d L, d b)`, O(a d L b min(a d, d b) ...) in f64.

use tnml_core::faer::MatRef;
use tnml_core::{truncated_svd, Mps, SiteTensor, TruncParams, Truncation};

use super::MpsClassifier;
use crate::error::{MpsError, Result};
use crate::gemm::gemm;

/// Direction of a half sweep, and of a label move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Bonds (0,1) to (N-2, N-1); the label moves right.
    LeftToRight,
    /// Bonds (N-2, N-1) to (0,1); the label moves left.
    RightToLeft,
}

impl Direction {
    /// "left-to-right" or "right-to-left".
    pub fn name(self) -> &'static str {
        match self {
            Self::LeftToRight => "left-to-right",
            Self::RightToLeft => "right-to-left",
        }
    }
}

impl MpsClassifier {
    /// Puts the model in mixed canonical form with the label on `target`: a QR sweep around the
    /// current label site, then exact SVD moves of the label (nothing is truncated beyond
    /// rounding noise). The function `f^l(x)` is unchanged.
    ///
    /// # Errors
    /// [`MpsError::OutOfRange`] for a target outside the chain.
    pub fn move_label_to(&mut self, target: usize) -> Result<()> {
        self.move_label_truncated(target, &TruncParams::exact())
            .map(|_| ())
    }

    /// As [`MpsClassifier::move_label_to`], truncating every split by `params`: carrying the
    /// label (dimension `L`) exactly widens the bonds it passes to about `L` times their size
    /// (the class-mean start: bond 11 -> ~110), which makes the first sweep's local problems
    /// that much larger; truncated at the sweep's cap they start at the size the sweep keeps.
    /// `f^l(x)` changes by what is dropped. Returns the truncation of each split.
    ///
    /// # Errors
    /// [`MpsError::OutOfRange`] for a target outside the chain; invalid truncation parameters.
    pub fn move_label_truncated(&mut self, target: usize, params: &TruncParams) -> Result<Vec<Truncation>> {
        if target >= self.num_sites() {
            return Err(MpsError::OutOfRange {
                what: "site",
                index: target,
                first: 0,
                len: self.num_sites(),
            });
        }
        let mut mps =
            Mps::from_sites(std::mem::take(&mut self.sites)).expect("a classifier's sites form a valid MPS");
        mps.canonicalize(self.label_site)?;
        self.sites = mps.into_sites();
        let mut dropped = Vec::new();
        while self.label_site > target {
            let j = self.label_site - 1;
            let b = self.merge_bond(j, Direction::RightToLeft);
            dropped.push(self.split_bond(j, &b, Direction::RightToLeft, params)?);
        }
        while self.label_site < target {
            let j = self.label_site;
            let b = self.merge_bond(j, Direction::LeftToRight);
            dropped.push(self.split_bond(j, &b, Direction::LeftToRight, params)?);
        }
        Ok(dropped)
    }

    /// `B = A_j A_{j+1}` in the layout `[a, s, t, l, b]` (f32), with `a`, `b` the outer bonds.
    /// The label must sit on `j` (going right) or `j + 1` (going left).
    pub(crate) fn merge_bond(&self, j: usize, dir: Direction) -> Vec<f32> {
        let (aj, ak) = (&self.sites[j], &self.sites[j + 1]);
        let (left, right, mid) = (aj.left(), ak.right(), aj.right());
        let d = self.feature_map.dim();
        let big_l = self.num_labels;
        let m = gemm(
            &self.site_f32(j),
            aj.len() / mid,
            mid,
            &self.site_f32(j + 1),
            ak.len() / mid,
        );
        match dir {
            // label on the right site already: [a, s, (t, l), b] is [a, s, t, l, b]
            Direction::RightToLeft => m,
            // label on the left site: [a, (s, l), t, b] -> [a, s, t, l, b]
            Direction::LeftToRight => {
                let mut out = vec![0f32; m.len()];
                for a in 0..left {
                    for s in 0..d {
                        for l in 0..big_l {
                            for t in 0..d {
                                let src = (((a * d + s) * big_l + l) * d + t) * right;
                                let dst = (((a * d + s) * d + t) * big_l + l) * right;
                                out[dst..dst + right].copy_from_slice(&m[src..src + right]);
                            }
                        }
                    }
                }
                out
            }
        }
    }

    /// Splits `B` (layout `[a, s, t, l, b]`) back into sites `j`, `j+1`, moving the label in the
    /// direction `dir`. Returns what the SVD dropped, at bond `j + 1`.
    pub(crate) fn split_bond(
        &mut self,
        j: usize,
        b: &[f32],
        dir: Direction,
        params: &TruncParams,
    ) -> Result<Truncation> {
        let (left, right) = (self.sites[j].left(), self.sites[j + 1].right());
        let d = self.feature_map.dim();
        let big_l = self.num_labels;
        let (rows, cols, data): (usize, usize, Vec<f64>) = match dir {
            Direction::LeftToRight => (
                left * d,
                d * big_l * right,
                b.iter().map(|&x| f64::from(x)).collect(),
            ),
            Direction::RightToLeft => {
                // [a, s, t, l, b] -> [a, s, l, t, b]
                let mut out = vec![0f64; b.len()];
                for a in 0..left {
                    for s in 0..d {
                        for t in 0..d {
                            for l in 0..big_l {
                                let src = (((a * d + s) * d + t) * big_l + l) * right;
                                let dst = (((a * d + s) * big_l + l) * d + t) * right;
                                for r in 0..right {
                                    out[dst + r] = f64::from(b[src + r]);
                                }
                            }
                        }
                    }
                }
                (left * d * big_l, d * right, out)
            }
        };
        let svd = truncated_svd(MatRef::from_row_major_slice(&data, rows, cols), params)?;
        let k = svd.s.len();
        let (mut u, mut vt) = (svd.u_row_major(), svd.vt_row_major());
        match dir {
            Direction::LeftToRight => {
                for (row, s) in vt.chunks_mut(cols).zip(&svd.s) {
                    row.iter_mut().for_each(|x| *x *= s);
                }
                self.sites[j] = SiteTensor::new(left, d, k, u)?;
                self.sites[j + 1] = SiteTensor::new(k, d * big_l, right, vt)?;
                self.label_site = j + 1;
            }
            Direction::RightToLeft => {
                for row in u.chunks_mut(k) {
                    row.iter_mut().zip(&svd.s).for_each(|(x, s)| *x *= s);
                }
                self.sites[j] = SiteTensor::new(left, d * big_l, k, u)?;
                self.sites[j + 1] = SiteTensor::new(k, d, right, vt)?;
                self.label_site = j;
            }
        }
        Ok(Truncation {
            bond: j + 1,
            ..svd.truncation
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::{embed_batch, FeatureMap, SiteFeatures};

    fn model_and_data() -> (MpsClassifier, SiteFeatures) {
        let (h, w, labels) = (2, 3, 3);
        let pixels: Vec<f32> = (0..4 * h * w).map(|i| ((i * 7) % 11) as f32 / 10.0).collect();
        let model = MpsClassifier::near_identity((h, w), labels, FeatureMap::Trig, 3, 2, 0.4, 11).unwrap();
        let feats = embed_batch(FeatureMap::Trig, &pixels, h * w).unwrap();
        (model, feats)
    }

    fn assert_same_scores(a: &MpsClassifier, b: &MpsClassifier, feats: &SiteFeatures) {
        let (fa, fb) = (a.scores(feats).unwrap().exact(), b.scores(feats).unwrap().exact());
        let scale = fa.iter().fold(0f64, |m, v| m.max(v.abs()));
        for (x, y) in fa.iter().zip(&fb) {
            assert!((x - y).abs() <= 1e-5 * scale, "{x} vs {y}");
        }
    }

    #[test]
    fn move_label_to_keeps_the_scores_and_lands_on_the_target() {
        let (model, feats) = model_and_data();
        for target in [0, 1, 3, 5, 2] {
            let mut m = model.clone();
            m.move_label_to(target).unwrap();
            assert_eq!(m.label_site(), target);
            assert_eq!(m.sites()[target].phys(), 2 * 3);
            assert_same_scores(&model, &m, &feats);
        }
        let err = model.clone().move_label_to(6).unwrap_err().to_string();
        assert_eq!(err, "site 6 is outside 0..6");
    }

    #[test]
    fn a_truncated_move_keeps_the_bonds_at_the_cap_and_reports_each_split() {
        let (model, feats) = model_and_data();
        // exact: the label (3 values) carried along widens the bonds it passes
        let mut exact = model.clone();
        exact.move_label_to(5).unwrap();
        assert!(
            exact.bond_dims().iter().any(|&b| b > 2),
            "{:?}",
            exact.bond_dims()
        );
        // at a cap the exact move never exceeds, nothing is dropped and the scores stay
        let wide = exact.bond_dims().into_iter().max().unwrap();
        let mut m = model.clone();
        let dropped = m.move_label_truncated(5, &TruncParams::max_bond(wide)).unwrap();
        assert_eq!(dropped.len(), 5 - model.label_site());
        assert!(dropped.iter().all(|t| t.discarded_weight < 1e-12));
        assert_same_scores(&exact, &m, &feats);
        // at cap 2 the bonds stay within it and what was dropped is reported
        let mut m = model.clone();
        let dropped = m.move_label_truncated(5, &TruncParams::max_bond(2)).unwrap();
        assert_eq!(m.label_site(), 5);
        // (the bonds the label passed; the others are the start's)
        let passed = &m.bond_dims()[model.label_site()..];
        assert!(passed.iter().all(|&b| b <= 2), "{:?}", m.bond_dims());
        assert!(dropped.iter().any(|t| t.discarded_weight > 0.0));
        assert!(dropped.iter().all(|t| t.kept <= 2));
    }

    #[test]
    fn merge_then_exact_split_keeps_the_scores_in_both_directions() {
        let (model, feats) = model_and_data();
        let mut m = model.clone();
        let b = m.merge_bond(2, Direction::LeftToRight);
        assert_eq!(b.len(), m.sites()[2].left() * 2 * 2 * 3 * m.sites()[3].right());
        let t = m
            .split_bond(2, &b, Direction::LeftToRight, &TruncParams::exact())
            .unwrap();
        assert_eq!((m.label_site(), t.bond), (3, 3));
        assert!(t.discarded_weight < 1e-12);
        assert_same_scores(&model, &m, &feats);
        let b = m.merge_bond(2, Direction::RightToLeft);
        let t = m
            .split_bond(2, &b, Direction::RightToLeft, &TruncParams::exact())
            .unwrap();
        assert_eq!((m.label_site(), t.bond), (2, 3));
        assert_same_scores(&model, &m, &feats);
    }

    #[test]
    fn a_truncated_split_reports_what_it_dropped() {
        let (model, _) = model_and_data();
        let mut m = model.clone();
        m.move_label_to(2).unwrap();
        let b = m.merge_bond(2, Direction::LeftToRight);
        let t = m
            .split_bond(2, &b, Direction::LeftToRight, &TruncParams::max_bond(1))
            .unwrap();
        assert_eq!(t.kept, 1);
        assert_eq!(m.bond_dims()[2], 1);
        assert!(t.discarded_weight > 0.0 && t.discarded_weight < 1.0);
        // the reported weight is the relative weight of the dropped part of B
        let total: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum();
        let kept: f64 = m.sites()[3].data().iter().map(|x| x * x).sum();
        assert!(((total - kept) / total - t.discarded_weight).abs() < 1e-5);
    }
}

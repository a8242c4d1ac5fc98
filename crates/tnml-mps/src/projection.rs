//! Projection from feature space (Stoudenmire & Schwab 2016, section 6.2).
//!
//! In mixed canonical form around bond `b`,
//!
//! ```text
//!   W^l = U_0 ... U_{b-1}  C^l  V_b ... V_{N-1}      U left-, V right-orthogonal
//! ```
//!
//! the core `C^l` has only bond indices `(alpha_l, alpha_r)` and the label. The isometries map
//! `Phi(x)` to the reduced features `Phi~(x) = l(x) (x) r(x)` of dimension `m_l * m_r`, the
//! orthogonal projection of `Phi(x)` onto a learned subspace (so `||Phi~|| <= ||Phi|| = 1` for
//! unit-norm feature maps), and the model is the linear classifier `f^l(x) = <C^l, Phi~(x)>`.
//! [`Projection::refit`] solves for `C` by (ridge) least squares on fixed `Phi~`, and
//! [`Projection::refit_softmax`] by multinomial logistic regression (the model then predicts
//! `argmax f`): both convex problems in `L m_l m_r` unknowns.

use tnml_core::faer::linalg::solvers::Solve;
use tnml_core::faer::{Mat, Side};
use tnml_core::SiteTensor;

use crate::env::{left_wing, right_wing};
use crate::error::{MpsError, Result};
use crate::feature::SiteFeatures;
use crate::model::{check_labels, error_fraction, Decision, MpsClassifier};
use crate::softmax::{fit_softmax, SoftmaxFit};

/// A classifier in mixed canonical form around one bond, with its core exposed.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// The bond (number of sites to its left).
    pub bond: usize,
    /// `m_l`, the dimension of `l(x)`.
    pub left_dim: usize,
    /// `m_r`, the dimension of `r(x)`.
    pub right_dim: usize,
    /// `C[l, a, b]`, row-major `L x m_l x m_r`.
    pub core: Vec<f64>,
    /// How the core's scores become a class (the model's, until a refit changes it).
    pub decision: Decision,
    /// Left-orthogonal sites `0..bond`, then right-orthogonal sites `bond..N`.
    sites: Vec<SiteTensor>,
    num_labels: usize,
    template: MpsClassifier,
}

/// Reduced features `Phi~(x_n) = l(x_n) (x) r(x_n)`, exact (not normalized).
#[derive(Debug, Clone, PartialEq)]
pub struct ReducedFeatures {
    /// `n x (m_l m_r)` row-major.
    pub values: Vec<f64>,
    /// Number of samples.
    pub samples: usize,
    /// `m_l * m_r`.
    pub dim: usize,
}

impl ReducedFeatures {
    /// Rows `range` as their own set.
    pub fn rows(&self, range: std::ops::Range<usize>) -> ReducedFeatures {
        ReducedFeatures {
            values: self.values[range.start * self.dim..range.end * self.dim].to_vec(),
            samples: range.len(),
            dim: self.dim,
        }
    }

    /// Every row scaled to unit length (zero rows stay zero).
    pub fn normalized(&self) -> ReducedFeatures {
        let mut values = self.values.clone();
        for row in values.chunks_mut(self.dim.max(1)) {
            let n = row.iter().map(|x| x * x).sum::<f64>().sqrt();
            if n > 0.0 {
                row.iter_mut().for_each(|x| *x /= n);
            }
        }
        ReducedFeatures {
            values,
            samples: self.samples,
            dim: self.dim,
        }
    }
}

impl MpsClassifier {
    /// Mixed canonical form around `bond` with the core `C^l` exposed; the model is unchanged.
    ///
    /// # Errors
    /// A bond outside `1..N`.
    pub fn project(&self, bond: usize) -> Result<Projection> {
        let n = self.num_sites();
        if bond == 0 || bond >= n {
            return Err(MpsError::OutOfRange {
                what: "bond (number of sites to its left)",
                index: bond,
                first: 1,
                len: n,
            });
        }
        let mut m = self.clone();
        m.move_label_to(bond)?;
        // split the label site [a, (s, l), r] as rows (a, l), cols (s, r): C = U S, V^T stays
        let site = &m.sites[bond];
        let (a_dim, r_dim, d, big_l) = (site.left(), site.right(), self.feature_map.dim(), self.num_labels);
        let mut mat = Mat::<f64>::zeros(a_dim * big_l, d * r_dim);
        for a in 0..a_dim {
            for s in 0..d {
                for l in 0..big_l {
                    for r in 0..r_dim {
                        mat[(a * big_l + l, s * r_dim + r)] = site.get(a, s * big_l + l, r);
                    }
                }
            }
        }
        let svd = tnml_core::truncated_svd(mat.as_ref(), &tnml_core::TruncParams::exact())?;
        let k = svd.s.len();
        let vt: Vec<f64> = (0..k)
            .flat_map(|c| (0..d * r_dim).map(move |i| (c, i)))
            .map(|(c, i)| svd.vt[(c, i)])
            .collect();
        let mut sites = m.sites.clone();
        sites[bond] = SiteTensor::new(k, d, r_dim, vt)?;
        let mut core = vec![0f64; big_l * a_dim * k];
        for a in 0..a_dim {
            for l in 0..big_l {
                for c in 0..k {
                    core[(l * a_dim + a) * k + c] = svd.u[(a * big_l + l, c)] * svd.s[c];
                }
            }
        }
        Ok(Projection {
            bond,
            left_dim: a_dim,
            right_dim: k,
            core,
            decision: self.decision,
            sites,
            num_labels: big_l,
            template: m,
        })
    }
}

impl Projection {
    /// The left-orthogonal sites `0..bond` and right-orthogonal sites `bond..N`.
    pub fn isometries(&self) -> &[SiteTensor] {
        &self.sites
    }

    /// `Phi~(x_n) = l(x_n) (x) r(x_n)` for every sample.
    ///
    /// # Errors
    /// Features that do not fit the model.
    ///
    /// # Complexity
    /// O(n N d D^2).
    pub fn reduced_features(&self, feats: &SiteFeatures) -> Result<ReducedFeatures> {
        self.template.check_features(feats)?;
        let (lw, rw) = (
            left_wing(&self.sites, feats, self.bond),
            right_wing(&self.sites, feats, self.bond),
        );
        let (l, ll, r, lr) = (&lw.values, &lw.log_scale, &rw.values, &rw.log_scale);
        let (ml, mr) = (self.left_dim, self.right_dim);
        let mut values = Vec::with_capacity(feats.samples * ml * mr);
        for n in 0..feats.samples {
            let scale = (ll[n] + lr[n]).exp();
            for a in 0..ml {
                for b in 0..mr {
                    values.push(f64::from(l[n * ml + a]) * f64::from(r[n * mr + b]) * scale);
                }
            }
        }
        Ok(ReducedFeatures {
            values,
            samples: feats.samples,
            dim: ml * mr,
        })
    }

    /// `f^l(x_n) = <C^l, Phi~(x_n)>`, `n x L` row-major.
    pub fn scores(&self, phi: &ReducedFeatures) -> Vec<f64> {
        let mut out = vec![0f64; phi.samples * self.num_labels];
        for (n, row) in phi.values.chunks_exact(phi.dim).enumerate() {
            for l in 0..self.num_labels {
                let c = &self.core[l * phi.dim..(l + 1) * phi.dim];
                out[n * self.num_labels + l] = c.iter().zip(row).map(|(a, b)| a * b).sum();
            }
        }
        out
    }

    /// Labels that fit the classifier, one per row of `phi`.
    fn check_refit_data(&self, phi: &ReducedFeatures, labels: &[usize]) -> Result<()> {
        check_labels(labels, self.num_labels)?;
        if labels.len() != phi.samples {
            return Err(MpsError::CountMismatch {
                what: "labels",
                got: labels.len(),
                expected: phi.samples,
                of: "samples".into(),
            });
        }
        Ok(())
    }

    /// The predicted class of each row of `phi`, by [`Projection::decision`].
    pub fn predictions(&self, phi: &ReducedFeatures) -> Vec<usize> {
        self.scores(phi)
            .chunks_exact(self.num_labels)
            .map(|r| self.decision.pick(r))
            .collect()
    }

    /// Fraction of rows of `phi` predicted wrong.
    pub fn error_rate(&self, phi: &ReducedFeatures, labels: &[usize]) -> f64 {
        error_fraction(&self.predictions(phi), labels)
    }

    /// Refits the core as softmax logits: multinomial logistic regression of the labels on the
    /// reduced features normalized to unit length (as in [`Projection::refit`]),
    /// `min_C 1/n sum_n CE(softmax(C P_n), y_n) + lambda/2 ||C||^2`, by L-BFGS started from the
    /// current core. The classifier then predicts `argmax_l f^l` ([`Decision::Signed`]). The
    /// quadratic cost the sweeps fit is a poor surrogate for the 0-1 error; this keeps the learned
    /// subspace and bond dimensions and replaces only the last linear map.
    ///
    /// # Errors
    /// Labels that do not fit, a negative or non-finite `lambda`.
    ///
    /// # Complexity
    /// O(iterations n m_l m_r L), a few evaluations per iteration.
    pub fn refit_softmax(
        &mut self,
        phi: &ReducedFeatures,
        labels: &[usize],
        lambda: f64,
        max_iters: usize,
    ) -> Result<SoftmaxFit> {
        self.check_refit_data(phi, labels)?;
        MpsError::check_lambda(lambda)?;
        Ok(self.fit_softmax_unit(&phi.normalized(), labels, lambda, max_iters))
    }

    /// [`Projection::refit_softmax`] on rows already of unit length, inputs already checked.
    fn fit_softmax_unit(
        &mut self,
        unit: &ReducedFeatures,
        labels: &[usize],
        lambda: f64,
        max_iters: usize,
    ) -> SoftmaxFit {
        let x = tnml_core::faer::MatRef::from_row_major_slice(&unit.values, unit.samples, unit.dim);
        let fit = fit_softmax(x, labels, &mut self.core, lambda, max_iters, 1e-7);
        self.decision = Decision::Signed;
        fit
    }

    /// Refits the core the default way (`tnml mps train --final-refit`, `tnml mps project
    /// --refit`, the Python package's `refit=`): ridge with `lambda` (default
    /// [`RIDGE_LAMBDA`]); softmax with `lambda`, or without one the best of [`SOFTMAX_LAMBDAS`]
    /// on the last sixth of the rows ([`softmax_holdout`]), then refitted on all of them.
    ///
    /// # Errors
    /// Labels that do not fit, a bad `lambda`, too few rows to hold a sixth out.
    pub fn refit_with_defaults(
        &mut self,
        phi: &ReducedFeatures,
        labels: &[usize],
        kind: RefitKind,
        lambda: Option<f64>,
        max_iters: usize,
    ) -> Result<RefitOutcome> {
        match kind {
            RefitKind::Ridge => {
                let lambda = lambda.unwrap_or(RIDGE_LAMBDA);
                let cost = self.refit(phi, labels, lambda)?;
                Ok(RefitOutcome {
                    lambda,
                    validation: Vec::new(),
                    holdout: 0,
                    cost,
                    softmax: None,
                })
            }
            RefitKind::Softmax => {
                let (lambda, validation, holdout) = match lambda {
                    Some(l) => (l, Vec::new(), 0),
                    None => {
                        let holdout = softmax_holdout(labels.len());
                        let (table, best) =
                            self.select_softmax_lambda(phi, labels, &SOFTMAX_LAMBDAS, holdout, max_iters)?;
                        (best, table, holdout)
                    }
                };
                let fit = self.refit_softmax(phi, labels, lambda, max_iters)?;
                Ok(RefitOutcome {
                    lambda,
                    validation,
                    holdout,
                    cost: fit.loss,
                    softmax: Some(fit),
                })
            }
        }
    }

    /// Chooses the softmax refit's penalty by validation: for each `lambda`, fits on all rows but
    /// the last `holdout` and measures the error on those. Returns `(lambda, validation error)`
    /// per candidate and the chosen one (the smallest error; ties go to the larger `lambda`).
    /// `self` is left unchanged.
    ///
    /// # Errors
    /// No candidates, a holdout of 0 or of every row, labels that do not fit.
    pub fn select_softmax_lambda(
        &self,
        phi: &ReducedFeatures,
        labels: &[usize],
        lambdas: &[f64],
        holdout: usize,
        max_iters: usize,
    ) -> Result<(Vec<(f64, f64)>, f64)> {
        if lambdas.is_empty() || holdout == 0 || holdout >= phi.samples {
            return Err(MpsError::InvalidOption {
                option: "the validation split",
                value: format!(
                    "{} candidates, holdout {holdout} of {} samples",
                    lambdas.len(),
                    phi.samples
                ),
                requirement: "it needs candidates and 0 < holdout < samples",
            });
        }
        self.check_refit_data(phi, labels)?;
        for &l in lambdas {
            MpsError::check_lambda(l)?;
        }
        let fit_rows = phi.samples - holdout;
        // normalized once for every candidate (scores of the validation rows need no scaling:
        // a positive per-row factor changes no prediction)
        let (train, valid) = (
            phi.rows(0..fit_rows).normalized(),
            phi.rows(fit_rows..phi.samples),
        );
        let mut table = Vec::with_capacity(lambdas.len());
        for &lambda in lambdas {
            let mut p = self.clone();
            p.fit_softmax_unit(&train, &labels[..fit_rows], lambda, max_iters);
            table.push((lambda, p.error_rate(&valid, &labels[fit_rows..])));
        }
        let best = table
            .iter()
            .copied()
            .fold(None::<(f64, f64)>, |b, (l, e)| match b {
                Some((bl, be)) if be < e || (be == e && bl >= l) => Some((bl, be)),
                _ => Some((l, e)),
            })
            .map_or(lambdas[0], |b| b.0);
        Ok((table, best))
    }

    /// Refits the core by ridge least squares on fixed reduced features, each normalized to unit
    /// length: `C^l = (P^T P + lambda I)^{-1} P^T y^l` with `P_n = Phi~_n / ||Phi~_n||` and
    /// one-hot `y`. Normalized rows are the objective the sweep trainer fits (its environments are
    /// normalized per sample), and predictions `argmax_l |f^l|` do not depend on a per-sample
    /// scale; on the raw features the fit would be dominated by the samples with the largest
    /// projections. Returns the mean cost `1/(2n) sum (<C^l, P_n> - y_n^l)^2` after the fit.
    ///
    /// # Errors
    /// Labels that do not fit, a singular system with `lambda = 0` (use `lambda > 0`).
    ///
    /// # Complexity
    /// O(n (m_l m_r)^2 + (m_l m_r)^3).
    pub fn refit(&mut self, phi: &ReducedFeatures, labels: &[usize], lambda: f64) -> Result<f64> {
        self.check_refit_data(phi, labels)?;
        let p = phi.dim;
        let unit = phi.normalized();
        let x = tnml_core::faer::MatRef::from_row_major_slice(&unit.values, phi.samples, p);
        let mut gram = x.transpose() * x;
        for i in 0..p {
            gram[(i, i)] += lambda;
        }
        let y = Mat::from_fn(phi.samples, self.num_labels, |n, l| {
            if labels[n] == l {
                1.0
            } else {
                0.0
            }
        });
        let rhs = x.transpose() * &y;
        let chol = gram
            .llt(Side::Lower)
            .map_err(|_| MpsError::SingularRefit { size: p })?;
        let c = chol.solve(&rhs);
        self.decision = Decision::Magnitude;
        for l in 0..self.num_labels {
            for i in 0..p {
                self.core[l * p + i] = c[(i, l)];
            }
        }
        let f = self.scores(&unit);
        let cost: f64 = f
            .iter()
            .zip(y.row_iter().flat_map(|r| r.iter().copied().collect::<Vec<_>>()))
            .map(|(a, b)| (a - b).powi(2))
            .sum();
        Ok(0.5 * cost / phi.samples.max(1) as f64)
    }

    /// The classifier with the (possibly refitted) core put back on site `bond`.
    ///
    /// # Errors
    /// Never for a valid projection.
    pub fn into_model(self) -> Result<MpsClassifier> {
        let (ml, mr, big_l) = (self.left_dim, self.right_dim, self.num_labels);
        let next = &self.sites[self.bond];
        let (d, right) = (next.phys(), next.right());
        // A[a, (s, l), r] = sum_c C[l, a, c] V[c, s, r]
        let mut data = vec![0f64; ml * d * big_l * right];
        for a in 0..ml {
            for s in 0..d {
                for l in 0..big_l {
                    for r in 0..right {
                        data[((a * d + s) * big_l + l) * right + r] = (0..mr)
                            .map(|c| self.core[(l * ml + a) * mr + c] * next.get(c, s, r))
                            .sum();
                    }
                }
            }
        }
        let mut sites = self.sites;
        sites[self.bond] = SiteTensor::new(ml, d * big_l, right, data)?;
        let t = self.template;
        let mut model = MpsClassifier::from_sites(sites, self.bond, t.num_labels, t.feature_map, t.image)?;
        model.decision = self.decision;
        Ok(model)
    }
}

/// Default penalty of the ridge refit.
pub const RIDGE_LAMBDA: f64 = 1e-3;

/// Candidate penalties of the softmax refit, tried on a validation split.
pub const SOFTMAX_LAMBDAS: [f64; 5] = [1e-3, 1e-4, 1e-5, 1e-6, 1e-7];

/// Rows held out to choose the softmax penalty: the last sixth.
pub fn softmax_holdout(samples: usize) -> usize {
    samples / 6
}

/// How the core at the projection bond is refitted (names: `ridge`, `softmax`; parsed in
/// [`crate::options`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefitKind {
    /// Ridge least squares on one-hot targets (the sweeps' quadratic cost; predicts argmax |f|).
    Ridge,
    /// Multinomial logistic regression, L-BFGS (predicts argmax f).
    Softmax,
}

/// What [`Projection::refit_with_defaults`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct RefitOutcome {
    /// The penalty used.
    pub lambda: f64,
    /// `(lambda, validation error)` per candidate when the penalty was chosen by validation.
    pub validation: Vec<(f64, f64)>,
    /// Rows held out for that choice (0 when none was made).
    pub holdout: usize,
    /// Final cost: ridge cost or cross-entropy plus penalty.
    pub cost: f64,
    /// The L-BFGS details of a softmax refit.
    pub softmax: Option<SoftmaxFit>,
}

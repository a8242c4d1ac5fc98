//! [`MpsClassifier`]: an MPS over the pixels with a label index on one site,
//! `f^l(x) = <W^l, Phi(x)>`, prediction `argmax_l |f^l(x)|` (the paper's rule, for models fitted
//! to one-hot targets by the quadratic cost) or `argmax_l f^l(x)` (for models fitted as softmax
//! logits): see [`Decision`].
//!
//! ```text
//!              l (label)
//!              |
//!   A_0 - ... - A_c - ... - A_{N-1}        A_k: [left, d, right],  A_c: [left, d, L, right]
//!    |          |             |
//!   phi(x_0)   phi(x_c)     phi(x_{N-1})
//! ```
//!
//! Sites are `f64` [`SiteTensor`]s; the label site stores `[left, d, L, right]` row-major, which
//! is the core's `[left, d*L, right]`, so the whole model is a [`tnml_core::Mps`] with one wider
//! site and the core's canonical forms and entanglement apply as they are.
//!
//! Evaluation contracts both wings towards the label site with per-sample rescaling, so 196 or
//! 784 sites neither underflow nor overflow: the scores come back normalized per sample with the
//! logarithm of the dropped scale, `f = score * exp(log_scale)`.

use tnml_core::{Mps, SiteTensor};

use crate::env::{absorb_left, left_wing, right_wing, site_f32};
use crate::error::{MpsError, Result};
use crate::feature::{FeatureMap, SiteFeatures};
use crate::gemm::{normalize_rows, row_contract_last};

mod init;
pub mod label;

/// How scores become a class.
///
/// A model fitted by the quadratic cost to one-hot targets predicts `argmax_l |f^l|`, as in the
/// paper (a large negative score is as confident as a large positive one). A model whose scores
/// are softmax logits (cross-entropy training, [`crate::Projection::refit_softmax`]) must predict
/// `argmax_l f^l`: its wrong classes get large negative logits, which `|f|` would pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// `argmax_l |f^l(x)|` (quadratic cost, the paper).
    Magnitude,
    /// `argmax_l f^l(x)` (softmax logits).
    Signed,
}

impl Decision {
    /// The winning class of one row of scores.
    pub fn pick<T: Copy + Into<f64>>(self, row: &[T]) -> usize {
        let key = |v: T| match self {
            Self::Magnitude => v.into().abs(),
            Self::Signed => v.into(),
        };
        row.iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |b, (i, &v)| {
                let k = key(v);
                if k > b.1 {
                    (i, k)
                } else {
                    b
                }
            })
            .0
    }

    /// `"argmax |f|"` or `"argmax f"`, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Magnitude => "argmax |f|",
            Self::Signed => "argmax f",
        }
    }
}

/// Loss on the model outputs `f^l(x)` used as logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Softmax cross-entropy.
    CrossEntropy,
    /// `1/2 sum_l (f^l - y^l)^2` with one-hot `y`.
    Squared,
}

impl Loss {
    /// The decision rule that fits the loss: softmax logits predict `argmax f`, the quadratic
    /// fit to one-hot targets `argmax |f|`.
    pub fn decision(self) -> Decision {
        match self {
            Self::CrossEntropy => Decision::Signed,
            Self::Squared => Decision::Magnitude,
        }
    }
}

/// An MPS classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct MpsClassifier {
    pub(crate) sites: Vec<SiteTensor>,
    pub(crate) label_site: usize,
    pub(crate) num_labels: usize,
    pub(crate) feature_map: FeatureMap,
    /// Image height and width the sites stand for (row-major pixel order).
    pub(crate) image: (usize, usize),
    /// How scores become a class.
    pub(crate) decision: Decision,
}

/// Scores of a batch: `values[n * L + l]` is `f^l(x_n) / c_n` with `c_n = exp(log_scale[n])`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Per-sample normalized scores, `samples x num_labels`.
    pub values: Vec<f32>,
    /// `ln` of the positive per-sample factor removed during the contraction.
    pub log_scale: Vec<f64>,
    /// Number of labels.
    pub num_labels: usize,
    /// The model's decision rule.
    pub decision: Decision,
}

impl Scores {
    /// The predicted class per sample (`argmax_l |f^l|` or `argmax_l f^l`, see [`Decision`];
    /// the per-sample positive scale changes neither).
    pub fn predictions(&self) -> Vec<usize> {
        self.values
            .chunks_exact(self.num_labels)
            .map(|r| self.decision.pick(r))
            .collect()
    }

    /// Fraction of samples whose prediction differs from `labels`.
    pub fn error_rate(&self, labels: &[usize]) -> f64 {
        error_fraction(&self.predictions(), labels)
    }

    /// The unnormalized `f^l(x_n)` in `f64` (may overflow for extreme scales).
    pub fn exact(&self) -> Vec<f64> {
        self.values
            .chunks_exact(self.num_labels)
            .zip(&self.log_scale)
            .flat_map(|(r, s)| r.iter().map(move |v| f64::from(*v) * s.exp()))
            .collect()
    }
}

/// Fraction of `predictions` that differ from `labels`.
pub(crate) fn error_fraction(predictions: &[usize], labels: &[usize]) -> f64 {
    let wrong = predictions.iter().zip(labels).filter(|(p, l)| p != l).count();
    wrong as f64 / labels.len().max(1) as f64
}

/// Checks that features and labels fit the model and each other.
pub(crate) fn check_training_data(
    model: &MpsClassifier,
    feats: &SiteFeatures,
    labels: &[usize],
) -> Result<()> {
    model.check_features(feats)?;
    if labels.len() != feats.samples {
        return Err(MpsError::CountMismatch {
            what: "labels",
            got: labels.len(),
            expected: feats.samples,
            of: "samples".into(),
        });
    }
    check_labels(labels, model.num_labels)
}

/// Checks labels against the number of classes.
pub(crate) fn check_labels(labels: &[usize], num_labels: usize) -> Result<()> {
    match labels.iter().position(|&l| l >= num_labels) {
        Some(sample) => Err(MpsError::LabelOutOfRange {
            sample,
            label: labels[sample],
            num_labels,
        }),
        None => Ok(()),
    }
}

impl MpsClassifier {
    /// Builds a classifier from site tensors; site `label_site` must have phys `d * num_labels`.
    ///
    /// # Errors
    /// Inconsistent shapes.
    pub fn from_sites(
        sites: Vec<SiteTensor>,
        label_site: usize,
        num_labels: usize,
        feature_map: FeatureMap,
        image: (usize, usize),
    ) -> Result<Self> {
        feature_map.validate()?;
        let d = feature_map.dim();
        if num_labels == 0 {
            return Err(MpsError::invalid(
                "the number of labels",
                0,
                "it must be at least 1",
            ));
        }
        if sites.len() != image.0 * image.1 || sites.is_empty() {
            return Err(MpsError::CountMismatch {
                what: "sites",
                got: sites.len(),
                expected: image.0 * image.1,
                of: format!("pixels of a {}x{} image", image.0, image.1),
            });
        }
        if label_site >= sites.len() {
            return Err(MpsError::OutOfRange {
                what: "label site",
                index: label_site,
                first: 0,
                len: sites.len(),
            });
        }
        for (k, s) in sites.iter().enumerate() {
            let want = if k == label_site { d * num_labels } else { d };
            if s.phys() != want {
                return Err(MpsError::PhysDim {
                    site: k,
                    got: s.phys(),
                    expected: want,
                });
            }
        }
        // bond consistency through the core (no copy: the sites go in and come back out)
        let sites = Mps::from_sites(sites)?.into_sites();
        Ok(Self {
            sites,
            label_site,
            num_labels,
            feature_map,
            image,
            decision: Decision::Magnitude,
        })
    }

    /// Number of sites (pixels).
    pub fn num_sites(&self) -> usize {
        self.sites.len()
    }
    /// Number of labels.
    pub fn num_labels(&self) -> usize {
        self.num_labels
    }
    /// Site carrying the label index.
    pub fn label_site(&self) -> usize {
        self.label_site
    }
    /// The feature map.
    pub fn feature_map(&self) -> FeatureMap {
        self.feature_map
    }
    /// How scores become a class.
    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// Sets the decision rule (the trainers set it to fit their loss).
    pub fn set_decision(&mut self, decision: Decision) {
        self.decision = decision;
    }

    /// `(height, width)` of the images.
    pub fn image(&self) -> (usize, usize) {
        self.image
    }
    /// The site tensors (label site `[left, d*L, right]`).
    pub fn sites(&self) -> &[SiteTensor] {
        &self.sites
    }
    /// Bond dimensions, entry `b - 1` for bond `b`.
    pub fn bond_dims(&self) -> Vec<usize> {
        self.sites[..self.sites.len() - 1]
            .iter()
            .map(SiteTensor::right)
            .collect()
    }
    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.sites.iter().map(SiteTensor::len).sum()
    }
    /// The model as a core MPS (label grouped into the physical index of the label site).
    ///
    /// # Errors
    /// Never for a valid model.
    pub fn to_mps(&self) -> Result<Mps> {
        Ok(Mps::from_sites(self.sites.clone())?)
    }

    /// Site `k` as `f32` row-major data.
    pub(crate) fn site_f32(&self, k: usize) -> Vec<f32> {
        site_f32(&self.sites[k])
    }

    /// Scores of every sample, contracting both wings towards the label site.
    ///
    /// # Errors
    /// Features of the wrong size.
    ///
    /// # Complexity
    /// O(N_T N d D^2) for the wings plus O(N_T d L D^2) at the label site.
    pub fn scores(&self, feats: &SiteFeatures) -> Result<Scores> {
        self.check_features(feats)?;
        let c = self.label_site;
        let l = left_wing(&self.sites, feats, c);
        let r = right_wing(&self.sites, feats, c + 1);
        let site = &self.sites[c];
        let (left, right, d, big_l) = (site.left(), site.right(), feats.dim, self.num_labels);
        // the label site as a site whose right index is (label, right)
        let t = absorb_left(
            &l.values,
            feats.samples,
            &self.site_f32(c),
            left,
            &feats.sites[c],
            d,
            big_l * right,
        );
        let mut values = row_contract_last(&t, big_l, &r.values, right);
        let lc = normalize_rows(&mut values, big_l);
        let log_scale = l
            .log_scale
            .iter()
            .zip(&r.log_scale)
            .zip(&lc)
            .map(|((a, b), c)| a + b + c)
            .collect();
        Ok(Scores {
            values,
            log_scale,
            num_labels: big_l,
            decision: self.decision,
        })
    }

    pub(crate) fn check_features(&self, feats: &SiteFeatures) -> Result<()> {
        if feats.sites.len() != self.num_sites() || feats.dim != self.feature_map.dim() {
            return Err(MpsError::FeatureShape {
                model_sites: self.num_sites(),
                model_dim: self.feature_map.dim(),
                data_sites: feats.sites.len(),
                data_dim: feats.dim,
                height: self.image.0,
                width: self.image.1,
            });
        }
        Ok(())
    }
}

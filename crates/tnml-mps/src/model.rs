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

use tnml_core::{Mps, SiteTensor, TruncParams};

use crate::error::{MpsError, Result};
use crate::feature::{FeatureMap, SiteFeatures};
use crate::gemm::{gemm, gemm_bt, normalize_rows, row_contract_last, row_outer};

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
        return Err(MpsError::Shape(format!(
            "{} samples but {} labels",
            feats.samples,
            labels.len()
        )));
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
            return Err(MpsError::Config("the number of labels must be at least 1".into()));
        }
        if sites.len() != image.0 * image.1 || sites.is_empty() {
            return Err(MpsError::Shape(format!(
                "{} sites for a {}x{} image ({} pixels)",
                sites.len(),
                image.0,
                image.1,
                image.0 * image.1
            )));
        }
        if label_site >= sites.len() {
            return Err(MpsError::Shape(format!(
                "label site {label_site} is outside 0..{}",
                sites.len()
            )));
        }
        for (k, s) in sites.iter().enumerate() {
            let want = if k == label_site { d * num_labels } else { d };
            if s.phys() != want {
                return Err(MpsError::Shape(format!(
                    "site {k} has physical dimension {}, expected {want}",
                    s.phys()
                )));
            }
        }
        // bond consistency through the core
        Mps::from_sites(sites.clone())?;
        Ok(Self {
            sites,
            label_site,
            num_labels,
            feature_map,
            image,
            decision: Decision::Magnitude,
        })
    }

    /// The representer-style start: `W^l = Phi(mean image of class l)`, summed over labels as a
    /// direct sum (bond dimension L), then compressed to `max_bond` by the core's SVD sweep. The
    /// result is right-canonical with the label on site 0, as the first left-to-right sweep wants.
    ///
    /// # Errors
    /// Bad pixels or labels, a class without samples, `max_bond = 0`.
    pub fn from_class_means(
        pixels: &[f32],
        labels: &[usize],
        image: (usize, usize),
        num_labels: usize,
        feature_map: FeatureMap,
        max_bond: usize,
    ) -> Result<Self> {
        feature_map.validate()?;
        if max_bond == 0 {
            return Err(MpsError::Config("bond dimension 0: it must be at least 1".into()));
        }
        let n_sites = image.0 * image.1;
        crate::feature::embed_batch(feature_map, pixels, n_sites)?; // validates pixels and shape
        if pixels.len() / n_sites != labels.len() {
            return Err(MpsError::Shape(format!(
                "{} images but {} labels",
                pixels.len() / n_sites,
                labels.len()
            )));
        }
        check_labels(labels, num_labels)?;
        let mut means = vec![0f64; num_labels * n_sites];
        let mut counts = vec![0usize; num_labels];
        for (img, &l) in pixels.chunks_exact(n_sites).zip(labels) {
            counts[l] += 1;
            for (m, &x) in means[l * n_sites..(l + 1) * n_sites].iter_mut().zip(img) {
                *m += f64::from(x);
            }
        }
        if let Some(l) = counts.iter().position(|&c| c == 0) {
            return Err(MpsError::Config(format!("label {l} has no training samples")));
        }
        for (l, c) in counts.iter().enumerate() {
            means[l * n_sites..(l + 1) * n_sites]
                .iter_mut()
                .for_each(|m| *m /= *c as f64);
        }
        let d = feature_map.dim();
        let big_l = num_labels;
        let mut phi = vec![0f32; d];
        let mut sites = Vec::with_capacity(n_sites);
        for k in 0..n_sites {
            let (left, right) = (
                if k == 0 { 1 } else { big_l },
                if k == n_sites - 1 { 1 } else { big_l },
            );
            let phys = if k == 0 { d * big_l } else { d };
            let mut data = vec![0f64; left * phys * right];
            for l in 0..big_l {
                feature_map.embed(means[l * n_sites + k] as f32, &mut phi);
                for (s, &p) in phi.iter().enumerate() {
                    let (a, b) = (if left == 1 { 0 } else { l }, if right == 1 { 0 } else { l });
                    let ph = if k == 0 { s * big_l + l } else { s };
                    data[(a * phys + ph) * right + b] = f64::from(p);
                }
            }
            sites.push(SiteTensor::new(left, phys, right, data)?);
        }
        let mut mps = Mps::from_sites(sites)?;
        mps.truncate(&TruncParams::max_bond(max_bond))?;
        let norm = mps.norm();
        if norm > 0.0 {
            mps.scale(1.0 / norm)?;
        }
        Self::from_sites(mps.sites().to_vec(), 0, num_labels, feature_map, image)
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

    /// Left wing of the model (see [`left_wing`]).
    pub(crate) fn left_wing(&self, feats: &SiteFeatures, upto: usize) -> (Vec<f32>, Vec<f64>) {
        left_wing(&self.sites, feats, upto)
    }

    /// Right wing of the model (see [`right_wing`]).
    pub(crate) fn right_wing(&self, feats: &SiteFeatures, from: usize) -> (Vec<f32>, Vec<f64>) {
        right_wing(&self.sites, feats, from)
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
        let (l, ll) = self.left_wing(feats, c);
        let (r, lr) = self.right_wing(feats, c + 1);
        let site = &self.sites[c];
        let (left, right, d, big_l) = (site.left(), site.right(), feats.dim, self.num_labels);
        let x = row_outer(&l, left, &feats.sites[c], d);
        let t = gemm(&x, feats.samples, left * d, &self.site_f32(c), big_l * right);
        let mut values = row_contract_last(&t, big_l, &r, right);
        let lc = normalize_rows(&mut values, big_l);
        let log_scale = ll.iter().zip(&lr).zip(&lc).map(|((a, b), c)| a + b + c).collect();
        Ok(Scores {
            values,
            log_scale,
            num_labels: big_l,
            decision: self.decision,
        })
    }

    pub(crate) fn check_features(&self, feats: &SiteFeatures) -> Result<()> {
        if feats.sites.len() != self.num_sites() || feats.dim != self.feature_map.dim() {
            return Err(MpsError::Shape(format!(
                "the model has {} sites of dimension {}, the data {} sites of dimension {} (image size {}x{})",
                self.num_sites(),
                self.feature_map.dim(),
                feats.sites.len(),
                feats.dim,
                self.image.0,
                self.image.1
            )));
        }
        Ok(())
    }
}

/// A site as `f32` row-major data.
pub(crate) fn site_f32(site: &SiteTensor) -> Vec<f32> {
    site.data().iter().map(|&x| x as f32).collect()
}

/// Left wing: `l_n` after contracting sites `0..upto` (none of them the label site) with the
/// features, rows normalized. Returns `(vectors samples x bond, log scales)`.
pub(crate) fn left_wing(sites: &[SiteTensor], feats: &SiteFeatures, upto: usize) -> (Vec<f32>, Vec<f64>) {
    let n = feats.samples;
    let d = feats.dim;
    let mut v = vec![1f32; n];
    let mut logs = vec![0f64; n];
    let mut width = 1;
    for (site, phi) in sites.iter().zip(&feats.sites).take(upto) {
        let x = row_outer(&v, width, phi, d);
        let right = site.right();
        v = gemm(&x, n, width * d, &site_f32(site), right);
        width = right;
        logs.iter_mut()
            .zip(normalize_rows(&mut v, width))
            .for_each(|(a, b)| *a += b);
    }
    (v, logs)
}

/// Right wing: `r_n` after contracting sites `from..N` (none of them the label site) with the
/// features, rows normalized. Returns `(vectors samples x bond, log scales)`.
pub(crate) fn right_wing(sites: &[SiteTensor], feats: &SiteFeatures, from: usize) -> (Vec<f32>, Vec<f64>) {
    let n = feats.samples;
    let d = feats.dim;
    let mut v = vec![1f32; n];
    let mut logs = vec![0f64; n];
    let mut width = 1;
    for k in (from..sites.len()).rev() {
        let left = sites[k].left();
        let w = gemm_bt(&v, n, width, &site_f32(&sites[k]), left * d);
        v = row_contract_last(&w, left, &feats.sites[k], d);
        width = left;
        logs.iter_mut()
            .zip(normalize_rows(&mut v, width))
            .for_each(|(a, b)| *a += b);
    }
    (v, logs)
}

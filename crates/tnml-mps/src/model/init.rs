//! Starting models: the class-mean start of the sweep trainer and the near-identity start of
//! the gradient trainer.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tnml_core::{Mps, SiteTensor, TruncParams, TruncReport};

use super::{check_labels, MpsClassifier};
use crate::error::{MpsError, Result};
use crate::feature::FeatureMap;

impl MpsClassifier {
    /// The representer-style start: `W^l = Phi(mean image of class l)`, summed over labels as a
    /// direct sum (bond dimension L), then compressed to `max_bond` by the core's SVD sweep. The
    /// result is right-canonical with the label on site 0, as the first left-to-right sweep wants.
    /// Returns the model and what the compression dropped (its report, bond by bond).
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
    ) -> Result<(Self, TruncReport)> {
        feature_map.validate()?;
        if max_bond == 0 {
            return Err(MpsError::ZeroBondDim {
                context: String::new(),
            });
        }
        let n_sites = image.0 * image.1;
        crate::feature::embed_batch(feature_map, pixels, n_sites)?; // validates pixels and shape
        if pixels.len() / n_sites != labels.len() {
            return Err(MpsError::CountMismatch {
                what: "labels",
                got: labels.len(),
                expected: pixels.len() / n_sites,
                of: "images".into(),
            });
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
            return Err(MpsError::EmptyClass { label: l });
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
        let report = mps.truncate(&TruncParams::max_bond(max_bond))?;
        let norm = mps.norm();
        if norm > 0.0 {
            mps.scale(1.0 / norm)?;
        }
        let model = Self::from_sites(mps.into_sites(), 0, num_labels, feature_map, image)?;
        Ok((model, report))
    }

    /// A near-identity start for gradient training: every site is `delta_{ab} + noise`, so that
    /// with the linear map (whose components sum to 1) every transfer matrix is the identity
    /// plus noise and the outputs start near 1 for every label, however many sites there are.
    ///
    /// # Errors
    /// Bond dimension 0, a label site outside the chain.
    pub fn near_identity(
        image: (usize, usize),
        num_labels: usize,
        feature_map: FeatureMap,
        bond: usize,
        label_site: usize,
        noise: f64,
        seed: u64,
    ) -> Result<Self> {
        if bond == 0 {
            return Err(MpsError::ZeroBondDim {
                context: String::new(),
            });
        }
        let n = image.0 * image.1;
        crate::sweep::check_turn_site(label_site, n)?;
        let d = feature_map.dim();
        let mut rng = StdRng::seed_from_u64(seed);
        let sites = (0..n)
            .map(|k| {
                let (l, r) = (if k == 0 { 1 } else { bond }, if k == n - 1 { 1 } else { bond });
                let p = if k == label_site { d * num_labels } else { d };
                let data = (0..l * p * r)
                    .map(|i| {
                        let (a, b) = (i / (p * r), i % r);
                        let diag = if a == b || l == 1 && b == 0 || r == 1 && a == 0 {
                            1.0
                        } else {
                            0.0
                        };
                        diag + noise * (rng.random::<f64>() * 2.0 - 1.0)
                    })
                    .collect();
                SiteTensor::new(l, p, r, data)
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Self::from_sites(sites, label_site, num_labels, feature_map, image)
    }
}

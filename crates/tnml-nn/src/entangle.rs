//! Entanglement of MPO weights: per layer and bond, the entanglement entropy of `W/||W||` viewed
//! as a state with `(in_k, out_k)` grouped per site, computed through a canonical form of the
//! whole MPO (tnml-core), with its bound, Renyi-2, the spectrum, and the discarded weight if the
//! bond were cut to each smaller dimension. Also the random-initialization baseline.

use serde::{Deserialize, Serialize};
use tnml_core::Mpo;

use crate::error::Result;
use crate::init::{random_cores, WeightInit};
use crate::models::Net;
use crate::spec::MpoSpec;

/// One bond of one layer at one point of training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BondRecord {
    /// Epoch (0 = at initialization).
    pub epoch: usize,
    /// Layer name.
    pub layer: String,
    /// Bond (number of sites to its left), `1..d`.
    pub bond: usize,
    /// Bond dimension.
    pub bond_dim: usize,
    /// von Neumann entropy (natural log).
    pub entropy: f64,
    /// `ln min(bond_dim, left_dim, right_dim)`.
    pub bound: f64,
    /// `entropy / bound`.
    pub ratio: f64,
    /// Renyi-2 entropy.
    pub renyi2: f64,
    /// Schmidt values, `sum s^2 = 1`, nonincreasing.
    pub spectrum: Vec<f64>,
    /// `discarded[k]`: relative discarded weight if the bond kept `k + 1` values.
    pub discarded: Vec<f64>,
}

/// Entanglement profile of one MPO as records.
///
/// # Errors
/// Non-finite or zero weights.
pub fn mpo_records(mpo: &Mpo, layer: &str, epoch: usize) -> Result<Vec<BondRecord>> {
    let profile = mpo.entanglement_profile()?;
    Ok(profile
        .bonds
        .into_iter()
        .map(|b| BondRecord {
            epoch,
            layer: layer.to_string(),
            bond: b.bond,
            bond_dim: b.bond_dim,
            entropy: b.entropy,
            bound: b.bound,
            ratio: b.normalized(),
            renyi2: b.renyi2,
            discarded: (1..=b.spectrum.len()).map(|k| b.discarded_weight_at(k)).collect(),
            spectrum: b.spectrum,
        })
        .collect())
}

/// Records for every MPO layer of `net`.
///
/// # Errors
/// As [`mpo_records`].
pub fn net_records(net: &Net, epoch: usize) -> Result<Vec<BondRecord>> {
    let mut out = Vec::new();
    for (name, layer) in net.mpo_layers() {
        out.extend(mpo_records(&layer.to_mpo()?, &name, epoch)?);
    }
    Ok(out)
}

/// Mean and standard deviation of the entropy per bond over freshly initialized layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Layer name.
    pub layer: String,
    /// The layer's shape.
    pub spec: String,
    /// Seeds used.
    pub seeds: usize,
    /// Mean entropy per bond (bond `b` at index `b - 1`).
    pub mean: Vec<f64>,
    /// Standard deviation per bond.
    pub std: Vec<f64>,
    /// Bound per bond.
    pub bound: Vec<f64>,
}

/// The entanglement of a random layer of shape `spec` (initialized like training starts),
/// averaged over `seeds` seeds: the level "compression by training" is measured against.
///
/// # Errors
/// Degenerate shapes.
pub fn random_baseline(layer: &str, spec: &MpoSpec, init: WeightInit, seeds: usize) -> Result<Baseline> {
    let mut per_bond: Vec<Vec<f64>> = vec![Vec::new(); spec.len().saturating_sub(1)];
    let mut bound = Vec::new();
    for seed in 0..seeds.max(1) {
        let cores = random_cores(spec, init, 1_000 + seed as u64);
        let mpo = Mpo::from_cores(
            cores
                .into_iter()
                .enumerate()
                .map(|(k, c)| (spec.core_shape(k), c.into_iter().map(f64::from).collect()))
                .collect(),
        )?;
        let p = mpo.entanglement_profile()?;
        bound = p.bounds();
        for (acc, s) in per_bond.iter_mut().zip(p.entropies()) {
            acc.push(s);
        }
    }
    let stats = |v: &Vec<f64>| {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
        (m, var.sqrt())
    };
    Ok(Baseline {
        layer: layer.to_string(),
        spec: spec.to_string(),
        seeds: seeds.max(1),
        mean: per_bond.iter().map(|v| stats(v).0).collect(),
        std: per_bond.iter().map(|v| stats(v).1).collect(),
        bound,
    })
}

/// Truncation of one layer to a bond dimension: relative error and compression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruncationPoint {
    /// Layer name.
    pub layer: String,
    /// Maximum bond dimension.
    pub max_bond: usize,
    /// `||W - W_trunc||_F / ||W||_F`, measured through inner products.
    pub rel_error: f64,
    /// The truncation's own report of the relative discarded weight (equals `rel_error^2` up
    /// to rounding: the dropped pieces of a canonical-form sweep are orthogonal).
    #[serde(default)]
    pub discarded_weight: f64,
    /// Parameters of the truncated MPO.
    pub params: usize,
    /// Parameters / dense parameters.
    pub rho: f64,
}

/// Truncation error and compression of `mpo` at each of `bonds` (canonical-form truncation,
/// tnml-core; the error is measured against the untruncated MPO exactly, through inner products).
///
/// # Errors
/// Invalid truncation or non-finite weights.
pub fn truncation_curve(mpo: &Mpo, layer: &str, bonds: &[usize]) -> Result<Vec<TruncationPoint>> {
    let norm2 = mpo.inner(mpo)?;
    let dense = {
        let (r, c) = mpo.dense_shape();
        (r * c) as f64
    };
    bonds
        .iter()
        .map(|&d| {
            let mut t = mpo.clone();
            let report = t.truncate(&tnml_core::TruncParams::max_bond(d))?;
            let err2 = (norm2 - 2.0 * mpo.inner(&t)? + t.inner(&t)?).max(0.0);
            Ok(TruncationPoint {
                layer: layer.to_string(),
                max_bond: d,
                rel_error: (err2 / norm2).sqrt(),
                discarded_weight: report.total_discarded_weight(),
                params: t.num_params(),
                rho: t.num_params() as f64 / dense,
            })
        })
        .collect()
}

/// Input and output modes of one weight: `(in_modes, out_modes)`.
pub type Modes = (Vec<usize>, Vec<usize>);

/// One weight of a state_dict as an exact MPO: how it was read and its entanglement per bond.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightEntanglement {
    /// Tensor name (`fc1.weight`).
    pub layer: String,
    /// Its shape in the file.
    pub shape: Vec<usize>,
    /// Rows (`shape[0]`, the outputs) and columns (the rest) of the matrix.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Input modes (multiply to `cols`).
    pub in_modes: Vec<usize>,
    /// Output modes (multiply to `rows`).
    pub out_modes: Vec<usize>,
    /// Whether the modes were chosen automatically ([`tnml_core::modes::layer_modes`]).
    pub auto_modes: bool,
    /// The exact MPO's bond dimensions (its TT ranks).
    pub bond_dims: Vec<usize>,
    /// Entanglement per bond (epoch 0).
    pub bonds: Vec<BondRecord>,
}

/// Every weight of `weights` as an exact MPO with its entanglement: modes from `modes` by tensor
/// name, else a balanced factorization of at most `max_sites` sites
/// ([`tnml_core::modes::layer_modes`]; a lopsided one is left out with its reason). Also returns the MPOs for truncation curves, and the
/// weights left out with the reason (all zero, as at some initializations: no entanglement is
/// defined; a non-finite entry), so that one odd weight does not stop a whole file.
///
/// Cost per weight: one exact TT-SVD of the `rows x cols` matrix (a chain of thin SVDs,
/// `O(rows * cols * min(rows, cols))` at worst) and one canonical sweep for the spectra.
///
/// # Errors
/// A name in `modes` that is not a weight, modes that do not multiply to the weight's size.
pub fn weights_entanglement(
    weights: &[crate::weights::WeightMatrix],
    modes: &std::collections::BTreeMap<String, Modes>,
    max_sites: usize,
) -> Result<(Vec<(WeightEntanglement, Mpo)>, crate::weights::Skipped)> {
    if let Some(name) = modes.keys().find(|n| !weights.iter().any(|w| &w.name == *n)) {
        return Err(crate::NnError::Invalid {
            field: "modes",
            reason: format!(
                "no weight {name:?} (weights of 2 or more dimensions: {})",
                weights
                    .iter()
                    .map(|w| w.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let mut skipped = Vec::new();
    let mut kept = Vec::new();
    for w in weights {
        if let Some(why) = crate::weights::unusable(w) {
            skipped.push((w.name.clone(), why));
            continue;
        }
        let (rows, cols) = (w.matrix.nrows(), w.matrix.ncols());
        let chosen = match modes.get(&w.name) {
            Some(given) => given.clone(),
            // lopsided modes would say nothing: the weight is left out with the padded size
            None => match tnml_core::modes::layer_modes(rows, cols, max_sites) {
                Ok(m) => m,
                Err(why) => {
                    skipped.push((w.name.clone(), why.to_string()));
                    continue;
                }
            },
        };
        kept.push((w, chosen));
    }
    let entries = kept
        .into_iter()
        .map(|(w, (in_modes, out_modes))| {
            let (rows, cols) = (w.matrix.nrows(), w.matrix.ncols());
            let given = modes.get(&w.name);
            let in_layer = |e: crate::NnError| crate::NnError::InLayer {
                layer: format!("{} (shape {:?} read as {rows} x {cols})", w.name, w.shape),
                source: Box::new(e),
            };
            let (mpo, _) = Mpo::from_dense(
                w.matrix.as_ref(),
                &in_modes,
                &out_modes,
                &tnml_core::TruncParams::exact(),
            )
            .map_err(|e| in_layer(e.into()))?;
            let bonds = mpo_records(&mpo, &w.name, 0).map_err(in_layer)?;
            Ok((
                WeightEntanglement {
                    layer: w.name.clone(),
                    shape: w.shape.clone(),
                    rows,
                    cols,
                    in_modes,
                    out_modes,
                    auto_modes: given.is_none(),
                    bond_dims: mpo.bond_dims(),
                    bonds,
                },
                mpo,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((entries, skipped))
}

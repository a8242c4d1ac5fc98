//! Compression of a trained dense model: every replaceable fully connected layer becomes an MPO by
//! TT-SVD (tnml-core), truncated by `TruncParams`; all other parameters are copied.

use burn::tensor::Device;
use tnml_core::faer::Mat;
use tnml_core::{Mpo, TruncParams, TruncReport};

use crate::error::{NnError, Result};
use crate::models::{Affine, Net, NetConfig};
use crate::mpo_linear::{to_vec, MpoLinear};
use crate::spec::MpoSpec;

/// The result of [`compress_dense`].
pub struct Compressed {
    /// The model with MPO layers.
    pub net: Net,
    /// Its configuration, with the bond dimensions TT-SVD kept.
    pub config: NetConfig,
    /// What each layer's truncation dropped, by layer name.
    pub reports: Vec<(String, TruncReport)>,
}

/// A replaceable layer of a dense model as an exact MPO (TT-SVD at full rank) with its bias:
/// the starting point of every truncation, uniform or per bond.
pub struct ExactLayer {
    /// Layer name (`fc1`, ...).
    pub name: String,
    /// The exact MPO of the layer's `W` (`(out, in)`), with the spec's modes.
    pub mpo: Mpo,
    /// The bias.
    pub bias: Option<Vec<f32>>,
}

/// The replaceable layers of `dense` (built from `cfg`) as MPOs: a dense layer by TT-SVD at full
/// rank with the modes of `modes` (one spec per replaceable layer), an MPO layer as it is (its
/// trained cores and modes; `modes` is then not read).
///
/// # Errors
/// Specs that do not fit the layers, non-finite cores.
pub fn exact_layers(dense: &Net, cfg: &NetConfig, modes: &[MpoSpec]) -> Result<Vec<ExactLayer>> {
    let layers = cfg.arch.replaceable();
    if cfg.mpo.is_some() {
        return layers
            .iter()
            .map(|(name, ..)| match dense.affine(name) {
                Some(Affine::Mpo(layer)) => Ok(ExactLayer {
                    name: name.to_string(),
                    mpo: layer.to_mpo()?,
                    bias: layer.bias.as_ref().map(|b| to_vec(b.val())),
                }),
                _ => Err(NnError::LayerKind {
                    layer: name.to_string(),
                    found: "not an MPO layer",
                    expected: "the MPO layers its config names",
                }),
            })
            .collect();
    }
    if modes.len() != layers.len() {
        return Err(NnError::SpecCount {
            arch: format!("{:?}", cfg.arch),
            layers: layers.len(),
            names: layers.iter().map(|l| l.0).collect::<Vec<_>>().join(", "),
            got: modes.len(),
        });
    }
    let mut out = Vec::new();
    for (spec, (name, fin, fout, _)) in modes.iter().zip(&layers) {
        spec.check_layer(*fin, *fout).map_err(|e| NnError::InLayer {
            layer: name.to_string(),
            source: Box::new(e),
        })?;
        let Some(Affine::Dense(lin)) = dense.affine(name) else {
            return Err(NnError::LayerKind {
                layer: name.to_string(),
                found: "not a dense fully connected layer",
                expected: "a dense matrix",
            });
        };
        // burn stores [in, out]; W is [out, in].
        let wt = to_vec(lin.weight.val());
        let w = Mat::from_fn(*fout, *fin, |j, i| f64::from(wt[i * fout + j]));
        let (mpo, _) = Mpo::from_dense(w.as_ref(), &spec.in_modes, &spec.out_modes, &TruncParams::exact())?;
        out.push(ExactLayer {
            name: name.to_string(),
            mpo,
            bias: lin.bias.as_ref().map(|b| to_vec(b.val())),
        });
    }
    Ok(out)
}

/// `truncated` (an MPO of `exact`'s matrix), or, when it has at least as many parameters as the
/// matrix (`rows * cols`), the matrix itself as a one-site MPO (modes `[cols] -> [rows]`, no
/// bond): the same function as `exact` at the dense layer's parameter count. An MPO that is not
/// smaller than its matrix compresses nothing, and truncating it would only lose accuracy.
/// Returns the MPO and whether the layer was kept dense.
///
/// # Errors
/// A matrix too large to form ([`tnml_core::CoreError::TooLarge`]).
pub fn dense_unless_smaller(exact: &Mpo, truncated: Mpo) -> Result<(Mpo, bool)> {
    let (rows, cols) = exact.dense_shape();
    if truncated.num_params() < rows.saturating_mul(cols) {
        return Ok((truncated, false));
    }
    let w = exact.to_dense()?;
    let (one_site, _) = Mpo::from_dense(w.as_ref(), &[cols], &[rows], &TruncParams::exact())?;
    Ok((one_site, true))
}

/// The model `dense` with each replaceable layer replaced by the MPO `truncate` makes of its
/// exact MPO (in layer order); everything else copied.
///
/// # Errors
/// What `truncate` returns; a record that does not load.
pub fn assemble(
    dense: &Net,
    cfg: &NetConfig,
    layers: &[ExactLayer],
    mut truncate: impl FnMut(usize, &Mpo) -> Result<(Mpo, TruncReport)>,
    device: &Device,
) -> Result<Compressed> {
    let mut new_layers = Vec::new();
    let mut reports = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let in_layer = |e: NnError| NnError::InLayer {
            layer: l.name.clone(),
            source: Box::new(e),
        };
        let (mpo, report) = truncate(i, &l.mpo).map_err(in_layer)?;
        new_layers.push((
            l.name.clone(),
            MpoLinear::from_mpo(&mpo, l.bias.as_deref(), device).map_err(in_layer)?,
        ));
        reports.push((l.name.clone(), report));
    }
    let new_cfg = NetConfig {
        mpo: Some(new_layers.iter().map(|(_, l)| l.spec().clone()).collect()),
        ..cfg.clone()
    };
    // Everything but the replaced layers is the source model's, as it is (no record loading:
    // an MPO source's cores have other shapes than the new ones).
    let mut net = dense.clone();
    for (name, layer) in new_layers {
        *net.affine_mut(&name).ok_or_else(|| NnError::LayerKind {
            layer: name.clone(),
            found: "no such layer",
            expected: "a replaceable layer of the architecture",
        })? = Affine::Mpo(layer);
    }
    Ok(Compressed {
        net,
        config: new_cfg,
        reports,
    })
}

/// Compresses `dense` (built from `cfg`, without MPO layers) with the modes of `modes` (one spec per
/// replaceable layer). A layer's maximum bond is `params.max_bond`, or, when that is unlimited, the
/// largest bond of its spec. Returns the MPO model, its config (actual bond dimensions) and the
/// truncation report of each layer.
///
/// # Errors
/// A model that already has MPO layers, specs that do not fit the layers, invalid truncation.
pub fn compress_dense(
    dense: &Net,
    cfg: &NetConfig,
    modes: &[MpoSpec],
    params: &TruncParams,
    device: &Device,
) -> Result<Compressed> {
    params.validate()?;
    if cfg.mpo.is_some() {
        return Err(NnError::Invalid {
            field: "model",
            reason: "the model already has MPO layers; compress takes a dense model".into(),
        });
    }
    let layers = exact_layers(dense, cfg, modes)?;
    assemble(
        dense,
        cfg,
        &layers,
        |i, exact| {
            let mut p = *params;
            if !p.is_capped() {
                p.max_bond = modes[i].bond_dims.iter().copied().max().unwrap_or(1);
            }
            let mut m = exact.clone();
            let report = m.truncate(&p)?;
            Ok((m, report))
        },
        device,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mpo_not_smaller_than_its_matrix_becomes_the_matrix() {
        // a random 16 x 16 matrix over modes 4x4 -> 4x4: full rank 16 at the middle bond, the
        // exact MPO has 4*4*16 * 2 = 512 parameters against 256 dense
        let w = Mat::from_fn(16, 16, |i, j| {
            ((i * 7 + j * 13) % 11) as f64 - 5.0 + (i == j) as u8 as f64
        });
        let (exact, _) = Mpo::from_dense(w.as_ref(), &[4, 4], &[4, 4], &TruncParams::exact()).unwrap();
        assert!(exact.num_params() >= 256, "{}", exact.num_params());
        let (kept, dense) = dense_unless_smaller(&exact, exact.clone()).unwrap();
        assert!(dense);
        assert_eq!((kept.len(), kept.num_params()), (1, 256));
        assert!(kept.bond_dims().is_empty());
        let back = kept.to_dense().unwrap();
        let diff = (0..16)
            .flat_map(|i| (0..16).map(move |j| (i, j)))
            .map(|(i, j)| (back[(i, j)] - w[(i, j)]).abs())
            .fold(0.0, f64::max);
        assert!(diff < 1e-12, "{diff}");
        // a truncation to bond 2 (4*4*2 * 2 = 64 parameters) is smaller: kept as it is
        let mut small = exact.clone();
        let dropped = small.truncate_to_bonds(&[2]).unwrap();
        assert!(dropped.total_discarded_weight() > 0.0);
        let (same, dense) = dense_unless_smaller(&exact, small.clone()).unwrap();
        assert!(!dense);
        assert_eq!(same.bond_dims(), vec![2]);
    }
}

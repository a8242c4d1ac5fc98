//! Compression of a trained dense model: every replaceable fully connected layer becomes an MPO by
//! TT-SVD (tnml-core), truncated by `TruncParams`; all other parameters are copied.

use burn::module::Module;
use burn::tensor::Device;
use tnml_core::faer::Mat;
use tnml_core::{TruncParams, TruncReport};

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
    let layers = cfg.arch.replaceable();
    if cfg.mpo.is_some() {
        return Err(NnError::Option {
            option: "--checkpoint",
            reason: "the model already has MPO layers; compress takes a dense model".into(),
        });
    }
    if modes.len() != layers.len() {
        return Err(NnError::SpecCount {
            arch: format!("{:?}", cfg.arch),
            layers: layers.len(),
            names: layers.iter().map(|l| l.0).collect::<Vec<_>>().join(", "),
            got: modes.len(),
        });
    }
    let mut new_layers = Vec::new();
    let mut reports = Vec::new();
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
        let bias = lin.bias.as_ref().map(|b| to_vec(b.val()));
        let mut p = *params;
        if !p.is_capped() {
            p.max_bond = spec.bond_dims.iter().copied().max().unwrap_or(1);
        }
        let (layer, report) = MpoLinear::from_dense(
            w.as_ref(),
            &spec.in_modes,
            &spec.out_modes,
            &p,
            bias.as_deref(),
            device,
        )?;
        reports.push((name.to_string(), report));
        new_layers.push((name.to_string(), layer));
    }
    let new_cfg = NetConfig {
        mpo: Some(new_layers.iter().map(|(_, l)| l.spec().clone()).collect()),
        ..cfg.clone()
    };
    // Everything but the replaced layers comes from the dense model's record.
    let record = dense.clone().into_record().allow_partial(true).allow_unused(true);
    let mut net = new_cfg
        .init(device)?
        .try_load_record(record)
        .map_err(|e| NnError::Checkpoint {
            path: "(the dense model)".into(),
            reason: format!("copying the dense parameters: {e}"),
        })?;
    for (name, layer) in new_layers {
        *net.affine_mut(&name).expect("replaceable layer exists") = Affine::Mpo(layer);
    }
    Ok(Compressed {
        net,
        config: new_cfg,
        reports,
    })
}

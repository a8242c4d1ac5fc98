//! Building blocks shared by the models: a linear map that is dense or MPO, and optional norms.

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::init::WeightInit;
use crate::mpo_linear::{MpoLinear, MpoLinearConfig};
use crate::spec::MpoSpec;

/// A fully connected map `in -> out`: a burn `Linear` or an [`MpoLinear`].
#[derive(Module, Debug)]
pub enum Affine {
    /// Dense weight `[in, out]` (burn's layout) and bias.
    Dense(Linear),
    /// MPO weight and dense bias.
    Mpo(MpoLinear),
}

impl Affine {
    /// A dense layer, or an MPO layer when `spec` is given (checked against the layer size).
    ///
    /// # Errors
    /// A spec whose modes do not multiply to `fan_in` / `fan_out`.
    pub fn new(
        fan_in: usize,
        fan_out: usize,
        spec: Option<&MpoSpec>,
        init: WeightInit,
        seed: u64,
        device: &Device,
    ) -> crate::Result<Self> {
        Ok(match spec {
            Some(s) => {
                s.check_layer(fan_in, fan_out)?;
                Affine::Mpo(
                    MpoLinearConfig {
                        spec: s.clone(),
                        init,
                        bias: true,
                        seed,
                    }
                    .init(device),
                )
            }
            None => {
                let std = init.std(fan_in, fan_out);
                let w = crate::init::Normal::new(seed).vec(fan_in * fan_out, std);
                // burn's row layout: weight [in, out]; built directly (no throw-away default init)
                Affine::Dense(Linear {
                    weight: burn::module::Param::from_tensor(Tensor::from_data(
                        burn::tensor::TensorData::new(w, [fan_in, fan_out]),
                        device,
                    )),
                    bias: Some(burn::module::Param::from_tensor(Tensor::zeros([fan_out], device))),
                })
            }
        })
    }

    /// `x W^T + b`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Affine::Dense(l) => l.forward(x),
            Affine::Mpo(m) => m.forward(x),
        }
    }

    /// Weight parameters (cores for an MPO; no bias).
    pub fn num_params(&self) -> usize {
        match self {
            Affine::Dense(l) => l.weight.val().dims().iter().product(),
            Affine::Mpo(m) => m.num_params(),
        }
    }

    /// The MPO layer, if this is one.
    pub fn as_mpo(&self) -> Option<&MpoLinear> {
        match self {
            Affine::Mpo(m) => Some(m),
            Affine::Dense(_) => None,
        }
    }
}

/// Normalization after a hidden fully connected layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum NormKind {
    /// None.
    #[default]
    None,
    /// LayerNorm over the features.
    Layer,
    /// BatchNorm over the batch.
    Batch,
}

/// A LayerNorm or BatchNorm over `[batch, features]`, or nothing.
#[derive(Module, Debug)]
pub struct Norm1d {
    layer: Option<LayerNorm>,
    batch: Option<BatchNorm>,
}

impl Norm1d {
    /// A norm of `kind` over `features`.
    pub fn new(kind: NormKind, features: usize, device: &Device) -> Self {
        Self {
            layer: (kind == NormKind::Layer).then(|| LayerNormConfig::new(features).init(device)),
            batch: (kind == NormKind::Batch).then(|| BatchNormConfig::new(features).init(device)),
        }
    }

    /// Whether this is a BatchNorm (statistics over the batch, running averages).
    pub fn is_batch(&self) -> bool {
        self.batch.is_some()
    }

    /// Applies the norm (identity for none).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        if let Some(l) = &self.layer {
            return l.forward(x);
        }
        if let Some(b) = &self.batch {
            // BatchNorm wants [batch, channels, ...]
            let [n, f] = x.dims();
            return b.forward(x.reshape([n, f, 1])).reshape([n, f]);
        }
        x
    }
}

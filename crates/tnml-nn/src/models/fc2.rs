//! FC2: 784 -> 256 -> 10 with ReLU (Gao et al. 2020, MNIST).

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::config::NetConfig;
use super::layers::{Affine, Norm1d};

/// The two-layer perceptron.
#[derive(Module, Debug)]
pub struct Fc2 {
    /// 784 -> 256.
    pub fc1: Affine,
    /// Optional norm after fc1.
    pub norm1: Norm1d,
    /// 256 -> 10.
    pub fc2: Affine,
}

impl Fc2 {
    /// Builds the model; `cfg.mpo` holds the MPO shapes of fc1 and fc2 for the MPO model.
    pub(super) fn new(cfg: &NetConfig, device: &Device) -> crate::Result<Self> {
        let spec = |k: usize| cfg.mpo.as_ref().map(|s| &s[k]);
        Ok(Self {
            fc1: Affine::new(784, 256, spec(0), cfg.init, cfg.seed, device)?,
            norm1: Norm1d::new(cfg.norm, 256, device),
            fc2: Affine::new(256, 10, spec(1), cfg.init, cfg.seed + 1, device)?,
        })
    }

    /// Logits `[B, 10]` from images `[B, 1, 28, 28]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x: Tensor<2> = x.flatten(1, 3);
        let h = relu(self.norm1.forward(self.fc1.forward(x)));
        self.fc2.forward(h)
    }
}

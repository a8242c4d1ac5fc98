//! LeNet-5: conv(1->6, 5x5, pad 2) - pool - conv(6->16, 5x5) - pool - [400 -> 120 -> 84 -> 10].
//! "conv3" acts on the 5x5x16 map, so it is the fully connected 400 -> 120 (Gao et al.'s MPO).

use burn::module::Module;

use crate::kernels::{conv2d, max_pool2d};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::config::NetConfig;
use super::layers::{Affine, Norm1d};

/// LeNet-5 with dense convolutions and three (dense or MPO) fully connected layers.
#[derive(Module, Debug)]
pub struct LeNet5 {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    /// 400 -> 120 ("conv3").
    pub fc3: Affine,
    norm3: Norm1d,
    /// 120 -> 84.
    pub fc4: Affine,
    norm4: Norm1d,
    /// 84 -> 10.
    pub fc5: Affine,
}

impl LeNet5 {
    pub(super) fn new(cfg: &NetConfig, device: &Device) -> crate::Result<Self> {
        device.seed(cfg.seed);
        let spec = |k: usize| cfg.mpo.as_ref().map(|s| &s[k]);
        Ok(Self {
            conv1: Conv2dConfig::new([1, 6], [5, 5])
                .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
                .init(device),
            conv2: Conv2dConfig::new([6, 16], [5, 5]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc3: Affine::new(400, 120, spec(0), cfg.init, cfg.seed, device)?,
            norm3: Norm1d::new(cfg.norm, 120, device),
            fc4: Affine::new(120, 84, spec(1), cfg.init, cfg.seed + 1, device)?,
            norm4: Norm1d::new(cfg.norm, 84, device),
            fc5: Affine::new(84, 10, spec(2), cfg.init, cfg.seed + 2, device)?,
        })
    }

    /// Whether a norm layer is a BatchNorm.
    pub(crate) fn has_batch_norm(&self) -> bool {
        self.norm3.is_batch() || self.norm4.is_batch()
    }

    /// Logits `[B, 10]` from images `[B, 1, 28, 28]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = max_pool2d(&self.pool, relu(conv2d(&self.conv1, x)));
        let x = max_pool2d(&self.pool, relu(conv2d(&self.conv2, x)));
        let x: Tensor<2> = x.flatten(1, 3);
        let x = relu(self.norm3.forward(self.fc3.forward(x)));
        let x = relu(self.norm4.forward(self.fc4.forward(x)));
        self.fc5.forward(x)
    }
}

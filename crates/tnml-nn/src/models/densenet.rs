//! DenseNet-40 for 32x32 inputs (Huang et al. 2017; growth rate 12, 16 initial features, no
//! bottleneck, no compression): a 3x3 convolution 3 -> 16, three dense blocks of 12 layers
//! (`BN -> ReLU -> conv3x3 -> 12` channels, concatenated to the input), transitions
//! `BN -> ReLU -> conv1x1 -> avgpool 2x2` between them, then `BN -> ReLU -> global average`
//! and the classifier `448 -> 10` (`16 + 3 * 12 * 12 = 448` channels). Gao et al. (2020) replace
//! the classifier by `M^{1,5,2,1}_{4,4,7,4}(4)`: 576 parameters for 4,480 (rho 0.129).

use burn::module::Module;

use crate::kernels::conv2d;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::config::NetConfig;
use super::layers::Affine;
use super::resnet::conv;

/// Growth rate.
pub const GROWTH: usize = 12;
/// Layers per dense block (DenseNet-40: `(40 - 4) / 3`).
pub const LAYERS_PER_BLOCK: usize = 12;
/// Channels the classifier sees.
pub const FEATURES: usize = 16 + 3 * LAYERS_PER_BLOCK * GROWTH;

/// `BN -> ReLU -> conv` (3x3 in the blocks, 1x1 in the transitions).
#[derive(Module, Debug)]
pub struct BnReluConv {
    bn: BatchNorm,
    conv: Conv2d,
}

impl BnReluConv {
    fn new(cin: usize, cout: usize, k: usize, device: &Device) -> Self {
        Self {
            bn: BatchNormConfig::new(cin).init(device),
            conv: conv(cin, cout, k, 1, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(&self.conv, relu(self.bn.forward(x)))
    }
}

/// DenseNet-40.
#[derive(Module, Debug)]
pub struct DenseNet {
    conv1: Conv2d,
    /// The 36 dense layers, block by block.
    pub layers: Vec<BnReluConv>,
    transitions: Vec<BnReluConv>,
    pool: AvgPool2d,
    bn: BatchNorm,
    /// `448 -> 10`.
    pub fc: Affine,
}

impl DenseNet {
    pub(super) fn new(cfg: &NetConfig, device: &Device) -> crate::Result<Self> {
        device.seed(cfg.seed);
        let (mut layers, mut transitions) = (Vec::new(), Vec::new());
        let mut c = 16;
        for block in 0..3 {
            for _ in 0..LAYERS_PER_BLOCK {
                layers.push(BnReluConv::new(c, GROWTH, 3, device));
                c += GROWTH;
            }
            if block < 2 {
                transitions.push(BnReluConv::new(c, c, 1, device));
            }
        }
        let spec = cfg.mpo.as_ref().map(|s| &s[0]);
        Ok(Self {
            conv1: conv(3, 16, 3, 1, device),
            layers,
            transitions,
            pool: AvgPool2dConfig::new([2, 2]).init(),
            bn: BatchNormConfig::new(FEATURES).init(device),
            fc: Affine::new(FEATURES, 10, spec, cfg.init, cfg.seed, device)?,
        })
    }

    /// Logits `[B, 10]` from images `[B, 3, 32, 32]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = conv2d(&self.conv1, x);
        for (block, layers) in self.layers.chunks(LAYERS_PER_BLOCK).enumerate() {
            for l in layers {
                let new = l.forward(x.clone());
                x = Tensor::cat(vec![x, new], 1);
            }
            if let Some(t) = self.transitions.get(block) {
                x = self.pool.forward(t.forward(x));
            }
        }
        let x = relu(self.bn.forward(x));
        let [batch, c, _, _] = x.dims();
        self.fc.forward(x.mean_dim(3).mean_dim(2).reshape([batch, c]))
    }
}

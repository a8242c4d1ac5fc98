//! Wide ResNet for 32x32 inputs (He et al. 2016, widened by k as Zagoruyko & Komodakis): a 3x3
//! convolution 3 -> 16, three stages of `n` basic blocks with `16k, 32k, 64k` channels (strides
//! 1, 2, 2), global average pooling, and the classifier `64k -> 10`. Depth `6n + 2`: ResNet-20
//! (`n = 3`) and ResNet-56 (`n = 9`), both at `k = 4` as Gao et al. (2020) use them.
//!
//! A basic block is `conv3x3 -> BN -> ReLU -> conv3x3 -> BN`, plus the shortcut (identity, or
//! `conv1x1 -> BN` where the shape changes), then ReLU. Gao's MPOs replace the classifier
//! (`M^{1,5,2,1}_{4,4,4,4}(3)`) and, for ResNet-56, the two convolutions of the last residual
//! unit, each by a whole-map MPO `16384 -> 16384` on the flattened `256 x 8 x 8` map (as VGG's
//! conv5 in [`super::vgg`]).

use burn::module::Module;

use crate::kernels::conv2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::config::NetConfig;
use super::layers::Affine;
use crate::mpo_linear::{MpoLinear, MpoLinearConfig};

/// Widening factor of Gao's ResNets.
pub const WIDTH: usize = 4;

/// A `k x k` convolution with padding `k / 2`.
pub(super) fn conv(cin: usize, cout: usize, k: usize, stride: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .init(device)
}

/// A convolution of a residual unit: dense, or a whole-map MPO.
#[derive(Module, Debug)]
pub enum UnitConv {
    /// 3x3 convolution.
    Conv(Conv2d),
    /// MPO over the flattened `C x H x W` map (shape kept).
    Mpo(MpoLinear),
}

impl UnitConv {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            UnitConv::Conv(c) => conv2d(c, x),
            UnitConv::Mpo(m) => {
                let [b, c, h, w] = x.dims();
                m.forward(x.reshape([b, c * h * w])).reshape([b, c, h, w])
            }
        }
    }
}

/// `conv1x1 -> BN` where a block changes the shape.
#[derive(Module, Debug)]
pub struct Shortcut {
    conv: Conv2d,
    bn: BatchNorm,
}

/// One basic block.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// First convolution.
    pub conv1: UnitConv,
    bn1: BatchNorm,
    /// Second convolution.
    pub conv2: UnitConv,
    bn2: BatchNorm,
    shortcut: Option<Shortcut>,
}

impl BasicBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = relu(self.bn1.forward(self.conv1.forward(x.clone())));
        let y = self.bn2.forward(self.conv2.forward(y));
        let s = match &self.shortcut {
            Some(s) => s.bn.forward(conv2d(&s.conv, x)),
            None => x,
        };
        relu(y + s)
    }
}

/// The wide ResNet.
#[derive(Module, Debug)]
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    /// The `3n` basic blocks, stage by stage.
    pub blocks: Vec<BasicBlock>,
    /// `64k -> 10`.
    pub fc: Affine,
}

impl ResNet {
    /// ResNet-`6n+2` at width [`WIDTH`]; `cfg.mpo` holds the classifier's MPO (`n = 3`) or the
    /// last unit's two MPOs then the classifier's (`n = 9`).
    pub(super) fn new(cfg: &NetConfig, n: usize, device: &Device) -> crate::Result<Self> {
        device.seed(cfg.seed);
        let specs = cfg.mpo.as_deref();
        let unit_mpos = specs.filter(|s| s.len() == 3);
        let mut blocks = Vec::new();
        let mut cin = 16;
        for (stage, cout) in [16 * WIDTH, 32 * WIDTH, 64 * WIDTH].into_iter().enumerate() {
            for b in 0..n {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let last = stage == 2 && b == n - 1;
                let unit = |k: usize, cin: usize| -> crate::Result<UnitConv> {
                    Ok(match unit_mpos.filter(|_| last) {
                        Some(s) => {
                            s[k].check_layer(cout * 64, cout * 64)?;
                            UnitConv::Mpo(
                                MpoLinearConfig {
                                    spec: s[k].clone(),
                                    init: cfg.init,
                                    bias: true,
                                    seed: cfg.seed + 10 + k as u64,
                                }
                                .init(device),
                            )
                        }
                        None => UnitConv::Conv(conv(cin, cout, 3, if k == 0 { stride } else { 1 }, device)),
                    })
                };
                blocks.push(BasicBlock {
                    conv1: unit(0, cin)?,
                    bn1: BatchNormConfig::new(cout).init(device),
                    conv2: unit(1, cout)?,
                    bn2: BatchNormConfig::new(cout).init(device),
                    shortcut: (stride != 1 || cin != cout).then(|| Shortcut {
                        conv: conv(cin, cout, 1, stride, device),
                        bn: BatchNormConfig::new(cout).init(device),
                    }),
                });
                cin = cout;
            }
        }
        let fc_spec = specs.and_then(|s| s.last());
        Ok(Self {
            conv1: conv(3, 16, 3, 1, device),
            bn1: BatchNormConfig::new(16).init(device),
            blocks,
            fc: Affine::new(64 * WIDTH, 10, fc_spec, cfg.init, cfg.seed, device)?,
        })
    }

    /// Logits `[B, 10]` from images `[B, 3, 32, 32]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.bn1.forward(conv2d(&self.conv1, x)));
        for b in &self.blocks {
            x = b.forward(x);
        }
        let [batch, c, _, _] = x.dims();
        let pooled: Tensor<2> = x.mean_dim(3).mean_dim(2).reshape([batch, c]);
        self.fc.forward(pooled)
    }

    /// The MPOs of the last unit (ResNet-56 with Gao's preset), named `unit_conv1`, `unit_conv2`.
    pub fn unit_mpos(&self) -> Vec<(String, &MpoLinear)> {
        let Some(last) = self.blocks.last() else {
            return Vec::new();
        };
        [("unit_conv1", &last.conv1), ("unit_conv2", &last.conv2)]
            .into_iter()
            .filter_map(|(n, c)| match c {
                UnitConv::Mpo(m) => Some((n.to_string(), m)),
                UnitConv::Conv(_) => None,
            })
            .collect()
    }
}

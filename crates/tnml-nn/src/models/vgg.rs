//! VGG-16 (configuration C: 1x1 kernels for conv3_3, conv4_3, conv5_3, as Gao et al.) and VGG-19 for
//! CIFAR-10 (32x32x3). Each conv is conv -> BatchNorm -> ReLU; after four pools the conv5 block sees a
//! 2x2x512 map, so Gao's MPO replaces two of its convolutions by a 2048 -> 2048 map of the whole
//! flattened feature map; the classifier is 512 -> 4096 -> 4096 -> 10 with dropout 0.2.

use burn::module::Module;

use crate::kernels::{conv2d, max_pool2d};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::config::NetConfig;
use super::layers::{Affine, Norm1d};
use crate::mpo_linear::{MpoLinear, MpoLinearConfig};

/// One entry of a VGG configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VggItem {
    /// A conv with this many output channels and kernel size.
    Conv(usize, usize),
    /// 2x2 max pooling.
    Pool,
}

/// VGG-16 configuration C.
pub const VGG16_C: &[VggItem] = &{
    use VggItem::{Conv as C, Pool as P};
    [
        C(64, 3),
        C(64, 3),
        P,
        C(128, 3),
        C(128, 3),
        P,
        C(256, 3),
        C(256, 3),
        C(256, 1),
        P,
        C(512, 3),
        C(512, 3),
        C(512, 1),
        P,
        C(512, 3),
        C(512, 3),
        C(512, 1),
        P,
    ]
};

/// VGG-19 (configuration E).
pub const VGG19: &[VggItem] = &{
    use VggItem::{Conv as C, Pool as P};
    [
        C(64, 3),
        C(64, 3),
        P,
        C(128, 3),
        C(128, 3),
        P,
        C(256, 3),
        C(256, 3),
        C(256, 3),
        C(256, 3),
        P,
        C(512, 3),
        C(512, 3),
        C(512, 3),
        C(512, 3),
        P,
        C(512, 3),
        C(512, 3),
        C(512, 3),
        C(512, 3),
        P,
    ]
};

/// Indices (within the conv5 block, 0-based) of the convolutions Gao replaces by MPOs.
pub fn replaced_conv5(depth: usize) -> [usize; 2] {
    if depth == 16 {
        [0, 1]
    } else {
        [2, 3]
    }
}

/// conv -> BatchNorm -> ReLU.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

/// A 2x2x512 map flattened, mapped by an MPO, reshaped back -> BatchNorm -> ReLU.
#[derive(Module, Debug)]
pub struct MapMpoBn {
    /// The 2048 -> 2048 MPO.
    pub mpo: MpoLinear,
    bn: BatchNorm,
}

/// One layer of the feature extractor.
#[derive(Module, Debug)]
pub enum VggLayer {
    /// Dense convolution.
    Conv(ConvBn),
    /// Whole-map MPO.
    Mpo(MapMpoBn),
    /// Max pooling.
    Pool(MaxPool2d),
}

/// VGG for 32x32x3 inputs.
#[derive(Module, Debug)]
pub struct Vgg {
    /// Feature layers.
    pub features: Vec<VggLayer>,
    /// 512 -> 4096.
    pub fc6: Affine,
    norm6: Norm1d,
    /// 4096 -> 4096.
    pub fc7: Affine,
    norm7: Norm1d,
    /// 4096 -> 10.
    pub fc8: Affine,
    dropout: Dropout,
}

impl Vgg {
    pub(super) fn new(cfg: &NetConfig, depth: usize, device: &Device) -> crate::Result<Self> {
        device.seed(cfg.seed);
        let items = if depth == 16 { VGG16_C } else { VGG19 };
        let replaced = replaced_conv5(depth);
        let mut features = Vec::new();
        let (mut channels, mut pools, mut conv5_index) = (3, 0, 0);
        let mut mpo_k = 0;
        for item in items {
            match *item {
                VggItem::Pool => {
                    features.push(VggLayer::Pool(MaxPool2dConfig::new([2, 2]).init()));
                    pools += 1;
                }
                VggItem::Conv(out, kernel) => {
                    let in_conv5 = pools == 4;
                    let replace = in_conv5 && cfg.mpo.is_some() && replaced.contains(&conv5_index);
                    if in_conv5 {
                        conv5_index += 1;
                    }
                    if replace {
                        let spec = &cfg.mpo.as_ref().expect("checked")[mpo_k];
                        spec.check_layer(2048, 2048)?;
                        features.push(VggLayer::Mpo(MapMpoBn {
                            mpo: MpoLinearConfig {
                                spec: spec.clone(),
                                init: cfg.init,
                                bias: true,
                                seed: cfg.seed + 10 + mpo_k as u64,
                            }
                            .init(device),
                            bn: BatchNormConfig::new(out).init(device),
                        }));
                        mpo_k += 1;
                    } else {
                        let pad = kernel / 2;
                        features.push(VggLayer::Conv(ConvBn {
                            conv: Conv2dConfig::new([channels, out], [kernel, kernel])
                                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                                .init(device),
                            bn: BatchNormConfig::new(out).init(device),
                        }));
                    }
                    channels = out;
                }
            }
        }
        let spec = |k: usize| cfg.mpo.as_ref().map(|s| &s[k]);
        Ok(Self {
            features,
            fc6: Affine::new(512, 4096, spec(2), cfg.init, cfg.seed, device)?,
            norm6: Norm1d::new(cfg.norm, 4096, device),
            fc7: Affine::new(4096, 4096, spec(3), cfg.init, cfg.seed + 1, device)?,
            norm7: Norm1d::new(cfg.norm, 4096, device),
            fc8: Affine::new(4096, 10, spec(4), cfg.init, cfg.seed + 2, device)?,
            dropout: DropoutConfig::new(0.2).init(),
        })
    }

    /// Whether a norm layer is a BatchNorm.
    pub(crate) fn has_batch_norm(&self) -> bool {
        self.norm6.is_batch() || self.norm7.is_batch()
    }

    /// Logits `[B, 10]` from images `[B, 3, 32, 32]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x;
        for layer in &self.features {
            x = match layer {
                VggLayer::Conv(c) => relu(c.bn.forward(conv2d(&c.conv, x))),
                VggLayer::Pool(p) => max_pool2d(p, x),
                VggLayer::Mpo(m) => {
                    let [b, c, h, w] = x.dims();
                    let y = m.mpo.forward(x.reshape([b, c * h * w])).reshape([b, c, h, w]);
                    relu(m.bn.forward(y))
                }
            };
        }
        let x: Tensor<2> = x.flatten(1, 3);
        let x = self
            .dropout
            .forward(relu(self.norm6.forward(self.fc6.forward(x))));
        let x = self
            .dropout
            .forward(relu(self.norm7.forward(self.fc7.forward(x))));
        self.fc8.forward(x)
    }
}

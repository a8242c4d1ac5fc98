//! The MPO-Net models of Gao et al. (2020) and their dense baselines, with Gao's MPO presets.
//!
//! | model | replaced layers (dense parameters) | Gao's MPOs |
//! |---|---|---|
//! | FC2 | fc1 784x256, fc2 256x10 (203,264) | `M^{4,4,4,4}_{4,7,7,4}(D)`, `M^{1,1,10,1}_{4,4,4,4}(4)` |
//! | LeNet-5 | fc3 400x120, fc4 120x84, fc5 84x10 (58,920) | `(4)`, `(4)`, `(2)` below |
//! | VGG-16/19 | two 3x3x512x512 conv5 layers, fc6, fc7, fc8 (23,633,920) | `(4)` everywhere |
//! | wide ResNet-20 (k = 4) | fc 256x10 (2,560) | `M^{1,5,2,1}_{4,4,4,4}(3)`: 276, rho 0.108 |
//! | wide ResNet-56 (k = 4) | the last unit's two 3x3x256x256 convs, fc (1,182,208) | `2 x M^{2,4,4,4,4,4,4,2}_{2,4,4,4,4,4,4,2}(4)`, fc as above |
//! | DenseNet-40 (growth 12) | fc 448x10 (4,480) | `M^{1,5,2,1}_{4,4,7,4}(4)`: 576, rho 0.129 |

mod config;
pub mod densenet;
mod fc2;
pub mod layers;
mod lenet5;
pub mod resnet;
pub mod talk;
pub mod vgg;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

pub use config::{Arch, CompressionReport, LayerCompression, NetConfig};
pub use densenet::DenseNet;
pub use fc2::Fc2;
pub use layers::{Affine, NormKind};
pub use lenet5::LeNet5;
pub use resnet::ResNet;
pub use talk::Talk;
pub use vgg::Vgg;

use crate::error::Result;
use crate::mpo_linear::MpoLinear;

impl NetConfig {
    /// Builds the model on `device`.
    ///
    /// # Errors
    /// See [`NetConfig::validate`].
    pub fn init(&self, device: &Device) -> Result<Net> {
        self.validate()?;
        Ok(match self.arch {
            Arch::Fc2 => Net::Fc2(Fc2::new(self, device)?),
            Arch::Lenet5 => Net::Lenet5(LeNet5::new(self, device)?),
            Arch::Vgg16 => Net::Vgg(Vgg::new(self, 16, device)?),
            Arch::Vgg19 => Net::Vgg(Vgg::new(self, 19, device)?),
            Arch::Talk => Net::Talk(Talk::new(self, device)?),
            Arch::Resnet20 => Net::Resnet(ResNet::new(self, 3, device)?),
            Arch::Resnet56 => Net::Resnet(ResNet::new(self, 9, device)?),
            Arch::Densenet40 => Net::Densenet(DenseNet::new(self, device)?),
        })
    }
}

/// A model of any architecture.
// The variants differ in size (VGG holds many layers); a model exists once, so boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Net {
    /// FC2.
    Fc2(Fc2),
    /// LeNet-5.
    Lenet5(LeNet5),
    /// VGG-16 or VGG-19.
    Vgg(Vgg),
    /// The seed talk's model.
    Talk(Talk),
    /// Wide ResNet-20 or -56.
    Resnet(ResNet),
    /// DenseNet-40.
    Densenet(DenseNet),
}

impl Net {
    /// Logits `[B, 10]` from images `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Net::Fc2(m) => m.forward(x),
            Net::Lenet5(m) => m.forward(x),
            Net::Vgg(m) => m.forward(x),
            Net::Talk(m) => m.forward(x),
            Net::Resnet(m) => m.forward(x),
            Net::Densenet(m) => m.forward(x),
        }
    }

    /// Whether a layer normalizes over the batch (BatchNorm: ResNet, DenseNet, or `--norm
    /// batch`), so that a batch cannot be cut into shards without changing the model.
    pub fn has_batch_norm(&self) -> bool {
        match self {
            Net::Fc2(m) => m.norm1.is_batch(),
            Net::Lenet5(m) => m.has_batch_norm(),
            Net::Vgg(m) => m.has_batch_norm(),
            Net::Talk(m) => m.has_batch_norm(),
            Net::Resnet(_) | Net::Densenet(_) => true,
        }
    }

    /// The fully connected layer `name` (see [`Arch::replaceable`]).
    pub fn affine(&self, name: &str) -> Option<&Affine> {
        match (self, name) {
            (Net::Fc2(m), "fc1") => Some(&m.fc1),
            (Net::Fc2(m), "fc2") => Some(&m.fc2),
            (Net::Lenet5(m), "fc3") => Some(&m.fc3),
            (Net::Lenet5(m), "fc4") => Some(&m.fc4),
            (Net::Lenet5(m), "fc5") => Some(&m.fc5),
            (Net::Vgg(m), "fc6") => Some(&m.fc6),
            (Net::Vgg(m), "fc7") => Some(&m.fc7),
            (Net::Vgg(m), "fc8") => Some(&m.fc8),
            (Net::Talk(m), "hidden") => Some(&m.hidden),
            (Net::Resnet(m), "fc") => Some(&m.fc),
            (Net::Densenet(m), "fc") => Some(&m.fc),
            _ => None,
        }
    }

    /// Mutable access to the fully connected layer `name`.
    pub fn affine_mut(&mut self, name: &str) -> Option<&mut Affine> {
        match (self, name) {
            (Net::Fc2(m), "fc1") => Some(&mut m.fc1),
            (Net::Fc2(m), "fc2") => Some(&mut m.fc2),
            (Net::Lenet5(m), "fc3") => Some(&mut m.fc3),
            (Net::Lenet5(m), "fc4") => Some(&mut m.fc4),
            (Net::Lenet5(m), "fc5") => Some(&mut m.fc5),
            (Net::Vgg(m), "fc6") => Some(&mut m.fc6),
            (Net::Vgg(m), "fc7") => Some(&mut m.fc7),
            (Net::Vgg(m), "fc8") => Some(&mut m.fc8),
            (Net::Talk(m), "hidden") => Some(&mut m.hidden),
            (Net::Resnet(m), "fc") => Some(&mut m.fc),
            (Net::Densenet(m), "fc") => Some(&mut m.fc),
            _ => None,
        }
    }

    /// The MPO layers with their names, in [`Arch::replaceable`] order.
    pub fn mpo_layers(&self) -> Vec<(String, &MpoLinear)> {
        let mut out: Vec<(String, &MpoLinear)> = Vec::new();
        let affines: Vec<(&str, &Affine)> = match self {
            Net::Fc2(m) => vec![("fc1", &m.fc1), ("fc2", &m.fc2)],
            Net::Lenet5(m) => vec![("fc3", &m.fc3), ("fc4", &m.fc4), ("fc5", &m.fc5)],
            Net::Vgg(m) => {
                // named as in Arch::replaceable: conv5_1/conv5_2 (VGG-16), conv5_3/conv5_4 (VGG-19)
                let convs = m
                    .features
                    .iter()
                    .filter(|l| !matches!(l, vgg::VggLayer::Pool(_)))
                    .count();
                let depth = convs + 3;
                let names = vgg::replaced_conv5(depth).map(|i| format!("conv5_{}", i + 1));
                let mpos = m.features.iter().filter_map(|l| match l {
                    vgg::VggLayer::Mpo(b) => Some(&b.mpo),
                    _ => None,
                });
                out.extend(names.into_iter().zip(mpos));
                vec![("fc6", &m.fc6), ("fc7", &m.fc7), ("fc8", &m.fc8)]
            }
            Net::Talk(m) => vec![("hidden", &m.hidden)],
            Net::Resnet(m) => {
                out.extend(m.unit_mpos());
                vec![("fc", &m.fc)]
            }
            Net::Densenet(m) => vec![("fc", &m.fc)],
        };
        for (name, a) in affines {
            if let Some(m) = a.as_mpo() {
                out.push((name.to_string(), m));
            }
        }
        out
    }
}

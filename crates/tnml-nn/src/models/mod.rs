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

pub mod densenet;
mod fc2;
pub mod layers;
mod lenet5;
pub mod resnet;
pub mod talk;
pub mod vgg;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

pub use densenet::DenseNet;
pub use fc2::Fc2;
pub use layers::{Affine, NormKind};
pub use lenet5::LeNet5;
pub use resnet::ResNet;
pub use talk::Talk;
pub use vgg::Vgg;

use crate::error::{NnError, Result};
use crate::init::WeightInit;
use crate::mpo_linear::MpoLinear;
use crate::spec::MpoSpec;
use tnml_core::Compression;

/// The architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// 784-256-10 perceptron (MNIST).
    Fc2,
    /// LeNet-5 (MNIST).
    Lenet5,
    /// VGG-16, configuration C (CIFAR-10).
    Vgg16,
    /// VGG-19 (CIFAR-10).
    Vgg19,
    /// The seed talk's model: MPO 1024 -> 1024, ReLU, dense 1024 -> 10 on 32x32-padded MNIST.
    Talk,
    /// Wide ResNet-20, k = 4 (CIFAR-10).
    Resnet20,
    /// Wide ResNet-56, k = 4 (CIFAR-10).
    Resnet56,
    /// DenseNet-40, growth 12 (CIFAR-10).
    Densenet40,
}

impl Arch {
    /// Input shape `[channels, height, width]`.
    pub fn input_shape(&self) -> [usize; 3] {
        match self {
            Arch::Fc2 | Arch::Lenet5 => [1, 28, 28],
            Arch::Vgg16 | Arch::Vgg19 | Arch::Resnet20 | Arch::Resnet56 | Arch::Densenet40 => [3, 32, 32],
            Arch::Talk => [1, 32, 32],
        }
    }

    /// Names and `(fan_in, fan_out, dense parameters)` of the layers an MPO preset replaces.
    /// The dense count of VGG's conv5 layers is their 3x3x512x512 kernel (Gao's denominator).
    pub fn replaceable(&self) -> Vec<(&'static str, usize, usize, usize)> {
        match self {
            Arch::Fc2 => vec![("fc1", 784, 256, 784 * 256), ("fc2", 256, 10, 2560)],
            Arch::Talk => vec![("hidden", 1024, 1024, 1024 * 1024)],
            Arch::Resnet20 => vec![("fc", 256, 10, 2560)],
            Arch::Resnet56 => vec![
                ("unit_conv1", 16_384, 16_384, 9 * 256 * 256),
                ("unit_conv2", 16_384, 16_384, 9 * 256 * 256),
                ("fc", 256, 10, 2560),
            ],
            Arch::Densenet40 => vec![("fc", 448, 10, 4480)],
            Arch::Lenet5 => vec![
                ("fc3", 400, 120, 48_000),
                ("fc4", 120, 84, 10_080),
                ("fc5", 84, 10, 840),
            ],
            Arch::Vgg16 | Arch::Vgg19 => {
                let (a, b) = if *self == Arch::Vgg16 {
                    ("conv5_1", "conv5_2")
                } else {
                    ("conv5_3", "conv5_4")
                };
                vec![
                    (a, 2048, 2048, 9 * 512 * 512),
                    (b, 2048, 2048, 9 * 512 * 512),
                    ("fc6", 512, 4096, 512 * 4096),
                    ("fc7", 4096, 4096, 4096 * 4096),
                    ("fc8", 4096, 10, 40_960),
                ]
            }
        }
    }

    /// Gao's MPO shapes (for the talk model, (4,4,4,4,4) -> (4,4,4,4,4) at bond 12). `bond` overrides D of FC2's first layer (Gao sweeps it, default 16), or of
    /// every layer for the other models.
    ///
    /// # Errors
    /// A bond dimension of 0.
    pub fn gao_preset(&self, bond: Option<usize>) -> Result<Vec<MpoSpec>> {
        let m = |i: &[usize], o: &[usize], d: usize| MpoSpec::uniform(i, o, d);
        let or = |d: usize| bond.unwrap_or(d);
        match self {
            Arch::Fc2 => Ok(vec![
                m(&[4, 7, 7, 4], &[4, 4, 4, 4], or(16))?,
                m(&[4, 4, 4, 4], &[1, 1, 10, 1], 4)?,
            ]),
            Arch::Talk => Ok(vec![m(&[4, 4, 4, 4, 4], &[4, 4, 4, 4, 4], or(12))?]),
            Arch::Resnet20 => Ok(vec![m(&[4, 4, 4, 4], &[1, 5, 2, 1], or(3))?]),
            Arch::Resnet56 => {
                let unit = [2, 4, 4, 4, 4, 4, 4, 2];
                Ok(vec![
                    m(&unit, &unit, or(4))?,
                    m(&unit, &unit, or(4))?,
                    m(&[4, 4, 4, 4], &[1, 5, 2, 1], or(3))?,
                ])
            }
            Arch::Densenet40 => Ok(vec![m(&[4, 4, 7, 4], &[1, 5, 2, 1], or(4))?]),
            Arch::Lenet5 => Ok(vec![
                m(&[2, 10, 10, 2], &[2, 5, 6, 2], or(4))?,
                m(&[2, 5, 6, 2], &[2, 3, 7, 2], or(4))?,
                m(&[2, 3, 7, 2], &[1, 5, 2, 1], or(2))?,
            ]),
            Arch::Vgg16 | Arch::Vgg19 => {
                let d = or(4);
                Ok(vec![
                    m(&[2, 8, 8, 8, 2], &[2, 8, 8, 8, 2], d)?,
                    m(&[2, 8, 8, 8, 2], &[2, 8, 8, 8, 2], d)?,
                    m(&[4, 4, 4, 4, 2], &[4, 4, 8, 8, 4], d)?,
                    m(&[4, 4, 8, 8, 4], &[4, 4, 8, 8, 4], d)?,
                    m(&[4, 4, 8, 8, 4], &[1, 10, 1, 1, 1], d)?,
                ])
            }
        }
    }
}

/// Everything needed to rebuild a model (stored in checkpoints and run directories).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Architecture.
    pub arch: Arch,
    /// MPO shapes of the replaceable layers (in [`Arch::replaceable`] order); `None` = dense.
    pub mpo: Option<Vec<MpoSpec>>,
    /// Norm after hidden fully connected layers.
    pub norm: NormKind,
    /// Initialization of fully connected / MPO weights.
    pub init: WeightInit,
    /// Seed of the initialization.
    pub seed: u64,
    /// Talk model only: site `k` of the MPO takes input axis `pairing[k]` (None = natural order).
    #[serde(default)]
    pub pairing: Option<Vec<usize>>,
}

impl NetConfig {
    /// Checks the MPO specs against the layers they replace.
    ///
    /// # Errors
    /// A wrong number of specs, or modes that do not multiply to the layer sizes.
    pub fn validate(&self) -> Result<()> {
        if let Some(specs) = &self.mpo {
            let layers = self.arch.replaceable();
            if specs.len() != layers.len() {
                return Err(NnError::SpecCount {
                    arch: format!("{:?}", self.arch),
                    layers: layers.len(),
                    names: layers.iter().map(|l| l.0).collect::<Vec<_>>().join(", "),
                    got: specs.len(),
                });
            }
            for (spec, (name, fin, fout, _)) in specs.iter().zip(&layers) {
                spec.check_layer(*fin, *fout).map_err(|e| NnError::InLayer {
                    layer: name.to_string(),
                    source: Box::new(e),
                })?;
            }
        }
        Ok(())
    }

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

    /// Per replaced layer: name, MPO parameters, dense parameters; and rho over them (Gao's Eq. 9).
    pub fn compression(&self) -> Option<CompressionReport> {
        let specs = self.mpo.as_ref()?;
        let layers: Vec<LayerCompression> = self
            .arch
            .replaceable()
            .into_iter()
            .zip(specs)
            .map(|((name, _, _, dense), spec)| LayerCompression {
                name: name.to_string(),
                spec: spec.to_string(),
                params: Compression {
                    mpo_params: spec.num_params(),
                    dense_params: dense,
                },
            })
            .collect();
        let total = layers.iter().map(|l| l.params).sum();
        Some(CompressionReport { layers, total })
    }
}

/// One replaced layer in a [`CompressionReport`].
#[derive(Debug, Clone, PartialEq)]
pub struct LayerCompression {
    /// Layer name.
    pub name: String,
    /// Its MPO shape in Gao's notation.
    pub spec: String,
    /// Its MPO parameters and those of the dense layer it replaces.
    pub params: Compression,
}

/// Compression over the replaced layers: core's [`Compression`] per layer and summed, so
/// `total.ratio()` is Gao's `rho` and `total.factor()` Novikov's compression factor. Written to
/// `compression.json` as `{layers: [{name, spec, mpo_params, dense_params, rho}], mpo_params,
/// dense_params, rho, factor}`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressionReport {
    /// Per layer.
    pub layers: Vec<LayerCompression>,
    /// Summed over the layers.
    pub total: Compression,
}

impl Serialize for CompressionReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let layers: Vec<serde_json::Value> = self
            .layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "name": l.name,
                    "spec": l.spec,
                    "mpo_params": l.params.mpo_params,
                    "dense_params": l.params.dense_params,
                    "rho": l.params.ratio(),
                })
            })
            .collect();
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("layers", &layers)?;
        m.serialize_entry("mpo_params", &self.total.mpo_params)?;
        m.serialize_entry("dense_params", &self.total.dense_params)?;
        m.serialize_entry("rho", &self.total.ratio())?;
        m.serialize_entry("factor", &self.total.factor())?;
        m.end()
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

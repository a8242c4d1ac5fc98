//! What a model is, as data: [`Arch`] (the architecture, its input shape, replaceable layers and
//! Gao's presets), [`NetConfig`] (architecture, MPO specs, norm, init, seed) and the compression
//! report. The models themselves (`fc2`, `lenet5`, ...) read it; `mod.rs` builds them from it.

use serde::{Deserialize, Serialize};
use tnml_core::Compression;

use super::layers::NormKind;
use crate::error::{NnError, Result};
use crate::init::WeightInit;
use crate::spec::MpoSpec;

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

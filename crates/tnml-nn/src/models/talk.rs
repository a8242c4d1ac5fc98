//! The seed talk's model: MNIST padded to 32x32 (1,024 pixels) -> MPO 1024 -> 1024 -> ReLU ->
//! dense 1024 -> 10 -> softmax. The MPO is the layer whose entanglement is studied; its
//! tensorization (modes) and the pairing of input and output indices are configurable.
//!
//! Pairing: the pixel index is split row-major into the input modes; with `pairing` the MPO's site
//! `k` takes input axis `pairing[k]` instead of `k` (e.g. reversed: the least significant digit of
//! the pixel index meets the most significant digit of the output index).

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::config::NetConfig;
use super::layers::{Affine, Norm1d};

/// MPO 1024 -> 1024, ReLU, dense 1024 -> 10.
#[derive(Module, Debug)]
pub struct Talk {
    /// The studied layer (dense when the config has no MPO).
    pub hidden: Affine,
    norm: Norm1d,
    /// Dense classifier.
    pub classifier: Affine,
    /// Input feature order for the pairing (`None` = natural).
    gather: Option<Vec<usize>>,
}

/// For a tensor of `modes` (row-major) read with its axes in the order `perm`, the source flat
/// index of each position of the permuted tensor.
pub fn permuted_order(modes: &[usize], perm: &[usize]) -> Vec<usize> {
    let n: usize = modes.iter().product();
    let new_modes: Vec<usize> = perm.iter().map(|&p| modes[p]).collect();
    let mut strides = vec![1; modes.len()];
    for k in (0..modes.len().saturating_sub(1)).rev() {
        strides[k] = strides[k + 1] * modes[k + 1];
    }
    (0..n)
        .map(|mut flat| {
            let mut src = 0;
            for k in (0..new_modes.len()).rev() {
                let digit = flat % new_modes[k];
                flat /= new_modes[k];
                src += digit * strides[perm[k]];
            }
            src
        })
        .collect()
}

impl Talk {
    pub(super) fn new(cfg: &NetConfig, device: &Device) -> crate::Result<Self> {
        let spec = cfg.mpo.as_ref().map(|s| &s[0]);
        let gather = match (&cfg.pairing, spec) {
            (Some(perm), Some(s)) => {
                let mut sorted = perm.clone();
                sorted.sort_unstable();
                if sorted != (0..s.len()).collect::<Vec<_>>() {
                    return Err(crate::NnError::Invalid {
                        field: "pairing",
                        reason: format!("{perm:?} is not a permutation of the {} sites", s.len()),
                    });
                }
                // the MPO's input modes are the original axes in pairing order
                let original: Vec<usize> = {
                    let mut m = vec![0; s.len()];
                    for (k, &p) in perm.iter().enumerate() {
                        m[p] = s.in_modes[k];
                    }
                    m
                };
                Some(permuted_order(&original, perm))
            }
            (Some(_), None) => {
                return Err(crate::NnError::Invalid {
                    field: "pairing",
                    reason: "a pairing needs an MPO layer".into(),
                })
            }
            (None, _) => None,
        };
        Ok(Self {
            hidden: Affine::new(1024, 1024, spec, cfg.init, cfg.seed, device)?,
            norm: Norm1d::new(cfg.norm, 1024, device),
            classifier: Affine::new(1024, 10, None, cfg.init, cfg.seed + 1, device)?,
            gather,
        })
    }

    /// Whether a norm layer is a BatchNorm.
    pub(crate) fn has_batch_norm(&self) -> bool {
        self.norm.is_batch()
    }

    /// Logits `[B, 10]` from images `[B, 1, 32, 32]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x: Tensor<2> = x.flatten(1, 3);
        if let Some(order) = &self.gather {
            let idx: Vec<i64> = order.iter().map(|&i| i as i64).collect();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [order.len()]), &x.device());
            x = x.select(1, idx);
        }
        let h = relu(self.norm.forward(self.hidden.forward(x)));
        self.classifier.forward(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permuted_order_reverses_axes() {
        // 2x3 tensor read transposed: [[0,1,2],[3,4,5]] -> order 0,3,1,4,2,5
        assert_eq!(permuted_order(&[2, 3], &[1, 0]), vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(
            permuted_order(&[2, 3, 4], &[0, 1, 2]),
            (0..24).collect::<Vec<_>>()
        );
    }
}

//! Labelled images: the training and evaluation data of the networks, selected, split and
//! batched as tensors.

use burn::tensor::{Device, Int, Tensor, TensorData};
use tnml_data::transform::{shuffled_indices, Images};

use crate::error::{NnError, Result};

/// Images with their labels.
#[derive(Debug, Clone)]
pub struct LabeledImages {
    /// The images, `[len, C, H, W]`.
    pub images: Images,
    /// One label per image.
    pub labels: Vec<u8>,
}

impl LabeledImages {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Checks that the images fit `[C, H, W]` and the labels `< classes`.
    ///
    /// # Errors
    /// [`NnError::ImageShape`], [`NnError::LabelCount`], [`NnError::LabelOutOfRange`].
    pub fn check(&self, shape: [usize; 3], classes: usize) -> Result<()> {
        let got = [self.images.channels, self.images.height, self.images.width];
        if got != shape {
            return Err(NnError::ImageShape { expected: shape, got });
        }
        if self.images.len != self.labels.len() {
            return Err(NnError::LabelCount {
                images: self.images.len,
                labels: self.labels.len(),
            });
        }
        if let Some(l) = self.labels.iter().find(|&&l| l as usize >= classes) {
            return Err(NnError::LabelOutOfRange {
                label: usize::from(*l),
                classes,
            });
        }
        Ok(())
    }

    /// The images `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Self {
        Self {
            images: self.images.select(idx),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// A seeded split into `(training, validation)`: the validation set is the last
    /// `validation` images of the shuffled order ([`shuffled_indices`]); the two are disjoint and
    /// together hold every image once.
    ///
    /// # Errors
    /// A validation set of 0 images or of all of them.
    pub fn split_validation(&self, validation: usize, seed: u64) -> Result<(Self, Self)> {
        if validation == 0 || validation >= self.len() {
            return Err(NnError::Invalid {
                field: "validation",
                reason: format!(
                    "{validation} images: it must lie between 1 and {} (the training images)",
                    self.len().saturating_sub(1)
                ),
            });
        }
        let order = shuffled_indices(self.len(), seed);
        let (train, valid) = order.split_at(self.len() - validation);
        Ok((self.select(train), self.select(valid)))
    }

    /// Images `idx` as a `[n, C, H, W]` tensor and their labels.
    pub fn batch(&self, idx: &[usize], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let sel = self.images.select(idx);
        let x = Tensor::from_data(
            TensorData::new(sel.data, [idx.len(), sel.channels, sel.height, sel.width]),
            device,
        );
        let labels: Vec<i64> = idx.iter().map(|&i| i64::from(self.labels[i])).collect();
        let y = Tensor::from_data(TensorData::new(labels, [idx.len()]), device);
        (x, y)
    }
}

/// Images of `logits` (`[n, classes]`) whose largest entry is at their label `y`.
pub(crate) fn count_correct(logits: Tensor<2>, y: Tensor<1, Int>) -> usize {
    let pred = logits.argmax(1).flatten::<1>(0, 1);
    pred.equal(y).int().sum().into_scalar::<i64>() as usize
}

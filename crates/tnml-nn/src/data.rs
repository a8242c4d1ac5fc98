//! Data as the networks want it: a split loaded, optionally subset, normalized per channel for
//! CIFAR-10, MNIST zero-padded to 32x32 for the talk model (and repeated into 3 channels for the
//! CIFAR-10 networks), and checked against the architecture's input
//! shape. The CLI's `net` and `entangle` commands load data through [`load_split`] only.

use std::path::Path;

use tnml_data::transform::{CIFAR10_MEAN, CIFAR10_STD};
use tnml_data::{load, Dataset, Images, Split};

use crate::error::{NnError, Result};
use crate::models::Arch;
use crate::train::LabeledImages;

/// Which images of a split to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subset {
    /// All of them.
    All,
    /// A seeded random subset of at most this many (training data).
    Random {
        /// How many.
        limit: usize,
        /// Seed of the choice.
        seed: u64,
    },
    /// The first ones (test data, so that runs compare on the same images).
    First(usize),
}

/// Loads one split of `dataset` from `dir` for `arch`.
///
/// # Errors
/// Missing or corrupt files, an empty subset, images that do not fit the architecture.
pub fn load_split(
    dataset: Dataset,
    dir: &Path,
    split: Split,
    subset: Subset,
    arch: Arch,
) -> Result<LabeledImages> {
    let set = load(dataset, dir, split)?;
    let set = match subset {
        Subset::All => set,
        Subset::Random { limit, .. } | Subset::First(limit) if limit == 0 => {
            return Err(NnError::EmptySet {
                split: if split == Split::Train { "training" } else { "test" },
                why: format!(", --{}-limit is 0", split.name()),
            })
        }
        Subset::Random { limit, seed } => set.random_subset(limit, seed),
        Subset::First(n) => set.take(n),
    };
    if set.is_empty() {
        return Err(NnError::EmptySet {
            split: if split == Split::Train { "training" } else { "test" },
            why: format!(" ({} holds no image)", dir.display()),
        });
    }
    let mut images = Images::from_set(&set);
    if images.channels == 3 {
        images.normalize(&CIFAR10_MEAN, &CIFAR10_STD)?;
    }
    let [c, h, w] = arch.input_shape();
    if (h, w) == (32, 32) && images.channels == 1 && (images.height, images.width) == (28, 28) {
        // MNIST zero-padded to 32x32 (the talk model), and as three equal channels for the
        // CIFAR-10 networks (VGG, ResNet, DenseNet)
        images = images.pad_to(32, 32)?;
        if c == 3 {
            images = images.repeat_channels(3)?;
        }
    }
    let li = LabeledImages {
        images,
        labels: set.labels,
    };
    li.check(arch.input_shape(), 10).map_err(|e| NnError::Invalid {
        field: "dataset",
        reason: format!(
            "{} does not fit {arch:?} (fc2 and lenet5 take 28x28 grey images: mnist, fashion-mnist): {e}",
            dataset.display_name()
        ),
    })?;
    Ok(li)
}

//! Grey images as the MPS classifier reads them: pixels `byte / 255` in `[0, 1]`, row-major,
//! one image after another, at the dataset's size or pooled 2x2 to half of it (MNIST 28x28 ->
//! 14x14, the paper's 196 sites). The command line (`tnml mps ...`) and the Python package load
//! through here, so both see the same images in the same order.

use std::path::Path;

use crate::dataset::{load, Dataset, Split};
use crate::error::{DataError, Result};
use crate::transform::Images;

/// Pixels and labels of one split.
#[derive(Debug, Clone, PartialEq)]
pub struct GrayPixels {
    /// `samples x side x side` values in `[0, 1]`, row-major.
    pub pixels: Vec<f32>,
    /// One label per image.
    pub labels: Vec<usize>,
    /// Image side after pooling.
    pub side: usize,
}

/// Which images of a split to take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    /// A seeded random subset `(n, seed)` (all images, shuffled, when `n` is at least the
    /// split's size): the order of [`crate::split::shuffled_indices`].
    pub subset: Option<(usize, u64)>,
    /// Then at most the first `n`.
    pub limit: Option<usize>,
}

/// Loads `split` of `dataset` from `dir` at image side `side` (the dataset's own or half of it).
///
/// # Errors
/// The dataset's files missing or corrupt, colour images, an empty selection (an error rate of
/// no images is not 0), a side that is neither the images' nor half of it.
pub fn load_gray(
    dataset: Dataset,
    dir: &Path,
    split: Split,
    select: Selection,
    side: usize,
) -> Result<GrayPixels> {
    let mut set = load(dataset, dir, split)?;
    if set.channels != 1 {
        return Err(DataError::NotGrey {
            what: format!("the MPS classifier (reading {})", dataset.display_name()),
            channels: set.channels,
        });
    }
    if let Some((n, seed)) = select.subset {
        set = set.random_subset(n, seed);
    }
    if let Some(n) = select.limit {
        set = set.take(n);
    }
    if set.is_empty() {
        let why = match (select.subset, select.limit) {
            (Some((0, _)), _) | (_, Some(0)) => "the limit is 0".to_string(),
            _ => format!("{} holds no image", dir.display()),
        };
        return Err(DataError::EmptySplit {
            split: split.name(),
            dataset: dataset.display_name(),
            why,
        });
    }
    let im = Images::from_set(&set);
    let im = match side {
        s if s == im.height => im,
        s if s * 2 == im.height => im.avg_pool2x2()?,
        s => {
            return Err(DataError::ImageSize {
                size: s,
                height: im.height,
                width: im.width,
            })
        }
    };
    Ok(GrayPixels {
        side: im.height,
        pixels: im.data,
        labels: set.labels.iter().map(|&l| usize::from(l)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::shipped_sample_dir;

    #[test]
    fn sample_pooled_subset_and_limits() {
        let dir = shipped_sample_dir();
        let all = load_gray(Dataset::MnistSample, &dir, Split::Test, Selection::default(), 14).unwrap();
        assert_eq!(
            (all.side, all.labels.len(), all.pixels.len()),
            (14, 1000, 1000 * 196)
        );
        assert!(all.pixels.iter().all(|p| (0.0..=1.0).contains(p)));
        let first = load_gray(
            Dataset::MnistSample,
            &dir,
            Split::Test,
            Selection {
                subset: None,
                limit: Some(5),
            },
            28,
        )
        .unwrap();
        assert_eq!((first.side, first.labels.len()), (28, 5));
        // the seeded subset is the shuffled order, the same for the same seed
        let pick = |seed| {
            load_gray(
                Dataset::MnistSample,
                &dir,
                Split::Test,
                Selection {
                    subset: Some((50, seed)),
                    limit: None,
                },
                14,
            )
            .unwrap()
        };
        assert_eq!(pick(3), pick(3));
        assert_ne!(pick(3).labels, pick(4).labels);
        let err = load_gray(Dataset::MnistSample, &dir, Split::Test, Selection::default(), 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image size 10 does not fit 28x28 images: use 28 or 14"
        );
        let err = load_gray(
            Dataset::MnistSample,
            &dir,
            Split::Test,
            Selection {
                subset: None,
                limit: Some(0),
            },
            14,
        )
        .unwrap_err();
        assert!(err.to_string().contains("empty (the limit is 0)"), "{err}");
    }
}

//! What the `tnml mps` commands share: the feature map, trainer and loss choices, the data
//! options and the loading of pixels at the model's image size.

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use tnml_data::{load_gray, Selection, Split};
use tnml_mps::{FeatureMap, MpsClassifier};

use crate::args::DataLocation;

/// Feature map on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MapArg {
    /// [cos(pi x/2), sin(pi x/2)] (the paper's).
    Trig,
    /// The 3-dimensional generalization of trig.
    Trig3,
    /// [1 - x, x].
    Linear,
}

impl From<MapArg> for FeatureMap {
    fn from(m: MapArg) -> Self {
        match m {
            MapArg::Trig => FeatureMap::Trig,
            MapArg::Trig3 => FeatureMap::TrigD(3),
            MapArg::Linear => FeatureMap::Linear,
        }
    }
}

/// Which trainer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainerArg {
    /// DMRG-like two-site sweeps with the label moving (Stoudenmire & Schwab).
    Sweep,
    /// Adam on minibatches, all cores at once, exact gradients.
    Gradient,
}

/// Loss of either trainer (`--loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossArg {
    /// Softmax cross-entropy.
    CrossEntropy,
    /// Squared error against one-hot labels.
    Squared,
}

impl From<LossArg> for tnml_mps::Loss {
    fn from(l: LossArg) -> Self {
        match l {
            LossArg::CrossEntropy => Self::CrossEntropy,
            LossArg::Squared => Self::Squared,
        }
    }
}

/// Step-size schedule of the gradient trainer (`--lr-schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrScheduleArg {
    /// The learning rate throughout.
    Constant,
    /// Cosine decay from the learning rate to 0 over all steps.
    Cosine,
}

impl From<LrScheduleArg> for tnml_mps::LrSchedule {
    fn from(l: LrScheduleArg) -> Self {
        match l {
            LrScheduleArg::Constant => Self::Constant,
            LrScheduleArg::Cosine => Self::Cosine,
        }
    }
}

/// Data options shared by the mps commands.
#[derive(Debug, Clone, Args, Serialize)]
pub struct MpsData {
    #[command(flatten)]
    #[serde(skip)]
    pub location: DataLocation,
    /// Image side: 14 (2x2 average pooling, the paper's 196 sites) or 28 (784 sites).
    #[arg(long, default_value_t = 14)]
    pub image_size: usize,
}

/// Pixels (row-major, `[0, 1]`), labels and image side of a split at the requested image
/// size ([`tnml_data::load_gray`], which the Python package reads through too).
pub(super) fn load_pixels(
    data: &MpsData,
    split: Split,
    subset: Option<(usize, u64)>,
    limit: Option<usize>,
) -> Result<(Vec<f32>, Vec<usize>, usize)> {
    let (dataset, dir, _) = data.location.resolve();
    let g = load_gray(dataset, &dir, split, Selection { subset, limit }, data.image_size).map_err(
        |e| match e {
            e @ tnml_data::DataError::ImageSize { .. } => {
                anyhow::anyhow!("{}", e.to_string().replacen("image size", "--image-size", 1))
            }
            e => e.into(),
        },
    )?;
    Ok((g.pixels, g.labels, g.side))
}

/// Pixels and labels of a split.
pub(super) type Pixels = (Vec<f32>, Vec<usize>);

/// Holds out the last `validation` images of the training subset (`--validation`): returns the
/// images left for training and the held-out ones (empty without `--validation`).
///
/// # Errors
/// `validation` 0 or not below the number of images.
pub(super) fn split_validation(
    x: Vec<f32>,
    y: Vec<usize>,
    sites: usize,
    validation: Option<usize>,
) -> Result<(Pixels, Pixels)> {
    match validation {
        None => Ok(((x, y), (Vec::new(), Vec::new()))),
        Some(v) if v == 0 || v >= y.len() => anyhow::bail!(
            "--validation {v} must be between 1 and {} (the training images left for training)",
            y.len().saturating_sub(1)
        ),
        Some(v) => {
            let keep = y.len() - v;
            let (mut x, mut y) = (x, y);
            let (xv, yv) = (x.split_off(keep * sites), y.split_off(keep));
            Ok(((x, y), (xv, yv)))
        }
    }
}

pub(super) fn check_image(model: &MpsClassifier, side: usize) -> Result<()> {
    if model.image() != (side, side) {
        bail!(
            "the model was trained on {}x{} images, the data gives {side}x{side}: pass --image-size {}",
            model.image().0,
            model.image().1,
            model.image().0
        );
    }
    Ok(())
}

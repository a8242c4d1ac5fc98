//! What the `tnml mps` commands share: the feature map, trainer and loss choices, the data
//! options and the loading of pixels at the model's image size.

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use tnml_data::{load_gray, Selection, Split};
use tnml_mps::MpsClassifier;

use crate::args::DataLocation;

/// A command-line value parser for one of tnml-mps's named choices (`Trainer`, `Loss`,
/// `LrSchedule`, `FeatureMap`): the names listed in `--help`, parsed by the type's own `FromStr`
/// (the one Python uses too).
pub fn choice<T>(names: &'static [&'static str]) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(names)
        .try_map(|s: String| s.parse::<T>().map_err(|e| e.to_string()))
}

/// Serializes a choice by its name (`trig3`), as config.json has always spelled it.
pub fn as_name<T: std::fmt::Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
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
    // `flags::describe` names `--image-size` when the size does not fit
    let g = load_gray(dataset, &dir, split, Selection { subset, limit }, data.image_size)?;
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

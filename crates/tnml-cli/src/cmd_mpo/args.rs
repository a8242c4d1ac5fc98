//! The options of `tnml mpo compress`.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::matrix_source::Synthetic;
use crate::args::{Seed, Truncation};

/// Arguments of `tnml mpo compress`.
#[derive(Debug, Args, Serialize)]
pub struct CompressArgs {
    /// Synthetic matrix to compress (ignored with --input); its shape comes from the modes.
    #[arg(long, value_enum, default_value = "smooth")]
    pub matrix: Synthetic,
    /// safetensors file holding the matrix (rows = prod out-modes, cols = prod in-modes, as
    /// PyTorch's nn.Linear.weight).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Tensor name inside --input (needed when the file holds several).
    #[arg(long, requires = "input")]
    pub tensor: Option<String>,
    /// Input modes i_1,...,i_N (their product is the number of columns). With --auto: the modes
    /// of --tensor (default: balanced modes chosen per weight).
    #[arg(long, value_delimiter = ',', required_unless_present = "auto")]
    pub in_modes: Vec<usize>,
    /// Output modes o_1,...,o_N (their product is the number of rows).
    #[arg(long, value_delimiter = ',', required_unless_present = "auto")]
    pub out_modes: Vec<usize>,
    /// Choose the bonds from the spectra: for every weight of --input (or --tensor), the
    /// smallest MPO within --max-error, each bond its own dimension; reported next to the
    /// smallest single bond dimension that meets the same error.
    #[arg(long, requires = "input", conflicts_with_all = ["max_bond", "cutoff"])]
    pub auto: bool,
    /// Relative Frobenius error ||W - W~|| / ||W|| allowed per weight (with --auto), in [0, 1).
    #[arg(long, requires = "auto")]
    pub max_error: Option<f64>,
    /// With --auto: the most sites of the balanced modes chosen per weight (2 to 8). With four
    /// sites only the middle bond is free to choose (the outer ones sit at their bound); more
    /// sites give the per-bond choice room. A weight whose split is lopsided (a 30522-word
    /// embedding: 5087 x 3 x 2) is left out with the size to pad it to.
    #[arg(long, requires = "auto", default_value_t = tnml_core::modes::DEFAULT_SITES, value_parser = crate::args::parse_sites)]
    pub sites: usize,
    #[command(flatten)]
    pub trunc: Truncation,
    #[command(flatten)]
    pub seed: Seed,
    /// Run directory (default: runs/mpo-compress-<UTC time>); must not exist or be empty.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

//! Options shared by several commands, declared once and flattened into each (`#[command(flatten)]`),
//! so that a flag means the same thing everywhere. They also deserialize from experiment files
//! (`#[serde(flatten)]`), where a key is the flag's name with `_` for `-`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use tnml_data::{resolve_data_dir, DataDirSource, Dataset, Split};

/// A dataset on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetArg {
    /// MNIST, 60,000 + 10,000 handwritten digits.
    Mnist,
    /// The MNIST sample shipped in the repository (6,000 + 1,000).
    MnistSample,
    /// Fashion-MNIST, 60,000 + 10,000 clothing images.
    FashionMnist,
    /// CIFAR-10, 50,000 + 10,000 colour images (binary version).
    Cifar10,
}

impl From<DatasetArg> for Dataset {
    fn from(d: DatasetArg) -> Self {
        match d {
            DatasetArg::Mnist => Dataset::Mnist,
            DatasetArg::MnistSample => Dataset::MnistSample,
            DatasetArg::FashionMnist => Dataset::FashionMnist,
            DatasetArg::Cifar10 => Dataset::Cifar10,
        }
    }
}

/// A split on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// The training set.
    Train,
    /// The test set.
    Test,
}

impl From<SplitArg> for Split {
    fn from(s: SplitArg) -> Self {
        match s {
            SplitArg::Train => Split::Train,
            SplitArg::Test => Split::Test,
        }
    }
}

/// Which dataset and where (`--dataset`, `--data-dir`).
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct DataLocation {
    /// The dataset.
    #[arg(long, value_enum, default_value = "mnist-sample")]
    #[serde(default = "sample")]
    pub dataset: DatasetArg,
    /// Data directory (holding the files, or a folder per dataset). Default: $TNML_DATA_DIR,
    /// then ~/.cache/tnml; the shipped sample is found by itself.
    #[arg(long)]
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
}

fn sample() -> DatasetArg {
    DatasetArg::MnistSample
}

impl DataLocation {
    /// The dataset, the directory it is read from, and why that directory.
    pub fn resolve(&self) -> (Dataset, PathBuf, DataDirSource) {
        let dataset = Dataset::from(self.dataset);
        let (dir, source) = resolve_data_dir(dataset, self.data_dir.as_deref());
        (dataset, dir, source)
    }
}

/// How many images of each split (`--train-limit`, `--test-limit`).
#[derive(Debug, Clone, Copy, Default, Args, Serialize, Deserialize)]
pub struct Limits {
    /// Use at most this many training images (a seeded random subset).
    #[arg(long)]
    #[serde(default)]
    pub train_limit: Option<usize>,
    /// Use at most this many test images (the first ones).
    #[arg(long)]
    #[serde(default)]
    pub test_limit: Option<usize>,
}

/// Worker threads (`--threads`).
#[derive(Debug, Clone, Copy, Default, Args, Serialize, Deserialize)]
pub struct Threads {
    /// Worker threads (default: all cores).
    #[arg(long)]
    #[serde(default)]
    pub threads: Option<usize>,
}

impl Threads {
    /// Sets up the global thread pool once per process: the same count again is fine (an
    /// experiment trains several variants in one process), another count is an error.
    ///
    /// # Errors
    /// 0 threads, more than 4096, or a pool already set up with another count.
    pub fn apply(&self) -> Result<()> {
        self.apply_or(None)
    }

    /// [`Threads::apply`] with `default` threads when `--threads` is not given (`None`: all
    /// cores); several MPI ranks on one node share its cores.
    ///
    /// # Errors
    /// As [`Threads::apply`].
    pub fn apply_or(&self, default: Option<usize>) -> Result<()> {
        let Some(t) = self.threads.or(default) else {
            return Ok(());
        };
        if t == 0 || t > 4096 {
            bail!(
                "--threads {t}: use 1 to 4096 (this machine has {} cores)",
                num_cores()
            );
        }
        if rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .is_err()
            && rayon::current_num_threads() != t
        {
            bail!(
                "--threads {t}: the thread pool of this process already has {} threads",
                rayon::current_num_threads()
            );
        }
        Ok(())
    }
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The seed of every random choice of a run (`--seed`): training subset and order,
/// initialization, augmentation, synthetic matrices.
#[derive(Debug, Clone, Copy, Default, Args, Serialize, Deserialize)]
pub struct Seed {
    /// Seed of every random choice (subset, order, initialization, augmentation); the same
    /// seed gives the same run.
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub seed: u64,
}

/// A truncation from the command line (`--max-bond`, `--cutoff`), the flags of every command
/// that truncates a decomposition once.
#[derive(Debug, Clone, Copy, Args, Serialize)]
pub struct Truncation {
    /// Largest bond dimension kept (default: no cap).
    #[arg(long = "max-bond")]
    pub max_bond: Option<usize>,
    /// Largest relative discarded weight per bond, sum of dropped s^2 / sum of s^2, in [0, 1).
    #[arg(long, default_value_t = 0.0)]
    pub cutoff: f64,
}

impl Truncation {
    /// The validated parameters.
    ///
    /// # Errors
    /// A bond dimension of 0 or a cutoff outside [0, 1).
    pub fn params(&self) -> Result<tnml_core::TruncParams> {
        let p = tnml_core::TruncParams::new(self.max_bond, self.cutoff);
        p.validate()?;
        Ok(p)
    }
}

/// `--sites N`: the most sites of the balanced modes chosen per weight, 2 to
/// [`tnml_core::modes::MAX_SITES`].
pub fn parse_sites(text: &str) -> Result<usize, String> {
    let max = tnml_core::modes::MAX_SITES;
    match text.parse::<usize>() {
        Ok(n) if (2..=max).contains(&n) => Ok(n),
        _ => Err(format!("{text:?} is not a number of sites from 2 to {max}")),
    }
}

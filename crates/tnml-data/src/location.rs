//! Where datasets live: `--data-dir`, then `TNML_DATA_DIR`, then a per-user cache directory
//! (`$XDG_CACHE_HOME/tnml`, else `$HOME/.cache/tnml`). The MNIST sample ships in the repository.

use std::path::{Path, PathBuf};

use crate::dataset::Dataset;

/// Environment variable naming the data directory.
pub const DATA_DIR_ENV: &str = "TNML_DATA_DIR";

/// Where the data directory was found, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDirSource {
    /// Given on the command line.
    Flag,
    /// From `TNML_DATA_DIR`.
    Env,
    /// The per-user cache.
    Cache,
    /// The sample shipped in the repository.
    Shipped,
}

/// The directory to read `dataset` from.
pub fn resolve_data_dir(dataset: Dataset, flag: Option<&Path>) -> (PathBuf, DataDirSource) {
    if dataset == Dataset::MnistSample && flag.is_none() {
        return (shipped_sample_dir(), DataDirSource::Shipped);
    }
    if let Some(p) = flag {
        return (p.to_path_buf(), DataDirSource::Flag);
    }
    if let Some(p) = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
        return (PathBuf::from(p), DataDirSource::Env);
    }
    (cache_dir(), DataDirSource::Cache)
}

/// The per-user cache directory.
pub fn cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("tnml");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => PathBuf::from(h).join(".cache").join("tnml"),
        None => PathBuf::from(".tnml-cache"),
    }
}

/// The MNIST sample committed in the repository (`data/mnist-sample`): the source tree's copy
/// when it exists, else `data/mnist-sample` relative to the working directory.
pub fn shipped_sample_dir() -> PathBuf {
    let in_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample");
    if let Ok(p) = in_tree.canonicalize() {
        p
    } else {
        PathBuf::from("data/mnist-sample")
    }
}

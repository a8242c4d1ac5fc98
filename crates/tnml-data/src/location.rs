//! Where datasets live: `--data-dir`, then `TNML_DATA_DIR`, then a per-user cache directory
//! (`$XDG_CACHE_HOME/tnml`, else `$HOME/.cache/tnml`); when the cache lacks a dataset that a
//! system package installed under `/usr/share/datasets` (Debian's `dataset-fashion-mnist`), that
//! copy. The MNIST sample ships in the repository.

use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, Split};

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
    /// Installed by a system package (`/usr/share/datasets`).
    System,
}

impl std::fmt::Display for DataDirSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Flag => "given with --data-dir",
            Self::Env => "from $TNML_DATA_DIR",
            Self::Cache => "the per-user cache",
            Self::Shipped => "shipped in the repository",
            Self::System => "installed by a system package",
        })
    }
}

/// Where system packages put datasets (Debian: `apt-get install dataset-fashion-mnist`).
pub const SYSTEM_DATA_DIR: &str = "/usr/share/datasets";

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
    cache_or_system(dataset, cache_dir(), Path::new(SYSTEM_DATA_DIR))
}

/// The cache, unless it lacks `dataset` and `system` has all of its files.
fn cache_or_system(dataset: Dataset, cache: PathBuf, system: &Path) -> (PathBuf, DataDirSource) {
    let complete = |dir: &Path| {
        [Split::Train, Split::Test]
            .into_iter()
            .all(|split| crate::dataset::locate(dataset, dir, split).is_ok())
    };
    if !complete(&cache) && complete(system) {
        return (system.to_path_buf(), DataDirSource::System);
    }
    (cache, DataDirSource::Cache)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_copy_is_used_when_the_cache_lacks_the_dataset() {
        let tmp = tempfile::tempdir().unwrap();
        let (cache, system) = (tmp.path().join("cache"), tmp.path().join("system"));
        let sample = shipped_sample_dir();
        // a "system" copy of the sample under its dataset folder, as Debian lays it out
        let dst = system.join(Dataset::MnistSample.subdir());
        std::fs::create_dir_all(&dst).unwrap();
        for f in std::fs::read_dir(&sample).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "gz") {
                std::fs::copy(&f, dst.join(f.file_name().unwrap())).unwrap();
            }
        }
        assert_eq!(
            cache_or_system(Dataset::MnistSample, cache.clone(), &system),
            (system.clone(), DataDirSource::System)
        );
        // a complete cache wins; an empty system folder is not used
        assert_eq!(
            cache_or_system(Dataset::MnistSample, system.clone(), &cache),
            (system.clone(), DataDirSource::Cache)
        );
        assert_eq!(
            cache_or_system(Dataset::Mnist, cache.clone(), &system),
            (cache, DataDirSource::Cache)
        );
        assert_eq!(DataDirSource::System.to_string(), "installed by a system package");
    }
}

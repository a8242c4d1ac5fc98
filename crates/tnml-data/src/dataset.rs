//! Datasets, their files and checksums, and loading a split into an [`ImageSet`].
//!
//! A data directory may hold the files directly or in a per-dataset subfolder (`mnist/`,
//! `fashion-mnist/`, `cifar-10-batches-bin/`); IDX files may be gzipped (`.gz`) or raw.

use std::path::{Path, PathBuf};

use crate::cifar::read_cifar_batch;
use crate::error::{DataError, Result};
use crate::idx::read_idx;

/// Which part of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training set.
    Train,
    /// The test set.
    Test,
}

impl Split {
    /// "train" or "test".
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "test",
        }
    }
}

/// How a downloaded file is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// SHA-256 of the uncompressed content (robust to mirrors that re-compress).
    Sha256Raw(&'static str),
    /// MD5 of the archive as downloaded, as published by the dataset's authors.
    Md5Archive(&'static str),
}

/// One file to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFile {
    /// Name on the mirrors and on disk.
    pub name: &'static str,
    /// How to verify it.
    pub checksum: Checksum,
}

/// The datasets tnml reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// MNIST handwritten digits, 60,000 + 10,000, 28x28 grey.
    Mnist,
    /// The MNIST sample shipped in the repository (first 6,000 train and 1,000 test images).
    MnistSample,
    /// Fashion-MNIST, 60,000 + 10,000, 28x28 grey.
    FashionMnist,
    /// CIFAR-10, 50,000 + 10,000, 32x32 RGB.
    Cifar10,
}

const MNIST_FILES: [RemoteFile; 4] = [
    RemoteFile {
        name: "train-images-idx3-ubyte.gz",
        checksum: Checksum::Sha256Raw("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    },
    RemoteFile {
        name: "train-labels-idx1-ubyte.gz",
        checksum: Checksum::Sha256Raw("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    },
    RemoteFile {
        name: "t10k-images-idx3-ubyte.gz",
        checksum: Checksum::Sha256Raw("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    },
    RemoteFile {
        name: "t10k-labels-idx1-ubyte.gz",
        checksum: Checksum::Sha256Raw("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    },
];

// The shipped sample (data/mnist-sample/README.md).
const SAMPLE_SHA256: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "2782ff6f3467f3487a520503c34fe99b761aa97623af029969e59716ac3585c3",
    ),
    (
        "train-labels-idx1-ubyte",
        "0d830540a6191e75a9f5cd63cd5b4bde38960b893784bbf456d560179296d7cd",
    ),
    (
        "t10k-images-idx3-ubyte",
        "de7c252b04f05e1f8309634180ccdf286dc6dbac8c579b74e76e02ae0331ca52",
    ),
    (
        "t10k-labels-idx1-ubyte",
        "832c0d20f0dc42e575488c75a83a970787d4c8d4d05831b2ef03701b4a478a90",
    ),
];

// MD5 sums published in the Fashion-MNIST repository's README.
const FASHION_FILES: [RemoteFile; 4] = [
    RemoteFile {
        name: "train-images-idx3-ubyte.gz",
        checksum: Checksum::Md5Archive("8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    },
    RemoteFile {
        name: "train-labels-idx1-ubyte.gz",
        checksum: Checksum::Md5Archive("25c81989df183df01b3e8a0aad5dffbe"),
    },
    RemoteFile {
        name: "t10k-images-idx3-ubyte.gz",
        checksum: Checksum::Md5Archive("bef4ecab320f06d8554ea6380940ec79"),
    },
    RemoteFile {
        name: "t10k-labels-idx1-ubyte.gz",
        checksum: Checksum::Md5Archive("bb300cfdad3c16e7a12a480ee83cd310"),
    },
];

// MD5 published on the CIFAR page for the binary version.
const CIFAR_ARCHIVE: [RemoteFile; 1] = [RemoteFile {
    name: "cifar-10-binary.tar.gz",
    checksum: Checksum::Md5Archive("c32a1d4ab5d03f1284b67883e8d87530"),
}];

const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const FASHION: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
const CIFAR: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

impl Dataset {
    /// Every dataset.
    pub const ALL: [Dataset; 4] = [Self::Mnist, Self::MnistSample, Self::FashionMnist, Self::Cifar10];

    /// Name on the command line.
    pub fn cli_name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::MnistSample => "mnist-sample",
            Self::FashionMnist => "fashion-mnist",
            Self::Cifar10 => "cifar10",
        }
    }

    /// Human name.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Mnist => "MNIST",
            Self::MnistSample => "MNIST sample",
            Self::FashionMnist => "Fashion-MNIST",
            Self::Cifar10 => "CIFAR-10",
        }
    }

    /// Subfolder of a data directory that may hold the files.
    pub fn subdir(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::MnistSample => "mnist-sample",
            Self::FashionMnist => "fashion-mnist",
            Self::Cifar10 => "cifar-10-batches-bin",
        }
    }

    /// Class names, index = label.
    pub fn classes(self) -> &'static [&'static str] {
        match self {
            Self::Mnist | Self::MnistSample => &DIGITS,
            Self::FashionMnist => &FASHION,
            Self::Cifar10 => &CIFAR,
        }
    }

    /// `(channels, height, width)` of one image.
    pub fn image_shape(self) -> (usize, usize, usize) {
        match self {
            Self::Cifar10 => (3, 32, 32),
            _ => (1, 28, 28),
        }
    }

    /// Number of images in a split of the full dataset.
    pub fn split_len(self, split: Split) -> usize {
        match (self, split) {
            (Self::MnistSample, Split::Train) => 6_000,
            (Self::MnistSample, Split::Test) => 1_000,
            (Self::Cifar10, Split::Train) => 50_000,
            (_, Split::Train) => 60_000,
            (_, Split::Test) => 10_000,
        }
    }

    /// Files that make up a split, as named on disk (IDX names with `.gz`; raw files also found).
    pub fn files(self, split: Split) -> Vec<&'static str> {
        match (self, split) {
            (Self::Cifar10, Split::Train) => {
                vec![
                    "data_batch_1.bin",
                    "data_batch_2.bin",
                    "data_batch_3.bin",
                    "data_batch_4.bin",
                    "data_batch_5.bin",
                ]
            }
            (Self::Cifar10, Split::Test) => vec!["test_batch.bin"],
            (_, Split::Train) => vec!["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"],
            (_, Split::Test) => vec!["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"],
        }
    }

    /// Files to download and how to verify them (empty for the shipped sample).
    pub fn remote_files(self) -> &'static [RemoteFile] {
        match self {
            Self::Mnist => &MNIST_FILES,
            Self::FashionMnist => &FASHION_FILES,
            Self::Cifar10 => &CIFAR_ARCHIVE,
            Self::MnistSample => &[],
        }
    }

    /// The published SHA-256 of the uncompressed content of `file` (a name from
    /// [`Dataset::files`], with or without `.gz`), where one is known.
    pub fn published_sha256(self, file: &str) -> Option<&'static str> {
        let raw = file.strip_suffix(".gz").unwrap_or(file);
        if self == Self::MnistSample {
            return SAMPLE_SHA256.iter().find(|(n, _)| *n == raw).map(|(_, h)| *h);
        }
        self.remote_files()
            .iter()
            .find(|r| r.name.strip_suffix(".gz") == Some(raw))
            .and_then(|r| match r.checksum {
                Checksum::Sha256Raw(h) => Some(h),
                Checksum::Md5Archive(_) => None,
            })
    }

    /// Base URLs tried in order.
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            Self::Mnist => &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
            ],
            Self::FashionMnist => &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
            Self::Cifar10 => &["https://www.cs.toronto.edu/~kriz/"],
            Self::MnistSample => &[],
        }
    }

    /// Parses a command-line name.
    pub fn from_cli_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.cli_name() == name)
    }
}

/// A split of a dataset in memory: `len` images of `channels x height x width` bytes
/// (channel-major, each plane row-major) and their labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// The dataset it came from.
    pub dataset: Dataset,
    /// Pixel bytes, `len * channels * height * width`.
    pub images: Vec<u8>,
    /// Labels, `len`.
    pub labels: Vec<u8>,
    /// Channels per image.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Bytes per image.
    pub fn image_size(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let s = self.image_size();
        &self.images[i * s..(i + 1) * s]
    }
    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.dataset.classes().len()
    }
    /// Count of each label.
    pub fn label_histogram(&self) -> Vec<usize> {
        let mut h = vec![0; self.num_classes()];
        for &l in &self.labels {
            h[l as usize] += 1;
        }
        h
    }
    /// The images at `indices`, in that order.
    ///
    /// # Panics
    /// An index out of range.
    pub fn select(&self, indices: &[usize]) -> Self {
        Self {
            dataset: self.dataset,
            images: indices
                .iter()
                .flat_map(|&i| self.image(i).iter().copied())
                .collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }

    /// A seeded random subset of `n` images (all, shuffled, if fewer): the order of
    /// [`crate::split::shuffled_indices`], so the same seed picks the same images everywhere.
    pub fn random_subset(&self, n: usize, seed: u64) -> Self {
        let idx = crate::split::shuffled_indices(self.len(), seed);
        self.select(&idx[..n.min(self.len())])
    }

    /// The first `n` images (all if fewer).
    pub fn take(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.images.truncate(n * self.image_size());
        self.labels.truncate(n);
        self
    }
}

/// Finds `name` (or its uncompressed form) in `dir` or `dir/<subdir>`: the first of those
/// paths that exists (following links), a regular file or not.
pub fn find_file(dir: &Path, subdir: &str, name: &str) -> Option<PathBuf> {
    let raw = name.strip_suffix(".gz").unwrap_or(name);
    let candidates: Vec<PathBuf> = [dir.to_path_buf(), dir.join(subdir)]
        .into_iter()
        .flat_map(|d| [d.join(name), d.join(raw)])
        .collect();
    // a regular file wins; else whatever holds the name, for `locate` to name it
    candidates
        .iter()
        .find(|p| p.is_file())
        .or_else(|| candidates.iter().find(|p| p.exists() && !p.is_dir()))
        .cloned()
}

/// What a path that is not a regular file is, in words.
fn file_kind(path: &Path) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        match std::fs::metadata(path).map(|m| m.file_type()) {
            Ok(t) if t.is_fifo() => return "a FIFO (named pipe)",
            Ok(t) if t.is_char_device() => return "a character device",
            Ok(t) if t.is_block_device() => return "a block device",
            Ok(t) if t.is_socket() => return "a socket",
            _ => {}
        }
    }
    if path.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Locates every file of a split, or says which are missing.
///
/// # Errors
/// [`DataError::NotFound`] listing the missing files.
pub fn locate(dataset: Dataset, dir: &Path, split: Split) -> Result<Vec<PathBuf>> {
    let names = dataset.files(split);
    let found: Vec<Option<PathBuf>> = names
        .iter()
        .map(|n| find_file(dir, dataset.subdir(), n))
        .collect();
    if let Some(odd) = found.iter().flatten().find(|p| !p.is_file()) {
        return Err(DataError::NotAFile {
            file: odd.clone(),
            kind: file_kind(odd),
        });
    }
    let missing: Vec<String> = names
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(n, _)| n.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(DataError::NotFound {
            dataset: dataset.display_name(),
            cli_name: dataset.cli_name(),
            dir: dir.to_path_buf(),
            missing,
        });
    }
    Ok(found.into_iter().flatten().collect())
}

/// Loads a split. Either the whole split is returned or an error: never a partial set.
///
/// # Errors
/// Missing files, and every format error of the readers (named with the file).
pub fn load(dataset: Dataset, dir: &Path, split: Split) -> Result<ImageSet> {
    let files = locate(dataset, dir, split)?;
    let (channels, height, width) = dataset.image_shape();
    let classes = dataset.classes().len();
    let (images, labels) = if dataset == Dataset::Cifar10 {
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for f in &files {
            let (i, l) = read_cifar_batch(f)?;
            images.extend(i);
            labels.extend(l);
        }
        (images, labels)
    } else {
        let img = read_idx(&files[0], 3)?;
        let lab = read_idx(&files[1], 1)?;
        if img.dims[1..] != [height, width] {
            return Err(DataError::ImageShape {
                file: files[0].clone(),
                dataset: dataset.display_name(),
                found_height: img.dims[1],
                found_width: img.dims[2],
                height,
                width,
            });
        }
        if img.dims[0] != lab.dims[0] {
            return Err(DataError::CountMismatch {
                images_file: files[0].clone(),
                images: img.dims[0],
                labels_file: files[1].clone(),
                labels: lab.dims[0],
            });
        }
        if let Some(index) = lab.data.iter().position(|&l| l as usize >= classes) {
            return Err(DataError::LabelOutOfRange {
                file: files[1].clone(),
                index,
                label: lab.data[index],
                classes,
            });
        }
        (img.data, lab.data)
    };
    Ok(ImageSet {
        dataset,
        images,
        labels,
        channels,
        height,
        width,
    })
}

#[cfg(all(test, unix))]
mod odd_files {
    use super::*;

    /// A FIFO or a link to /dev/zero under a data file's name is named for what it is, not
    /// called missing (and never read: a FIFO would block, /dev/zero never ends).
    #[test]
    fn a_data_file_that_is_not_a_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let names = Dataset::Mnist.files(Split::Test);
        std::os::unix::fs::symlink("/dev/zero", dir.path().join(names[0])).unwrap();
        let e = locate(Dataset::Mnist, dir.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a character device, not a data file"), "{e}");
        std::fs::remove_file(dir.path().join(names[0])).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join(names[0]))
            .status()
            .is_ok_and(|s| s.success());
        if made {
            let e = locate(Dataset::Mnist, dir.path(), Split::Test)
                .unwrap_err()
                .to_string();
            assert!(e.contains("is a FIFO"), "{e}");
        }
        // nothing there at all is still "missing"
        let empty = tempfile::tempdir().unwrap();
        let e = locate(Dataset::Mnist, empty.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing"), "{e}");
    }
}

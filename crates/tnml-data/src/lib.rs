//! # tnml-data
//!
//! Readers for the datasets of tnml's experiments — MNIST and Fashion-MNIST (IDX, raw or
//! gzipped) and CIFAR-10 (binary version) — with checked downloads, a shipped MNIST sample, and
//! the transforms the models need (scaling, 2x2 pooling, padding, normalization, augmentation,
//! seeded shuffling, splits, batches).
//!
//! Every reader returns a whole split or a typed [`DataError`] naming the file and the expected
//! vs found values; never a partly filled dataset, never a panic on bad bytes.

pub mod checksum;
pub mod cifar;
pub mod dataset;
pub mod download;
pub mod error;
pub mod gray;
pub mod idx;
pub mod location;
pub mod split;
pub mod transform;

pub use dataset::{load, Dataset, ImageSet, Split};
pub use error::{DataError, Result};
pub use gray::{load_gray, GrayPixels, Selection};
pub use location::{resolve_data_dir, DataDirSource};
pub use transform::Images;

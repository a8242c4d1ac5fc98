//! Shared test data: the shipped MNIST sample at 14x14.

use std::path::Path;

use tnml_data::{load, Dataset, Images, Split};

/// 14x14 pixels in [0, 1] and labels of the first `n` images of a split of the shipped sample.
pub fn sample_14x14(split: Split, n: usize) -> (Vec<f32>, Vec<usize>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample");
    let set = load(Dataset::MnistSample, &dir, split).unwrap().take(n);
    let labels = set.labels.iter().map(|&l| l as usize).collect();
    let im = Images::from_set(&set).avg_pool2x2().unwrap();
    (im.data, labels)
}

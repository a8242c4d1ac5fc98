//! Index orders: a seeded shuffle of `0..n` (the one every random subset and epoch order is
//! drawn from, so a seed means the same images everywhere), train/validation splits, batches.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{DataError, Result};

/// `0..n` in a seeded random order.
pub fn shuffled_indices(n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut StdRng::seed_from_u64(seed));
    idx
}

/// A seeded split of `0..n` into `(train, validation)` with `round(n * val_fraction)` in the
/// validation part.
///
/// # Errors
/// A fraction outside `[0, 1)`.
pub fn train_val_split(n: usize, val_fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(DataError::ValidationFraction {
            fraction: val_fraction,
        });
    }
    let idx = shuffled_indices(n, seed);
    let n_val = (n as f64 * val_fraction).round() as usize;
    let (val, train) = idx.split_at(n_val);
    Ok((train.to_vec(), val.to_vec()))
}

/// Consecutive batches of at most `batch_size` indices (the last may be shorter).
///
/// # Errors
/// A batch size of 0.
pub fn batches(indices: &[usize], batch_size: usize) -> Result<std::slice::Chunks<'_, usize>> {
    if batch_size == 0 {
        return Err(DataError::ZeroBatch);
    }
    Ok(indices.chunks(batch_size))
}

//! Data parallelism: the operations the trainers need across the ranks (processes) that share a
//! training set, each holding one shard of the images ([`shard_range`]).
//!
//! Both trainers' costs and gradients are sums over samples, so sharding changes nothing but the
//! order of the additions: every rank computes its shard's partial sums and [`Collective::sum_f64`]
//! (an allreduce) makes the totals on every rank. Per bond of the sweep
//! trainer that is the `D d^2 x L D` gradient of each CG pass (in f64: the ranks' block sums then
//! add up to one process's bit for bit, see [`shard_range`]), one scalar `|A p|^2` per CGLS pass,
//! two scalars per Newton step of a cross-entropy line search and the cost and error counts:
//! about `8 passes D^2 d^2 L` bytes against `4 n D^2 d^2 L passes` flops per rank ([`cost`]). The new
//! site tensors after a truncated split are computed on every rank from identical inputs and then
//! replaced by rank 0's ([`Collective::broadcast_f64`]): an SVD or a reduction may round
//! differently on different ranks (another thread count, another allreduce order), and the ranks'
//! models must never drift apart.
//!
//! [`SingleProcess`] is the one-rank group (every operation a no-op): the trainers run the same
//! code with or without MPI, and with one rank give bit-for-bit today's results.
//! [`threads::group`] is a group of threads in one process (tests). The MPI group lives in the
//! CLI (feature `mpi`), so this crate needs no system library.

use std::ops::{ControlFlow, Range};

use tnml_core::SiteTensor;

use crate::error::Result;
use crate::feature::SiteFeatures;
use crate::gemm::SUM_BLOCK_ROWS;
use crate::model::MpsClassifier;

pub mod cost;
pub mod threads;

/// Collective operations over a group of ranks. Every rank must call the same operations in the
/// same order with buffers of the same length (as in MPI).
pub trait Collective {
    /// This rank, `0..size`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn size(&self) -> usize;
    /// Elementwise sum over the ranks, in place on every rank (allreduce).
    fn sum_f64(&self, values: &mut [f64]);
    /// Replaces `values` on every rank by rank 0's (broadcast).
    fn broadcast_f64(&self, values: &mut [f64]);
}

/// The one-rank group: sums and broadcasts leave the values as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f64(&self, _: &mut [f64]) {}
    fn broadcast_f64(&self, _: &mut [f64]) {}
}

/// The samples of rank `rank` of `size` out of `total`: contiguous, in rank order. When every
/// rank can have at least one block of [`SUM_BLOCK_ROWS`] samples, shards are whole blocks
/// (except the last rank's tail) and differ by at most one block: each rank's sums over samples
/// then run over the very blocks one process would use, and the sharded sweep gives one
/// process's numbers bit for bit. Smaller sets are split evenly (sizes differ by at most 1;
/// results agree to rounding).
pub fn shard_range(total: usize, rank: usize, size: usize) -> Range<usize> {
    let size = size.max(1);
    let even = |n: usize, r: usize| ((n as u128 * r as u128) / size as u128) as usize;
    if total >= size * SUM_BLOCK_ROWS {
        let blocks = total.div_ceil(SUM_BLOCK_ROWS);
        let at = |r: usize| (even(blocks, r) * SUM_BLOCK_ROWS).min(total);
        at(rank)..at(rank + 1)
    } else {
        even(total, rank)..even(total, rank + 1)
    }
}

/// A sum of one `f64` over the ranks.
pub fn sum_scalar(comm: &dyn Collective, value: f64) -> f64 {
    let mut v = [value];
    comm.sum_f64(&mut v);
    v[0]
}

/// A sum of one count over the ranks (exact below 2^53).
pub fn sum_count(comm: &dyn Collective, value: usize) -> usize {
    sum_scalar(comm, value as f64) as usize
}

/// `Break` on every rank when any rank breaks: an observer's decision to stop (rank 0 failed
/// to write a checkpoint) ends the training on all ranks at the same step.
pub fn agree(comm: &dyn Collective, flow: ControlFlow<()>) -> ControlFlow<()> {
    if comm.size() == 1 {
        return flow;
    }
    if sum_scalar(comm, f64::from(u8::from(flow.is_break()))) > 0.0 {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}

/// Replaces site `k` of `model` on every rank by rank 0's (shape first, then the entries).
///
/// # Errors
/// Rank 0's shape does not fit the chain (impossible when all ranks run the same program).
pub fn sync_site(comm: &dyn Collective, model: &mut MpsClassifier, k: usize) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    let s = &model.sites[k];
    let mut shape = [s.left() as f64, s.phys() as f64, s.right() as f64];
    comm.broadcast_f64(&mut shape);
    let [left, phys, right] = shape.map(|v| v as usize);
    let mut data = if (left, phys, right) == (s.left(), s.phys(), s.right()) {
        s.data().to_vec()
    } else {
        vec![0.0; left * phys * right]
    };
    comm.broadcast_f64(&mut data);
    model.sites[k] = SiteTensor::new(left, phys, right, data)?;
    Ok(())
}

/// Replaces every site of `model` on every rank by rank 0's (the label site and decision rule
/// are the same on every rank by construction: they follow from the shared configuration).
///
/// # Errors
/// As [`sync_site`].
pub fn sync_model(comm: &dyn Collective, model: &mut MpsClassifier) -> Result<()> {
    for k in 0..model.num_sites() {
        sync_site(comm, model, k)?;
    }
    Ok(())
}

/// Error rate of `model` over the union of the ranks' shards (`feats` / `labels` this rank's).
/// Each rank scores its own images; the wrong counts and sizes are summed (0 for no images).
///
/// # Errors
/// Features or labels that do not fit the model.
pub fn sharded_error_rate(
    comm: &dyn Collective,
    model: &MpsClassifier,
    feats: &SiteFeatures,
    labels: &[usize],
) -> Result<f64> {
    let wrong = if labels.is_empty() {
        0
    } else {
        let p = model.scores(feats)?.predictions();
        p.iter().zip(labels).filter(|(p, l)| p != l).count()
    };
    let mut counts = [wrong as f64, labels.len() as f64];
    comm.sum_f64(&mut counts);
    Ok(counts[0] / counts[1].max(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_samples_once_in_whole_blocks_when_they_can() {
        for (total, size) in [
            (0, 1),
            (5, 1),
            (5, 2),
            (7, 3),
            (60_000, 7),
            (3, 5),
            (60_000, 2),
            (2048, 2),
        ] {
            let ranges: Vec<_> = (0..size).map(|r| shard_range(total, r, size)).collect();
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[size - 1].end, total);
            for w in ranges.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
            let lens: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
            let (lo, hi) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
            if total >= size * SUM_BLOCK_ROWS {
                assert!(ranges.iter().all(|r| r.start % SUM_BLOCK_ROWS == 0), "{ranges:?}");
                assert!(hi - lo <= SUM_BLOCK_ROWS, "{total} over {size}: {lens:?}");
            } else {
                assert!(hi - lo <= 1, "{total} over {size}: {lens:?}");
            }
        }
    }

    #[test]
    fn thread_group_sums_and_broadcasts() {
        let handles: Vec<_> = threads::group(3)
            .into_iter()
            .map(|c| {
                std::thread::spawn(move || {
                    let mut a = [c.rank() as f64, 1.0];
                    c.sum_f64(&mut a);
                    let mut b = [10.0 + c.rank() as f64];
                    c.broadcast_f64(&mut b);
                    let brk = agree(
                        &c,
                        if c.rank() == 2 {
                            ControlFlow::Break(())
                        } else {
                            ControlFlow::Continue(())
                        },
                    );
                    (a, b, brk.is_break(), sum_count(&c, c.rank() + 1))
                })
            })
            .collect();
        for h in handles {
            let (a, b, brk, n) = h.join().unwrap();
            assert_eq!(a, [3.0, 3.0]);
            assert_eq!(b, [10.0]);
            assert!(brk);
            assert_eq!(n, 6);
        }
    }
}

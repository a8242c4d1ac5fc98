//! Data-parallel gradients of one minibatch ([`TrainConfig::shard_rows`](crate::train::TrainConfig)).
//!
//! burn's CPU backend parallelizes inside each operation. At batch 100 the operations of a small
//! network are too short for that to pay: on 2 cores a second thread made an FC2 epoch slower
//! (1.0 s -> 1.36 s) and LeNet-5 gained 1.27x. With `shard_rows = N > 0` the batch is cut
//! instead into shards of at most `N` images; each shard's forward and backward pass runs whole
//! on one worker (a one-thread pool: nothing inside it waits for another thread), with its own
//! autodiff leaves (burn keeps graphs that share a node under one mutex), and the shards'
//! gradients are summed in shard order.
//!
//! The cut depends on the batch and `N` alone, never on the thread count, and the sum runs in
//! shard order, so a run gives the same model on 1 or 16 threads. Each shard's loss is its mean
//! cross-entropy weighted by `shard / batch`, so the summed gradient is the batch mean's.
//!
//! Cost per batch of `B` images: `ceil(B / N)` passes spread over `min(threads, shards)`
//! workers, plus `(shards - 1) * params` adds. Every pass pays burn's per-operation overhead
//! (on FC2 about 0.65 ms a pass), and an MPO layer that rebuilds its dense weight does so once
//! per shard, so on one core sharding is slower; it pays where the passes are long (LeNet-5's
//! convolutions) and cores are idle.
//!
//! Models with BatchNorm are not sharded ([`shard_count`]): their batch statistics and running
//! averages are the whole batch's.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::nn::loss::CrossEntropyLoss;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};

use crate::error::{NnError, Result};
use crate::labeled::{count_correct, LabeledImages};
use crate::models::Net;

/// Shards of a batch of `batch` images for `net` at `rows` images a shard:
/// `ceil(batch / rows)`, or 1 for `rows` 0 and for a model with BatchNorm (its statistics are
/// the whole batch's).
pub fn shard_count(net: &Net, batch: usize, rows: usize) -> usize {
    if rows == 0 || net.has_batch_norm() {
        1
    } else {
        batch.div_ceil(rows).max(1)
    }
}

/// One-thread pools, one per worker.
pub struct ShardWorkers {
    pools: Vec<rayon::ThreadPool>,
}

impl ShardWorkers {
    /// `workers` one-thread pools; with fewer than 2 none is started (one worker runs the
    /// shards on the calling thread).
    ///
    /// # Errors
    /// The operating system refuses a thread.
    pub fn new(workers: usize) -> Result<Self> {
        let pools = (0..if workers < 2 { 0 } else { workers })
            .map(|_| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .map_err(|e| NnError::Invalid {
                        field: "threads",
                        reason: format!("cannot start a worker thread: {e}"),
                    })
            })
            .collect::<Result<_>>()?;
        Ok(Self { pools })
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.pools.len()
    }

    /// No pool: the shards run on the calling thread.
    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }
}

/// What one batch gave.
pub struct BatchGradients {
    /// Sum over the batch of the per-image cross-entropy.
    pub loss_sum: f64,
    /// Images classified right (before the step).
    pub correct: usize,
    /// The gradient of the batch's mean loss.
    pub grads: GradientsParams,
}

/// One shard's part.
struct ShardOut {
    loss_sum: f64,
    correct: usize,
    grads: GradientsParams,
}

/// Gives every trainable parameter a fresh autodiff leaf (same values, same `ParamId`): burn
/// keeps graphs that share a node under one mutex, so shards whose graphs all start from the
/// model's own leaves would run their passes one at a time.
struct FreshLeaves;

impl ModuleMapper for FreshLeaves {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            if t.is_require_grad() {
                t.detach().require_grad()
            } else {
                t
            }
        })
    }
}

/// The forward and backward pass of the images `idx` of a batch of `batch`; a shard of a
/// larger batch gets its own autodiff leaves and weighs its mean loss by `idx / batch`.
fn shard_pass(
    net: &Net,
    source: &LabeledImages,
    idx: &[usize],
    batch: usize,
    loss_fn: &CrossEntropyLoss,
    device: &Device,
) -> ShardOut {
    let whole = idx.len() == batch;
    let own = (!whole).then(|| net.clone().map(&mut FreshLeaves));
    let net = own.as_ref().unwrap_or(net);
    let (x, y) = source.batch(idx, device);
    let logits = net.forward(x);
    let correct = count_correct(logits.clone().detach(), y.clone());
    let loss = loss_fn.forward(logits, y);
    let mean = f64::from(loss.clone().into_scalar::<f32>());
    let loss = if whole {
        loss
    } else {
        loss.mul_scalar(idx.len() as f64 / batch as f64)
    };
    ShardOut {
        loss_sum: mean * idx.len() as f64,
        correct,
        grads: GradientsParams::from_grads(loss.backward(), net),
    }
}

/// The gradient of the mean loss over `idx` (a batch of `source`), by the shards of
/// [`shard_count`] (`rows` images each) run on `workers`.
pub fn batch_gradients(
    net: &Net,
    source: &LabeledImages,
    idx: &[usize],
    rows: usize,
    loss_fn: &CrossEntropyLoss,
    device: &Device,
    workers: &ShardWorkers,
) -> BatchGradients {
    let shards = shard_count(net, idx.len(), rows);
    let size = idx.len().div_ceil(shards);
    let parts: Vec<&[usize]> = idx.chunks(size).collect();
    let run = |k: usize| shard_pass(net, source, parts[k], idx.len(), loss_fn, device);
    let mut outs: Vec<Option<ShardOut>> = (0..parts.len()).map(|_| None).collect();
    let (n, w) = (parts.len(), workers.len().min(parts.len()));
    if w <= 1 {
        // one worker: the shards in turn, on the calling thread's pool
        for (k, out) in outs.iter_mut().enumerate() {
            *out = Some(run(k));
        }
    } else {
        let done: Vec<Vec<(usize, ShardOut)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (1..w)
                .map(|t| {
                    let pool = &workers.pools[t];
                    let run = &run;
                    s.spawn(move || pool.install(|| (t..n).step_by(w).map(|k| (k, run(k))).collect()))
                })
                .collect();
            let mine: Vec<(usize, ShardOut)> =
                workers.pools[0].install(|| (0..n).step_by(w).map(|k| (k, run(k))).collect());
            let mut all = vec![mine];
            all.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a shard worker panicked")),
            );
            all
        });
        for (k, out) in done.into_iter().flatten() {
            outs[k] = Some(out);
        }
    }
    let outs: Vec<ShardOut> = outs.into_iter().map(|o| o.expect("every shard ran")).collect();
    let loss_sum = outs.iter().map(|o| o.loss_sum).sum();
    let correct = outs.iter().map(|o| o.correct).sum();
    let mut grads: Vec<GradientsParams> = outs.into_iter().map(|o| o.grads).collect();
    let first = grads.remove(0);
    let grads = if grads.is_empty() {
        first
    } else {
        let mut sum = SumInOrder {
            first,
            rest: grads,
            out: GradientsParams::new(),
        };
        net.visit(&mut sum);
        sum.out
    };
    BatchGradients {
        loss_sum,
        correct,
        grads,
    }
}

/// Sums every parameter's gradient over the shards, in shard order.
struct SumInOrder {
    first: GradientsParams,
    rest: Vec<GradientsParams>,
    out: GradientsParams,
}

impl ModuleVisitor for SumInOrder {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let id: ParamId = param.id;
        let Some(mut g) = self.first.remove::<D>(id) else {
            return;
        };
        for r in &mut self.rest {
            if let Some(h) = r.remove::<D>(id) {
                g = g + h;
            }
        }
        self.out.register::<D>(id, g);
    }
}

//! Data-parallel shards (`TrainConfig::shard_rows`): the model depends on the shard size, never
//! on the thread count, and a sharded batch follows the same gradient as the whole batch.

use std::path::Path;

use burn::tensor::Device;
use tnml_data::{load, Dataset, Images, Split};
use tnml_nn::train::{train, LabeledImages, Silent, TrainConfig};
use tnml_nn::{Arch, Net, NetConfig, NormKind, WeightInit};

fn sample(n: usize) -> LabeledImages {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample");
    let set = load(Dataset::MnistSample, &dir, Split::Train).unwrap().take(n);
    LabeledImages {
        images: Images::from_set(&set),
        labels: set.labels,
    }
}

/// Every tensor of the model (BatchNorm's running averages included), in name order.
fn weights(net: &Net) -> Vec<f32> {
    tnml_nn::checkpoint::named_tensors(net)
        .into_values()
        .flat_map(|(_, v)| v)
        .collect()
}

/// One epoch of FC2 (its initialization is tnml's own seeded draw, not burn's global RNG),
/// batch 100, shards of `rows`, on `threads` threads: the initial and the trained weights.
fn trained(norm: NormKind, rows: usize, threads: usize) -> (Vec<f32>, Vec<f32>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let dev = Device::flex().autodiff();
        let cfg = NetConfig {
            arch: Arch::Fc2,
            mpo: None,
            norm,
            init: WeightInit::He,
            seed: 4,
            pairing: None,
        };
        let net = cfg.init(&dev).unwrap();
        let start = weights(&net);
        let tc = TrainConfig {
            shard_rows: rows,
            ..TrainConfig::adam(1, 100, 1e-3, 2)
        };
        let (net, _) = train(
            net,
            tc.build_optimizer(),
            &tc,
            &sample(500),
            None,
            1,
            &dev,
            &mut Silent,
        )
        .unwrap();
        (start, weights(&net))
    })
}

/// `sqrt(sum (a - b)^2)`; NaN if either holds one.
fn distance(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[test]
fn shards_give_the_same_model_on_any_thread_count() {
    // 4 shards of 25 (rows 30 cuts 100 into 4 equal shards), on 1, 2 and 3 workers
    let (start, one) = trained(NormKind::None, 30, 1);
    for threads in [2, 3] {
        let (_, other) = trained(NormKind::None, 30, threads);
        assert_eq!(distance(&one, &other), 0.0, "1 vs {threads} threads");
    }
    // the same descent as the batch in one pass, up to rounding: 5 Adam steps move the weights
    // by about 1, the two runs stay within 1e-4 of each other
    let (_, whole) = trained(NormKind::None, 0, 2);
    let (moved, apart) = (distance(&whole, &start), distance(&one, &whole));
    assert!(
        moved > 0.1 && apart < 1e-4 * moved,
        "moved {moved}, apart {apart}"
    );
}

#[test]
fn batch_norm_models_are_not_sharded() {
    // BatchNorm's statistics are the batch's: any shard size trains the one-pass model
    let (_, a) = trained(NormKind::Batch, 30, 2);
    let (_, b) = trained(NormKind::Batch, 0, 2);
    assert_eq!(distance(&a, &b), 0.0);
}

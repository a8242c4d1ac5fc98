//! The gradient trainer: exact gradients against finite differences, and a seeded run that learns.

use tnml_core::SiteTensor;
use tnml_mps::{
    embed_batch, loss_and_gradients, train_gradient, FeatureMap, GradientConfig, Loss, MpsClassifier, Silent,
};

mod common;

/// `model` with each site's data replaced by `f(site, data)`.
fn with_data(model: &MpsClassifier, f: impl Fn(usize, &[f64]) -> Vec<f64>) -> MpsClassifier {
    let sites = model
        .sites()
        .iter()
        .enumerate()
        .map(|(k, s)| SiteTensor::new(s.left(), s.phys(), s.right(), f(k, s.data())).unwrap())
        .collect();
    MpsClassifier::from_sites(
        sites,
        model.label_site(),
        model.num_labels(),
        model.feature_map(),
        model.image(),
    )
    .unwrap()
}

fn perturbed(model: &MpsClassifier, site: usize, index: usize, h: f64) -> MpsClassifier {
    with_data(model, |k, data| {
        let mut data = data.to_vec();
        if k == site {
            data[index] += h;
        }
        data
    })
}

#[test]
fn gradients_match_finite_differences() {
    for loss in [Loss::CrossEntropy, Loss::Squared] {
        let model = MpsClassifier::near_identity((2, 3), 3, FeatureMap::Linear, 3, 2, 0.3, 5).unwrap();
        let pixels: Vec<f32> = (0..8 * 6).map(|i| ((i * 37 % 17) as f32) / 16.0).collect();
        let labels: Vec<usize> = (0..8).map(|i| i % 3).collect();
        let feats = embed_batch(FeatureMap::Linear, &pixels, 6).unwrap();
        let (_, grads, _) = loss_and_gradients(&model, &feats, &labels, loss).unwrap();
        let h = 1e-3;
        let mut checked = 0;
        for (site, grad) in grads.iter().enumerate() {
            for index in (0..model.sites()[site].len()).step_by(5) {
                let (lp, _, _) =
                    loss_and_gradients(&perturbed(&model, site, index, h), &feats, &labels, loss).unwrap();
                let (lm, _, _) =
                    loss_and_gradients(&perturbed(&model, site, index, -h), &feats, &labels, loss).unwrap();
                let fd = (lp - lm) / (2.0 * h);
                let g = grad[index];
                assert!(
                    (fd - g).abs() <= 2e-3 * g.abs().max(1e-1),
                    "{loss:?} site {site} index {index}: fd {fd} vs {g}"
                );
                checked += 1;
            }
        }
        assert!(checked > 20);
    }
}

fn scaled_sites(model: &MpsClassifier, factor: impl Fn(usize) -> f64) -> MpsClassifier {
    with_data(model, |k, data| data.iter().map(|v| v * factor(k)).collect())
}

/// The batch is split over threads (contiguous slices, one workspace each): whatever the number
/// of threads, the gradient of a batch is the mean of its samples' gradients, i.e. the
/// size-weighted mean of the gradients of its two halves.
#[test]
fn batch_gradients_do_not_depend_on_how_the_batch_is_split() {
    let (x, y) = common::sample_14x14(tnml_data::Split::Train, 90);
    let map = FeatureMap::Linear;
    let model = MpsClassifier::near_identity((14, 14), 10, map, 5, 98, 0.2, 9).unwrap();
    let feats = embed_batch(map, &x, 196).unwrap();
    let (a, b): (Vec<usize>, Vec<usize>) = ((0..37).collect(), (37..90).collect());
    let (la, ga, wa) = loss_and_gradients(&model, &feats.select(&a), &y[..37], Loss::CrossEntropy).unwrap();
    let (lb, gb, wb) = loss_and_gradients(&model, &feats.select(&b), &y[37..], Loss::CrossEntropy).unwrap();
    for threads in [1, 3, 7] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let (l, g, w) = pool.install(|| loss_and_gradients(&model, &feats, &y, Loss::CrossEntropy).unwrap());
        assert_eq!(w, wa + wb, "{threads} threads");
        assert!(
            (l - (37.0 * la + 53.0 * lb) / 90.0).abs() < 1e-6 * l.abs(),
            "{threads} threads: loss {l}"
        );
        let mut worst = 0f64;
        for (k, gk) in g.iter().enumerate() {
            let scale = gk.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
            for (i, v) in gk.iter().enumerate() {
                let want = (37.0 * ga[k][i] + 53.0 * gb[k][i]) / 90.0;
                worst = worst.max((v - want).abs() / scale);
            }
        }
        assert!(
            worst < 1e-4,
            "{threads} threads: gradients differ by {worst:e} of their largest entry"
        );
    }
}

/// A 196-site chain whose left sites are scaled by 4 and right sites by 1/4 computes the same
/// outputs, while its partial contractions reach 4^96 (beyond f32): the per-sample rescaling
/// must give the same loss, and the gradients of the gauge (a scaled left site's gradient is
/// the plain one / 4, a scaled right site's times 4, the others unchanged).
#[test]
fn gradients_survive_partial_contractions_beyond_f32() {
    let (x, y) = common::sample_14x14(tnml_data::Split::Train, 40);
    let map = FeatureMap::Linear;
    let model = MpsClassifier::near_identity((14, 14), 10, map, 4, 98, 0.1, 2).unwrap();
    let feats = embed_batch(map, &x, 196).unwrap();
    // sites 1..=96 times 4, sites 100..=195 divided by 4: 96 each side
    let factor = |k: usize| match k {
        1..=96 => 4.0,
        100..=195 => 0.25,
        _ => 1.0,
    };
    let scaled = scaled_sites(&model, factor);
    let (l0, g0, w0) = loss_and_gradients(&model, &feats, &y, Loss::CrossEntropy).unwrap();
    let (l1, g1, w1) = loss_and_gradients(&scaled, &feats, &y, Loss::CrossEntropy).unwrap();
    assert_eq!(w0, w1);
    assert!((l0 - l1).abs() < 1e-5 * l0.abs(), "loss {l0} vs {l1}");
    for k in 0..196 {
        let scale = g0[k].iter().fold(1e-9f64, |m, v| m.max(v.abs()));
        for (a, b) in g0[k].iter().zip(&g1[k]) {
            let want = a / factor(k);
            assert!(
                (b - want).abs() <= 1e-3 * scale / factor(k),
                "site {k}: {b} vs {want}"
            );
        }
    }
}

#[test]
fn adam_on_minibatches_learns() {
    let (x, y) = common::sample_14x14(tnml_data::Split::Train, 1000);
    let (xt, yt) = common::sample_14x14(tnml_data::Split::Test, 500);
    let map = FeatureMap::Linear;
    let mut model = MpsClassifier::near_identity((14, 14), 10, map, 6, 98, 1e-2, 1).unwrap();
    let feats = embed_batch(map, &x, 196).unwrap();
    let test = embed_batch(map, &xt, 196).unwrap();
    let config = GradientConfig {
        epochs: 2,
        batch_size: 50,
        learning_rate: 1e-3,
        loss: Loss::CrossEntropy,
        seed: 3,
        schedule: tnml_mps::LrSchedule::Constant,
        shift: 0,
        device: tnml_mps::Device::Cpu,
        flip: false,
    };
    let summary = train_gradient(&mut model, &feats, &y, &config, &mut Silent).unwrap();
    let test_err = model.scores(&test).unwrap().error_rate(&yt);
    eprintln!("gradient training: {summary:?}, test error {test_err}");
    assert!(summary[1].loss < summary[0].loss);
    assert!(test_err < 0.5, "test error {test_err} (chance 0.9)");
}

/// The batch is cut into blocks by its size alone, and each site's gradient is summed over the
/// blocks in their order: a trained model is the same bit for bit on 1, 2, 3 or 8 threads
/// (batch 100: 8 blocks, so 3 threads share them unevenly and 8 take one each).
#[test]
fn training_does_not_depend_on_the_thread_count() {
    let (x, y) = common::sample_14x14(tnml_data::Split::Train, 300);
    let map = FeatureMap::Linear;
    let feats = embed_batch(map, &x, 196).unwrap();
    let config = GradientConfig {
        epochs: 1,
        batch_size: 100,
        seed: 5,
        ..GradientConfig::default()
    };
    let train = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut model = MpsClassifier::near_identity((14, 14), 10, map, 6, 98, 1e-2, 1).unwrap();
        let summary = pool.install(|| train_gradient(&mut model, &feats, &y, &config, &mut Silent).unwrap());
        let (loss, grads, wrong) =
            pool.install(|| loss_and_gradients(&model, &feats, &y, Loss::CrossEntropy).unwrap());
        (model, summary[0].loss, loss, grads, wrong)
    };
    let (m1, s1, l1, g1, w1) = train(1);
    for threads in [2, 3, 8] {
        let (m, s, l, g, w) = train(threads);
        assert_eq!(
            s.to_bits(),
            s1.to_bits(),
            "{threads} threads: epoch loss {s} vs {s1}"
        );
        assert_eq!(
            (l.to_bits(), w),
            (l1.to_bits(), w1),
            "{threads} threads: loss {l} vs {l1}"
        );
        assert_eq!(g, g1, "{threads} threads: gradients differ");
        for (k, (a, b)) in m.sites().iter().zip(m1.sites()).enumerate() {
            assert_eq!(a.data(), b.data(), "{threads} threads: site {k} differs");
        }
    }
}

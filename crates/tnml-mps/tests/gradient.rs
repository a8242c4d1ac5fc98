//! The gradient trainer: exact gradients against finite differences, and a seeded run that learns.

use tnml_core::SiteTensor;
use tnml_mps::{
    embed_batch, loss_and_gradients, train_gradient, FeatureMap, GradientConfig, Loss, MpsClassifier, Silent,
};

mod common;

fn perturbed(model: &MpsClassifier, site: usize, index: usize, h: f64) -> MpsClassifier {
    let mut sites = model.sites().to_vec();
    let s = &sites[site];
    let mut data = s.data().to_vec();
    data[index] += h;
    sites[site] = SiteTensor::new(s.left(), s.phys(), s.right(), data).unwrap();
    MpsClassifier::from_sites(
        sites,
        model.label_site(),
        model.num_labels(),
        model.feature_map(),
        model.image(),
    )
    .unwrap()
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
    };
    let summary = train_gradient(&mut model, &feats, &y, &config, &mut Silent).unwrap();
    let test_err = model.scores(&test).unwrap().error_rate(&yt);
    eprintln!("gradient training: {summary:?}, test error {test_err}");
    assert!(summary[1].loss < summary[0].loss);
    assert!(test_err < 0.5, "test error {test_err} (chance 0.9)");
}

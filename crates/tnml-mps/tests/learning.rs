//! Seeded training runs on the shipped MNIST sample that must learn, and the algebra checks.

mod common;

use common::sample_14x14;
use tnml_data::Split;
use tnml_mps::{
    embed_batch, train_sweeps, Decision, FeatureMap, Loss, MpsClassifier, Silent, SiteFeatures, SweepConfig,
};

/// 1,000 training and 500 test images of the sample, a bond-6 class-mean start.
struct Setup {
    model: MpsClassifier,
    feats: SiteFeatures,
    y: Vec<usize>,
    test: SiteFeatures,
    yt: Vec<usize>,
}

fn setup() -> Setup {
    let (x, y) = sample_14x14(Split::Train, 1000);
    let (xt, yt) = sample_14x14(Split::Test, 500);
    let map = FeatureMap::Trig;
    Setup {
        model: MpsClassifier::from_class_means(&x, &y, (14, 14), 10, map, 6)
            .unwrap()
            .0,
        feats: embed_batch(map, &x, 196).unwrap(),
        y,
        test: embed_batch(map, &xt, 196).unwrap(),
        yt,
    }
}

#[test]
fn one_sweep_learns_far_below_chance() {
    let Setup {
        mut model,
        feats,
        y,
        test,
        yt,
    } = setup();
    let before = model.scores(&test).unwrap().error_rate(&yt);
    let config = SweepConfig {
        sweeps: 1,
        schedule: SweepConfig::bond_schedule(&[6], 1e-10),
        cg_passes: 2,
        refit_passes: 0,
        turn_site: Some(98),
        ..SweepConfig::default()
    };
    let t0 = std::time::Instant::now();
    let summary = train_sweeps(&mut model, &feats, &y, &config, &mut Silent).unwrap();
    eprintln!(
        "sweep: {:.2} s, {:.2} GFLOP",
        t0.elapsed().as_secs_f64(),
        summary[0].flops / 1e9
    );
    let train_err = model.scores(&feats).unwrap().error_rate(&y);
    let test_err = model.scores(&test).unwrap().error_rate(&yt);
    eprintln!(
        "class-mean init test error {before:.3}; after one sweep train {train_err:.3}, test {test_err:.3}"
    );
    // the trainer's own bookkeeping agrees with a fresh full contraction
    assert!(
        (summary[0].train_error - train_err).abs() < 1e-9,
        "{} vs {train_err}",
        summary[0].train_error
    );
    assert!(train_err < 0.15, "train error {train_err}");
    assert!(test_err < 0.25, "test error {test_err} (chance is 0.9)");
    assert!(model.bond_dims().iter().all(|&b| b <= 6));
    assert_eq!(model.label_site(), 98);
    // every split of the sweep is recorded: 2 (N - 1) bond updates, the kept dimensions are the
    // model's bonds, and a cap of 6 on a bond-6 start drops some weight
    let s = &summary[0];
    assert_eq!(s.truncations.len(), 2 * 195);
    assert_eq!(s.trunc.max_bond, 6);
    assert!(s
        .truncations
        .iter()
        .all(|t| t.kept <= 6 && (0.0..1.0).contains(&t.discarded_weight)));
    assert!(
        s.discarded_weight() > 0.0,
        "a bond-6 cap on 10 classes drops weight"
    );
}

#[test]
fn a_cross_entropy_sweep_learns_and_predicts_by_signed_argmax() {
    let Setup {
        mut model,
        feats,
        y,
        test,
        yt,
    } = setup();
    let config = SweepConfig {
        sweeps: 1,
        schedule: SweepConfig::bond_schedule(&[6], 1e-10),
        cg_passes: 2,
        refit_passes: 1,
        lambda: 0.3,
        loss: Loss::CrossEntropy,
        turn_site: Some(98),
    };
    let summary = train_sweeps(&mut model, &feats, &y, &config, &mut Silent).unwrap();
    assert_eq!(model.decision(), Decision::Signed);
    let scores = model.scores(&feats).unwrap();
    let train_err = scores.error_rate(&y);
    // the trainer's bookkeeping (signed argmax of its logits) agrees with a fresh contraction
    assert!(
        (summary[0].train_error - train_err).abs() < 1e-9,
        "{} vs {train_err}",
        summary[0].train_error
    );
    // the reported cost is the mean cross-entropy of the logits f (up to the per-sample scale
    // of the normalized environments, which the trainer fits): below the uniform ln 10
    assert!(
        summary[0].cost < 10f64.ln() && summary[0].cost > 0.0,
        "{}",
        summary[0].cost
    );
    let test_err = model.scores(&test).unwrap().error_rate(&yt);
    assert!(train_err < 0.1, "train error {train_err}");
    assert!(test_err < 0.25, "test error {test_err} (chance is 0.9)");
}

/// Stops after a fixed number of bond updates (as a Ctrl-C does through the Python package).
struct StopAfter {
    bonds: usize,
    seen: usize,
    sweeps: usize,
}

impl tnml_mps::SweepObserver for StopAfter {
    fn on_bond(&mut self, _: &tnml_mps::BondStep) -> std::ops::ControlFlow<()> {
        self.seen += 1;
        if self.seen >= self.bonds {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    }

    fn on_sweep(&mut self, _: &tnml_mps::SweepSummary, _: &MpsClassifier) -> std::ops::ControlFlow<()> {
        self.sweeps += 1;
        std::ops::ControlFlow::Continue(())
    }
}

#[test]
fn an_observer_stops_the_sweep_between_bond_updates_with_a_whole_model() {
    let Setup {
        mut model,
        feats,
        y,
        test,
        yt,
    } = setup();
    let start_error = model.scores(&test).unwrap().error_rate(&yt);
    let config = SweepConfig {
        sweeps: 3,
        turn_site: Some(98),
        ..SweepConfig::default()
    };
    let mut stop = StopAfter {
        bonds: 40,
        seen: 0,
        sweeps: 0,
    };
    let summaries = train_sweeps(&mut model, &feats, &y, &config, &mut stop).unwrap();
    // stopped inside the first sweep: no sweep summarized, no bond update after the 40th
    assert_eq!((summaries.len(), stop.sweeps, stop.seen), (0, 0, 40));
    // the label moved right with the 40 updates from the turn site: the model is whole and
    // scores every image, better than the class-mean start already
    assert_eq!(model.label_site(), 98 + 40);
    let err = model.scores(&test).unwrap().error_rate(&yt);
    assert!(
        err.is_finite() && err < start_error,
        "{err} vs start {start_error}"
    );
}

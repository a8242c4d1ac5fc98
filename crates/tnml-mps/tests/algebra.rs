//! The algebra of the classifier: projected contraction equals full contraction, canonical
//! moves leave predictions unchanged, save/load round-trips bit-exactly, bad input is refused.
#![allow(clippy::needless_range_loop)] // the brute-force reference spells out every index

use tnml_core::SiteTensor;
use tnml_mps::{embed_batch, Decision, FeatureMap, MpsClassifier, MpsError, SiteFeatures};

fn lcg(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
}

/// A random classifier on a `h x w` image with bond `bond`, label on `label_site`.
fn random_model(
    h: usize,
    w: usize,
    bond: usize,
    labels: usize,
    label_site: usize,
    map: FeatureMap,
    seed: u64,
) -> MpsClassifier {
    let n = h * w;
    let d = map.dim();
    let mut st = seed;
    let sites = (0..n)
        .map(|k| {
            let l = if k == 0 { 1 } else { bond };
            let r = if k == n - 1 { 1 } else { bond };
            let p = if k == label_site { d * labels } else { d };
            // near-identity plus noise keeps the products O(1)
            let data = (0..l * p * r)
                .map(|i| {
                    let (a, rest) = (i / (p * r), i % (p * r));
                    let c = rest % r;
                    (if a == c { 0.8 } else { 0.0 }) + 0.3 * lcg(&mut st)
                })
                .collect();
            SiteTensor::new(l, p, r, data).unwrap()
        })
        .collect();
    MpsClassifier::from_sites(sites, label_site, labels, map, (h, w)).unwrap()
}

fn random_pixels(samples: usize, sites: usize, seed: u64) -> Vec<f32> {
    let mut st = seed;
    (0..samples * sites)
        .map(|_| (lcg(&mut st) + 0.5) as f32)
        .collect()
}

/// Dense reference: `f^l(x) = sum over all sites` by explicit per-sample contraction in f64.
fn brute_force(model: &MpsClassifier, feats: &SiteFeatures) -> Vec<f64> {
    let big_l = model.num_labels();
    let d = feats.dim;
    let mut out = Vec::new();
    for n in 0..feats.samples {
        // v[l][bond]: a vector per label (label dimension appears at the label site)
        let mut v: Vec<Vec<f64>> = vec![vec![1.0]];
        for (k, s) in model.sites().iter().enumerate() {
            let phi: Vec<f64> = (0..d).map(|t| f64::from(feats.sites[k][n * d + t])).collect();
            let labelled = k == model.label_site();
            let mut next = Vec::new();
            for vl in &v {
                let outs = if labelled { big_l } else { 1 };
                for l in 0..outs {
                    let mut w = vec![0.0; s.right()];
                    for a in 0..s.left() {
                        for t in 0..d {
                            let p = if labelled { t * big_l + l } else { t };
                            for (b, wb) in w.iter_mut().enumerate() {
                                *wb += vl[a] * phi[t] * s.get(a, p, b);
                            }
                        }
                    }
                    next.push(w);
                }
            }
            v = next;
        }
        out.extend(v.iter().map(|x| x[0]));
    }
    out
}

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    let scale = b.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-300);
    a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * scale)
}

#[test]
fn batched_scores_equal_brute_force_contraction() {
    for (map, label_site) in [
        (FeatureMap::Trig, 0),
        (FeatureMap::Linear, 5),
        (FeatureMap::TrigD(3), 11),
    ] {
        let model = random_model(3, 4, 3, 4, label_site, map, 7);
        let feats = embed_batch(map, &random_pixels(9, 12, 3), 12).unwrap();
        let exact = model.scores(&feats).unwrap().exact();
        let reference = brute_force(&model, &feats);
        assert!(
            close(&exact, &reference, 1e-5),
            "{map:?}: {exact:?} vs {reference:?}"
        );
    }
}

#[test]
fn projected_contraction_equals_full_contraction() {
    let model = random_model(3, 4, 4, 3, 2, FeatureMap::Trig, 11);
    let feats = embed_batch(FeatureMap::Trig, &random_pixels(20, 12, 5), 12).unwrap();
    let full = model.scores(&feats).unwrap().exact();
    for bond in [1, 5, 11] {
        let proj = model.project(bond).unwrap();
        let phi = proj.reduced_features(&feats).unwrap();
        let f = proj.scores(&phi);
        assert!(close(&f, &full, 1e-5), "bond {bond}");
        // the isometries project: ||Phi~|| <= ||Phi|| = 1 for the unit-norm trig map
        for row in phi.values.chunks_exact(phi.dim) {
            let n2: f64 = row.iter().map(|x| x * x).sum();
            assert!(n2 <= 1.0 + 1e-5, "bond {bond}: ||Phi~||^2 = {n2}");
        }
        // putting the core back gives the same model function
        let back = proj.into_model().unwrap();
        assert!(close(&back.scores(&feats).unwrap().exact(), &full, 1e-5));
    }
    assert!(model.project(0).is_err() && model.project(12).is_err());
}

#[test]
fn refit_never_increases_the_cost_and_predictions_are_gauge_invariant() {
    let model = random_model(3, 4, 4, 3, 6, FeatureMap::Trig, 13);
    let feats = embed_batch(FeatureMap::Trig, &random_pixels(60, 12, 9), 12).unwrap();
    let labels: Vec<usize> = (0..60).map(|i| i % 3).collect();
    let before = model.scores(&feats).unwrap().predictions();
    let mut proj = model.project(6).unwrap();
    let phi = proj.reduced_features(&feats).unwrap();
    // the refit's objective is on unit-length reduced features
    let f0 = proj.scores(&phi.normalized());
    let cost0: f64 = f0
        .chunks_exact(3)
        .zip(&labels)
        .map(|(r, &l)| {
            r.iter()
                .enumerate()
                .map(|(i, v)| (v - f64::from(u8::from(i == l))).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / 120.0;
    let cost1 = proj.refit(&phi, &labels, 1e-9).unwrap();
    assert!(cost1 <= cost0 + 1e-12, "{cost1} > {cost0}");
    // the canonical form itself leaves predictions unchanged
    let moved = model.project(3).unwrap().into_model().unwrap();
    assert_eq!(moved.scores(&feats).unwrap().predictions(), before);
    assert!(matches!(
        proj.refit(&phi, &labels[..10], 0.0),
        Err(MpsError::CountMismatch {
            what: "labels",
            got: 10,
            ..
        })
    ));
}

#[test]
fn softmax_refit_fits_logits_and_the_model_predicts_by_signed_argmax() {
    let model = random_model(3, 4, 4, 3, 6, FeatureMap::Trig, 13);
    let feats = embed_batch(FeatureMap::Trig, &random_pixels(90, 12, 9), 12).unwrap();
    // labels a function of the pixels the reduced features can see: the brightest of 3 pixels
    let px = random_pixels(90, 12, 9);
    let labels: Vec<usize> = (0..90)
        .map(|i| {
            (0..3)
                .max_by(|&a, &b| px[i * 12 + a * 4].total_cmp(&px[i * 12 + b * 4]))
                .unwrap()
        })
        .collect();
    let mut proj = model.project(6).unwrap();
    let phi = proj.reduced_features(&feats).unwrap();
    let mut ridge = proj.clone();
    ridge.refit(&phi, &labels, 1e-6).unwrap();
    assert_eq!(ridge.decision, Decision::Magnitude);
    let start = (3f64).ln();
    let fit = proj.refit_softmax(&phi, &labels, 1e-3, 1000).unwrap();
    assert_eq!(proj.decision, Decision::Signed);
    assert!(fit.loss < start && fit.grad_norm < 1e-5, "{fit:?}");
    assert!(
        proj.error_rate(&phi, &labels) <= ridge.error_rate(&phi, &labels),
        "softmax {} vs ridge {}",
        proj.error_rate(&phi, &labels),
        ridge.error_rate(&phi, &labels)
    );
    // the refitted classifier predicts as the projection does, by argmax f, and keeps the rule
    // through a save/load round trip
    let refitted = proj.clone().into_model().unwrap();
    assert_eq!(refitted.decision(), Decision::Signed);
    assert_eq!(
        refitted.scores(&feats).unwrap().predictions(),
        proj.predictions(&phi)
    );
    let back = MpsClassifier::from_safetensors(&refitted.to_safetensors().unwrap(), "m").unwrap();
    assert_eq!(back, refitted);
    assert!(proj.refit_softmax(&phi, &labels, -1.0, 10).is_err());
}

#[test]
fn decision_rules_differ_only_on_negative_scores() {
    assert_eq!(Decision::Magnitude.pick(&[0.2f32, -0.9, 0.5]), 1);
    assert_eq!(Decision::Signed.pick(&[0.2f32, -0.9, 0.5]), 2);
    assert_eq!(Decision::Magnitude.pick(&[0.2f64, 0.1, 0.5]), 2);
    assert_eq!(Decision::Signed.pick(&[0.2f64, 0.1, 0.5]), 2);
}

#[test]
fn save_and_load_round_trip_bit_exactly() {
    let model = random_model(2, 3, 3, 5, 4, FeatureMap::TrigD(3), 17);
    let bytes = model.to_safetensors().unwrap();
    let back = MpsClassifier::from_safetensors(&bytes, "m.safetensors").unwrap();
    assert_eq!(back, model);
    // corrupt and foreign files are refused with a reason
    let err = MpsClassifier::from_safetensors(&bytes[..bytes.len() - 9], "m.safetensors").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("m.safetensors: not a valid safetensors file"),
        "{err}"
    );
    let other = tnml_core::SiteTensor::new(1, 2, 1, vec![1.0, 2.0]).unwrap();
    let foreign = safetensors::serialize(
        [(
            "w",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![2], &[0u8; 16]).unwrap(),
        )],
        None,
    )
    .unwrap();
    let err = MpsClassifier::from_safetensors(&foreign, "w.safetensors").unwrap_err();
    assert!(err.to_string().contains("metadata has no \"format\""), "{err}");
    drop(other);
    // sizes in the metadata are checked against the file before anything is allocated
    // (100000000 x 100000000 pixels aborted on a huge allocation before)
    let (head_len, rest) = bytes.split_at(8);
    let n = u64::from_le_bytes(head_len.try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&rest[..n]).unwrap();
    for (from, to) in [
        ("\"image_height\":\"2\"", "\"image_height\":\"100000000\""),
        (
            "\"image_width\":\"3\"",
            "\"image_width\":\"18446744073709551615\"",
        ),
    ] {
        assert!(header.contains(from), "{header}");
        let forged = header.replace(from, to);
        let mut file = (forged.len() as u64).to_le_bytes().to_vec();
        file.extend(forged.as_bytes());
        file.extend(&rest[n..]);
        let err = MpsClassifier::from_safetensors(&file, "forged.safetensors")
            .unwrap_err()
            .to_string();
        assert!(err.contains("the file holds 6 site tensors"), "{err}");
    }
}

#[test]
fn bad_input_is_refused() {
    let model = random_model(2, 2, 2, 3, 0, FeatureMap::Trig, 1);
    // features of another image size
    let feats = embed_batch(FeatureMap::Trig, &random_pixels(3, 9, 1), 9).unwrap();
    let err = model.scores(&feats).unwrap_err();
    assert!(err.to_string().contains("the model has 4 sites"), "{err}");
    // labels out of range, bond 0
    let x = random_pixels(4, 4, 2);
    let err = MpsClassifier::from_class_means(&x, &[0, 1, 2, 7], (2, 2), 3, FeatureMap::Trig, 4).unwrap_err();
    assert_eq!(err.to_string(), "label 7 of sample 3 is outside 0..3");
    let err = MpsClassifier::from_class_means(&x, &[0, 1, 2, 1], (2, 2), 3, FeatureMap::Trig, 0).unwrap_err();
    assert!(err.to_string().contains("bond dimension 0"), "{err}");
    let mut bad = x.clone();
    bad[5] = 1.5;
    assert!(matches!(
        MpsClassifier::from_class_means(&bad, &[0, 1, 2, 1], (2, 2), 3, FeatureMap::Trig, 4),
        Err(MpsError::PixelOutOfRange {
            sample: 1,
            pixel: 1,
            ..
        })
    ));
}

/// The error messages users see name the numbers; pinned here.
#[test]
fn errors_carry_the_numbers() {
    use tnml_mps::{GradientConfig, Loss, SweepConfig};
    let err = embed_batch(FeatureMap::Trig, &[0.5; 7], 3).unwrap_err();
    assert_eq!(
        err.to_string(),
        "7 pixel values do not split into samples of 3 pixels"
    );
    let err = FeatureMap::TrigD(40).validate().unwrap_err();
    assert_eq!(err.to_string(), "feature dimension is 40: it must lie in 2..=16");
    let bad = SweepConfig {
        schedule: SweepConfig::bond_schedule(&[4, 0], 0.0),
        ..SweepConfig::default()
    };
    assert_eq!(
        bad.validate().unwrap_err().to_string(),
        "bond dimension 0 in the schedule (entry 1): it must be at least 1"
    );
    let bad = SweepConfig {
        lambda: -1.0,
        ..SweepConfig::default()
    };
    assert_eq!(
        bad.validate().unwrap_err().to_string(),
        "lambda is -1: it must be finite and >= 0"
    );
    let bad = SweepConfig {
        sweeps: 0,
        ..SweepConfig::default()
    };
    assert_eq!(
        bad.validate().unwrap_err().to_string(),
        "sweeps is 0: at least one sweep is needed"
    );
    let bad = GradientConfig {
        epochs: 1,
        batch_size: 0,
        learning_rate: 1e-3,
        loss: Loss::Squared,
        seed: 0,
        schedule: tnml_mps::LrSchedule::Constant,
        shift: 0,
        device: tnml_mps::Device::Cpu,
        flip: false,
    };
    assert_eq!(
        bad.validate().unwrap_err().to_string(),
        "batch_size is 0: it must be at least 1"
    );
    let x = random_pixels(4, 4, 2);
    let err = MpsClassifier::from_class_means(&x, &[0, 1, 2], (2, 2), 3, FeatureMap::Trig, 4).unwrap_err();
    assert_eq!(err.to_string(), "3 labels for 4 images");
    let err = MpsClassifier::from_class_means(&x, &[0, 1, 1, 1], (2, 2), 3, FeatureMap::Trig, 4).unwrap_err();
    assert_eq!(err.to_string(), "label 2 has no training samples");
    let (model, report) =
        MpsClassifier::from_class_means(&x, &[0, 1, 2, 1], (2, 2), 3, FeatureMap::Trig, 1).unwrap();
    assert_eq!(
        report.bonds.len(),
        3,
        "the start's compression is reported bond by bond"
    );
    assert!(report.total_discarded_weight() > 0.0);
    let err = model.project(4).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bond (number of sites to its left) 4 is outside 1..4"
    );
}

//! The entanglement observer: equal to a brute-force SVD of the reshaped weight at every bond,
//! invariant under scale and gauge, never above its bound; the random baseline and truncation curve.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use tnml_core::faer::Mat;
use tnml_nn::entangle::{mpo_records, random_baseline, truncation_curve};
use tnml_nn::mpo_linear::MpoLinearConfig;
use tnml_nn::{MpoSpec, WeightInit};

/// Entropy of bond `b` by a dense SVD of W regrouped as (i1 j1 .. ib jb) x (rest).
fn brute_force_entropy(w: &Mat<f64>, ins: &[usize], outs: &[usize], b: usize) -> f64 {
    let d = ins.len();
    let left: usize = (0..b).map(|k| ins[k] * outs[k]).product();
    let right: usize = (b..d).map(|k| ins[k] * outs[k]).product();
    let mut m = Mat::<f64>::zeros(left, right);
    let n_out: usize = outs.iter().product();
    let n_in: usize = ins.iter().product();
    for row in 0..n_out {
        for col in 0..n_in {
            // digits of row (outputs) and col (inputs), row-major
            let (mut r, mut c) = (row, col);
            let mut jd = vec![0; d];
            let mut id = vec![0; d];
            for k in (0..d).rev() {
                jd[k] = r % outs[k];
                r /= outs[k];
                id[k] = c % ins[k];
                c /= ins[k];
            }
            let (mut li, mut ri) = (0, 0);
            for k in 0..b {
                li = li * ins[k] * outs[k] + id[k] * outs[k] + jd[k];
            }
            for k in b..d {
                ri = ri * ins[k] * outs[k] + id[k] * outs[k] + jd[k];
            }
            m[(li, ri)] = w[(row, col)];
        }
    }
    let s = m.singular_values().unwrap();
    let total: f64 = s.iter().map(|v| v * v).sum();
    s.iter()
        .map(|v| v * v / total)
        .filter(|p| *p > 0.0)
        .map(|p| -p * p.ln())
        .sum()
}

#[test]
fn observer_matches_dense_svd_and_is_invariant() {
    let dev = Device::flex();
    let (ins, outs) = ([2, 3, 2, 2], [3, 2, 2, 2]);
    let spec = MpoSpec::uniform(&ins, &outs, 3).unwrap();
    let layer = MpoLinearConfig {
        spec: spec.clone(),
        init: WeightInit::Glorot,
        bias: false,
        seed: 4,
    }
    .init(&dev);
    let mpo = layer.to_mpo().unwrap();
    let w = mpo.to_dense().unwrap();
    let recs = mpo_records(&mpo, "l", 0).unwrap();
    assert_eq!(recs.len(), 3);
    for r in &recs {
        let want = brute_force_entropy(&w, &ins, &outs, r.bond);
        assert!(
            (r.entropy - want).abs() < 1e-8,
            "bond {}: {} vs {want}",
            r.bond,
            r.entropy
        );
        assert!(r.entropy <= r.bound + 1e-12 && (0.0..=1.0 + 1e-12).contains(&r.ratio));
        assert!((r.spectrum.iter().map(|s| s * s).sum::<f64>() - 1.0).abs() < 1e-10);
        assert!(r.discarded.last().unwrap().abs() < 1e-12);
    }
    // scale one core and apply a gauge transform between cores 1 and 2: same entropies
    let c0 = layer.cores[0].val() * 7.0;
    let c1: Tensor<4> = layer.cores[1].val();
    let c2: Tensor<4> = layer.cores[2].val();
    let [a, i1, o1, r1] = c1.dims();
    let g = Tensor::<2>::from_data(
        TensorData::new(vec![2.0f32, 1.0, 0.0, 0.0, 1.0, 0.5, 1.0, 0.0, 1.0], [3, 3]),
        &dev,
    );
    let ginv = Tensor::<2>::from_data(
        TensorData::new(
            vec![0.4f32, -0.4, 0.2, 0.2, 0.8, -0.4, -0.4, 0.4, 0.8], // g^-1
            [3, 3],
        ),
        &dev,
    );
    let c1g = c1.reshape([a * i1 * o1, r1]).matmul(g).reshape([a, i1, o1, r1]);
    let [r1b, i2, o2, r2] = c2.dims();
    let c2g = ginv
        .matmul(c2.reshape([r1b, i2 * o2 * r2]))
        .reshape([r1b, i2, o2, r2]);
    let mut moved = layer.clone();
    moved.cores[0] = Param::from_tensor(c0);
    moved.cores[1] = Param::from_tensor(c1g);
    moved.cores[2] = Param::from_tensor(c2g);
    let recs2 = mpo_records(&moved.to_mpo().unwrap(), "l", 0).unwrap();
    for (r, q) in recs.iter().zip(&recs2) {
        assert!(
            (r.entropy - q.entropy).abs() < 1e-4,
            "bond {}: {} vs {}",
            r.bond,
            r.entropy,
            q.entropy
        );
    }
}

#[test]
fn baseline_and_truncation_curve() {
    let spec = MpoSpec::uniform(&[4, 4, 4], &[4, 4, 4], 6).unwrap();
    let b = random_baseline("l", &spec, WeightInit::He, 4).unwrap();
    assert_eq!(b.mean.len(), 2);
    for (m, bound) in b.mean.iter().zip(&b.bound) {
        // a random bond-6 MPO is highly (not maximally) entangled
        assert!(*m > 0.5 * bound && *m <= *bound + 1e-12, "{m} vs {bound}");
    }
    let layer = MpoLinearConfig {
        spec: spec.clone(),
        init: WeightInit::He,
        bias: false,
        seed: 0,
    }
    .init(&Device::flex());
    let mpo = layer.to_mpo().unwrap();
    let curve = truncation_curve(&mpo, "l", &[1, 2, 4, 6]).unwrap();
    assert!(curve.windows(2).all(|w| w[1].rel_error <= w[0].rel_error + 1e-12));
    assert!(curve[3].rel_error < 1e-6 && curve[0].rel_error > 0.1);
    assert!(curve.windows(2).all(|w| w[1].params >= w[0].params));
    // the truncation's own report agrees with the measured error
    for p in &curve {
        assert!(
            (p.discarded_weight - p.rel_error * p.rel_error).abs() < 1e-9,
            "{p:?}"
        );
    }
}

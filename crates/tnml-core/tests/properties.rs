//! Property tests of the decompositions: reconstruction, orthogonality, discarded weight,
//! gauge and scale invariance of the entanglement, and agreement with brute-force dense SVDs.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tnml_core::faer::{Mat, MatRef};
use tnml_core::{Mpo, Mps, SiteTensor, TruncParams};

fn random_vec(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn random_mps(dims: &[usize], bond: usize, seed: u64) -> Mps {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = dims.len();
    let sites = (0..n)
        .map(|k| {
            let l = if k == 0 { 1 } else { bond };
            let r = if k == n - 1 { 1 } else { bond };
            let data = (0..l * dims[k] * r)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            SiteTensor::new(l, dims[k], r, data).unwrap()
        })
        .collect();
    Mps::from_sites(sites).unwrap()
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let n: f64 = a.iter().map(|x| x * x).sum();
    (d / n).sqrt()
}

/// Schmidt values of a dense vector cut after `left` entries of the row-major index, normalized.
fn dense_schmidt(v: &[f64], left: usize) -> Vec<f64> {
    let m = MatRef::from_row_major_slice(v, left, v.len() / left);
    let s = m.singular_values().unwrap();
    let n = s.iter().map(|x| x * x).sum::<f64>().sqrt();
    s.iter().map(|x| x / n).collect()
}

fn entropy(s: &[f64]) -> f64 {
    s.iter()
        .map(|x| x * x)
        .filter(|&p| p > 0.0)
        .map(|p| -p * p.ln())
        .sum()
}

fn is_left_isometry(s: &SiteTensor) -> bool {
    let a = MatRef::from_row_major_slice(s.data(), s.left() * s.phys(), s.right());
    (a.transpose() * a - Mat::<f64>::identity(s.right(), s.right())).norm_max() < 1e-12
}

fn is_right_isometry(s: &SiteTensor) -> bool {
    let a = MatRef::from_row_major_slice(s.data(), s.left(), s.phys() * s.right());
    (a * a.transpose() - Mat::<f64>::identity(s.left(), s.left())).norm_max() < 1e-12
}

fn dims_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, 2..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn full_rank_tt_svd_reconstructs(dims in dims_strategy(), seed in any::<u64>()) {
        let len: usize = dims.iter().product();
        let v = random_vec(len, seed);
        let (mps, report) = Mps::from_dense(&v, &dims, &TruncParams::exact()).unwrap();
        prop_assert!(rel_err(&v, &mps.to_dense().unwrap()) < 1e-12);
        prop_assert!(report.total_discarded_weight() < 1e-24);
        // left-canonical up to the last site, which carries the norm
        for s in &mps.sites()[..mps.len() - 1] {
            prop_assert!(is_left_isometry(s));
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        prop_assert!((mps.norm() - norm).abs() < 1e-12 * norm);
    }

    #[test]
    fn full_rank_mpo_reconstructs(
        modes in prop::collection::vec((1usize..4, 1usize..4), 1..4),
        seed in any::<u64>(),
    ) {
        let (ins, outs): (Vec<usize>, Vec<usize>) = modes.into_iter().unzip();
        let (rows, cols) = (outs.iter().product::<usize>(), ins.iter().product::<usize>());
        let data = random_vec(rows * cols, seed);
        let w = Mat::from_fn(rows, cols, |i, j| data[i * cols + j]);
        let (mpo, _) = Mpo::from_dense(w.as_ref(), &ins, &outs, &TruncParams::exact()).unwrap();
        let back = mpo.to_dense().unwrap();
        prop_assert!((&back - &w).norm_l2() < 1e-12 * w.norm_l2());
        prop_assert!(mpo.bond_dims().iter().zip(mpo.rank_caps()).all(|(b, c)| *b <= c));
    }

    #[test]
    fn one_bond_discarded_weight_is_the_true_error(
        rows in 2usize..9, cols in 2usize..9, keep in 1usize..8, seed in any::<u64>(),
    ) {
        let v = random_vec(rows * cols, seed);
        let (mps, report) = Mps::from_dense(&v, &[rows, cols], &TruncParams::max_bond(keep)).unwrap();
        let approx = mps.to_dense().unwrap();
        let err2: f64 = v.iter().zip(&approx).map(|(x, y)| (x - y).powi(2)).sum();
        let norm2: f64 = v.iter().map(|x| x * x).sum();
        prop_assert_eq!(report.bonds.len(), 1);
        prop_assert!((report.bonds[0].discarded_weight - err2 / norm2).abs() < 1e-12);
        prop_assert!((report.total_discarded_weight() - err2 / norm2).abs() < 1e-12);
        prop_assert_eq!(report.bonds[0].kept, keep.min(rows).min(cols));
    }

    #[test]
    fn tt_svd_total_discarded_weight_is_the_true_error(dims in dims_strategy(), keep in 1usize..4, seed in any::<u64>()) {
        let len: usize = dims.iter().product();
        let v = random_vec(len, seed);
        let (mps, report) = Mps::from_dense(&v, &dims, &TruncParams::max_bond(keep)).unwrap();
        let e = rel_err(&v, &mps.to_dense().unwrap()).powi(2);
        prop_assert!((report.total_discarded_weight() - e).abs() < 1e-11);
        prop_assert!(mps.max_bond_dim() <= keep);
    }

    #[test]
    fn canonical_forms_are_isometries_and_keep_the_state(
        dims in dims_strategy(), bond in 1usize..5, seed in any::<u64>(), center_pick in any::<usize>(),
    ) {
        let mut mps = random_mps(&dims, bond, seed);
        let before = mps.to_dense().unwrap();
        let center = center_pick % dims.len();
        mps.canonicalize(center).unwrap();
        prop_assert_eq!(mps.ortho_center(), Some(center));
        prop_assert!(rel_err(&before, &mps.to_dense().unwrap()) < 1e-12);
        for (k, s) in mps.sites().iter().enumerate() {
            if k < center { prop_assert!(is_left_isometry(s), "site {} not left-canonical", k); }
            if k > center { prop_assert!(is_right_isometry(s), "site {} not right-canonical", k); }
        }
    }

    #[test]
    fn profile_matches_dense_svd_and_respects_the_bound(dims in dims_strategy(), bond in 1usize..5, seed in any::<u64>()) {
        let mps = random_mps(&dims, bond, seed);
        let dense = mps.to_dense().unwrap();
        let profile = mps.entanglement_profile().unwrap();
        prop_assert_eq!(profile.bonds.len(), dims.len() - 1);
        for b in &profile.bonds {
            let left: usize = dims[..b.bond].iter().product();
            let s = dense_schmidt(&dense, left);
            prop_assert!((b.entropy - entropy(&s)).abs() < 1e-10, "bond {}: {} vs {}", b.bond, b.entropy, entropy(&s));
            prop_assert!((b.entropy - mps.entanglement_entropy(b.bond).unwrap()).abs() < 1e-10);
            for (x, y) in b.spectrum.iter().zip(&s) {
                prop_assert!((x - y).abs() < 1e-10);
            }
            prop_assert!(b.entropy <= b.bound + 1e-12);
            prop_assert!(b.renyi2 <= b.entropy + 1e-12);
            prop_assert!((0.0..=1.0 + 1e-12).contains(&b.normalized()));
        }
    }

    #[test]
    fn entropy_is_invariant_under_gauge_moves_and_core_scaling(
        dims in dims_strategy(), bond in 1usize..5, seed in any::<u64>(), scale in 1e-3f64..1e3, which in any::<usize>(),
    ) {
        let mps = random_mps(&dims, bond, seed);
        let reference = mps.entanglement_profile().unwrap().entropies();
        // scale one core
        let k = which % dims.len();
        let sites: Vec<SiteTensor> = mps.sites().iter().enumerate().map(|(i, s)| {
            let f = if i == k { scale } else { 1.0 };
            SiteTensor::new(s.left(), s.phys(), s.right(), s.data().iter().map(|x| x * f).collect()).unwrap()
        }).collect();
        let scaled = Mps::from_sites(sites).unwrap();
        // move the gauge: canonicalize somewhere, then elsewhere
        let mut moved = mps.clone();
        moved.canonicalize(k).unwrap();
        moved.canonicalize((k + 1) % dims.len()).unwrap();
        for (a, b) in reference.iter().zip(scaled.entanglement_profile().unwrap().entropies()) {
            prop_assert!((a - b).abs() < 1e-10);
        }
        for (a, b) in reference.iter().zip(moved.entanglement_profile().unwrap().entropies()) {
            prop_assert!((a - b).abs() < 1e-10);
        }
        // and queries leave the caller's gauge alone
        let center = moved.ortho_center();
        let _ = moved.schmidt_values(1).unwrap();
        prop_assert_eq!(moved.ortho_center(), center);
    }
}

#[test]
fn product_state_has_zero_entropy() {
    let mps = Mps::product_state(&[vec![0.3, 0.7], vec![1.0, -2.0, 0.5], vec![0.1, 0.2]]).unwrap();
    let p = mps.entanglement_profile().unwrap();
    assert!(p.entropies().iter().all(|s| s.abs() < 1e-14));
}

#[test]
fn ghz_has_ln2_at_every_bond() {
    let n = 6;
    let mut v = vec![0.0; 1 << n];
    v[0] = 1.0;
    v[(1 << n) - 1] = 1.0;
    let (mps, _) = Mps::from_dense(&v, &vec![2; n], &TruncParams::exact()).unwrap();
    assert_eq!(mps.bond_dims(), vec![2; n - 1]);
    for b in mps.entanglement_profile().unwrap().bonds {
        assert!(
            (b.entropy - 2f64.ln()).abs() < 1e-14,
            "bond {}: {}",
            b.bond,
            b.entropy
        );
        assert!((b.renyi2 - 2f64.ln()).abs() < 1e-14);
        assert!((b.normalized() - 1.0).abs() < 1e-14);
    }
}

#[test]
fn identity_mpo_has_zero_entropy_and_maximal_state_has_the_bound() {
    let id = Mpo::identity(&[4, 4, 4]).unwrap();
    assert!(id.entanglement_profile().unwrap().max_entropy().abs() < 1e-14);
    // A random 64x64 matrix split as (4,4,4)x(4,4,4) is near-maximally entangled at full rank;
    // the bound at bond 1 is ln(min(16, 16, 256)) = ln 16.
    let data = random_vec(64 * 64, 5);
    let w = Mat::from_fn(64, 64, |i, j| data[i * 64 + j]);
    let (mpo, _) = Mpo::from_dense(w.as_ref(), &[4, 4, 4], &[4, 4, 4], &TruncParams::exact()).unwrap();
    let p = mpo.entanglement_profile().unwrap();
    assert!((p.bonds[0].bound - 16f64.ln()).abs() < 1e-14);
    assert!(p.bonds[0].normalized() > 0.85 && p.bonds[0].normalized() <= 1.0);
}

#[test]
fn zero_state_entropy_is_an_error() {
    let mps = Mps::product_state(&[vec![0.0, 0.0], vec![1.0, 0.0]]).unwrap();
    let err = mps.entanglement_entropy(1).unwrap_err();
    assert!(err.to_string().contains("zero"), "{err}");
}

/// faer 0.24's divide-and-conquer SVD returns NaN singular vectors for this rank-deficient
/// 128x128 matrix (the R factor of a bond tensor met while training the MPS classifier);
/// the core must still return a finite, exact decomposition.
#[test]
fn svd_is_finite_on_the_faer_divide_and_conquer_reproducer() {
    let bytes = include_bytes!("data/faer_svd_nan_128.f64");
    let data: Vec<f64> = bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let a = MatRef::from_row_major_slice(&data, 128, 128);
    let svd = tnml_core::truncated_svd(a, &TruncParams::exact()).unwrap();
    let k = svd.s.len();
    assert!(k < 128, "the matrix is rank-deficient, kept {k}");
    let us = Mat::from_fn(128, k, |i, j| svd.u[(i, j)] * svd.s[j]);
    let rec = &us * &svd.vt;
    assert!(
        (&rec - a).norm_l2() <= 1e-12 * a.norm_l2(),
        "reconstruction error {}",
        (&rec - a).norm_l2()
    );
    // and the MPS built from it is finite too
    let (mps, _) = Mps::from_dense(&data, &[128, 128], &TruncParams::max_bond(64)).unwrap();
    assert!(mps.sites().iter().all(|s| s.data().iter().all(|x| x.is_finite())));
}

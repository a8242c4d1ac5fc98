//! MpoLinear: every contraction plan equals the dense product, gradients equal finite differences,
//! TT-SVD round trips, and shapes/bonds are validated.

use burn::tensor::{Device, Tensor, TensorData};
use tnml_core::faer::Mat;
use tnml_core::TruncParams;
use tnml_nn::init::Normal;
use tnml_nn::mpo_linear::{MpoLinear, MpoLinearConfig};
use tnml_nn::{MpoSpec, WeightInit};

fn device() -> Device {
    Device::flex()
}

fn vec2(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn input(batch: usize, n: usize, seed: u64, dev: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(Normal::new(seed).vec(batch * n, 1.0), [batch, n]),
        dev,
    )
}

/// y = x W^T + b computed in f64 from the reconstructed W.
fn reference(x: &[f32], w: &[f32], b: &[f32], batch: usize, n_in: usize, n_out: usize) -> Vec<f64> {
    let mut y = vec![0.0f64; batch * n_out];
    for s in 0..batch {
        for j in 0..n_out {
            let mut acc = b[j] as f64;
            for i in 0..n_in {
                acc += w[j * n_in + i] as f64 * x[s * n_in + i] as f64;
            }
            y[s * n_out + j] = acc;
        }
    }
    y
}

fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

#[test]
fn every_plan_equals_the_dense_product() {
    let dev = device();
    for (ins, outs, d) in [
        (vec![4, 7, 7, 4], vec![4, 4, 4, 4], 5),
        (vec![4, 4, 4, 4], vec![1, 1, 10, 1], 4),
        (vec![2, 3], vec![5, 1], 3),
        (vec![6], vec![4], 1),
    ] {
        let spec = MpoSpec::uniform(&ins, &outs, d).unwrap();
        let mut layer = MpoLinearConfig {
            spec: spec.clone(),
            init: WeightInit::Glorot,
            bias: true,
            seed: 7,
        }
        .init(&dev);
        // a non-zero bias
        let nb = spec.out_features();
        let bias: Vec<f32> = (0..nb).map(|j| 0.1 * j as f32 - 0.3).collect();
        layer.bias = Some(burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(bias.clone(), [nb]),
            &dev,
        )));
        let w = layer.to_dense();
        for batch in [1, 3] {
            let x = input(batch, spec.in_features(), 11, &dev);
            let want = reference(&vec2(x.clone()), &w, &bias, batch, spec.in_features(), nb);
            for (plan, _) in spec.plan_costs(1) {
                let got = vec2(layer.forward_with(x.clone(), plan));
                let e = rel_err(&got, &want);
                assert!(e < 1e-5, "{spec} batch {batch} {plan:?}: relative error {e:.2e}");
            }
        }
    }
}

#[test]
fn reconstructed_weight_has_the_target_variance() {
    let dev = device();
    let spec = MpoSpec::uniform(&[4, 7, 7, 4], &[4, 4, 4, 4], 8).unwrap();
    let target = WeightInit::He.std(784, 256);
    let mut var = 0.0;
    let seeds = 6;
    for seed in 0..seeds {
        let w = MpoLinearConfig {
            spec: spec.clone(),
            init: WeightInit::He,
            bias: false,
            seed,
        }
        .init(&dev)
        .to_dense();
        var += w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / w.len() as f64;
    }
    let std = (var / seeds as f64).sqrt();
    assert!((std / target - 1.0).abs() < 0.25, "std {std} vs target {target}");
}

#[test]
fn gradients_match_finite_differences() {
    let dev = device().autodiff();
    let spec = MpoSpec::uniform(&[2, 3, 2], &[3, 2, 2], 3).unwrap();
    let layer = MpoLinearConfig {
        spec: spec.clone(),
        init: WeightInit::Std(0.5),
        bias: true,
        seed: 5,
    }
    .init(&dev);
    let x = input(4, spec.in_features(), 9, &dev);
    let probe: Tensor<2> = input(4, spec.out_features(), 13, &dev);
    for (plan, _) in spec.plan_costs(1) {
        let loss = (layer.forward_with(x.clone(), plan) * probe.clone()).sum();
        let grads = loss.backward();
        let g1: Vec<f32> = layer.cores[1]
            .val()
            .grad(&grads)
            .unwrap()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        // central differences in f64 on the dense reconstruction, perturbing core 1
        let base: Vec<Vec<f64>> = layer
            .cores
            .iter()
            .map(|c| c.val().into_data().convert::<f64>().try_to_vec::<f64>().unwrap())
            .collect();
        let xv: Vec<f64> = x
            .clone()
            .into_data()
            .convert::<f64>()
            .try_to_vec::<f64>()
            .unwrap();
        let pv: Vec<f64> = probe
            .clone()
            .into_data()
            .convert::<f64>()
            .try_to_vec::<f64>()
            .unwrap();
        let f = |cores: &Vec<Vec<f64>>| -> f64 {
            let mpo =
                tnml_core::Mpo::from_cores((0..3).map(|k| (spec.core_shape(k), cores[k].clone())).collect())
                    .unwrap();
            let w = mpo.to_dense().unwrap();
            let mut s = 0.0;
            for b in 0..4 {
                for j in 0..spec.out_features() {
                    let mut y = 0.0;
                    for i in 0..spec.in_features() {
                        y += w[(j, i)] * xv[b * spec.in_features() + i];
                    }
                    s += y * pv[b * spec.out_features() + j];
                }
            }
            s
        };
        let h = 1e-5;
        for idx in [0, 7, 20, base[1].len() - 1] {
            let mut up = base.clone();
            up[1][idx] += h;
            let mut dn = base.clone();
            dn[1][idx] -= h;
            let fd = (f(&up) - f(&dn)) / (2.0 * h);
            assert!(
                (g1[idx] as f64 - fd).abs() < 1e-3 * (1.0 + fd.abs()),
                "{plan:?} core 1 entry {idx}: autodiff {} vs finite difference {fd}",
                g1[idx]
            );
        }
    }
}

#[test]
fn tt_svd_round_trip_and_export() {
    let dev = device();
    let w = Mat::from_fn(12, 20, |i, j| ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.5);
    let (layer, report) =
        MpoLinear::from_dense(w.as_ref(), &[4, 5], &[3, 4], &TruncParams::exact(), None, &dev).unwrap();
    assert!(report.total_discarded_weight() < 1e-12);
    let dense = layer.to_dense();
    for j in 0..12 {
        for i in 0..20 {
            assert!((dense[j * 20 + i] as f64 - w[(j, i)]).abs() < 1e-5);
        }
    }
    let mpo = layer.to_mpo().unwrap();
    assert_eq!(mpo.in_modes(), &[4, 5]);
    assert_eq!(mpo.out_modes(), &[3, 4]);
    assert_eq!(mpo.num_params(), layer.num_params());
    // wrong modes name the numbers
    let err = MpoLinear::from_dense(w.as_ref(), &[4, 4], &[3, 4], &TruncParams::exact(), None, &dev)
        .unwrap_err()
        .to_string();
    assert!(err.contains("16") && err.contains("20"), "{err}");
}

#[test]
fn a_layer_keeps_the_spec_it_was_built_from() {
    let spec = MpoSpec::uniform(&[2, 3], &[2, 2], 9).unwrap();
    assert_eq!(spec.clamps.len(), 1, "bond 9 is above the rank cap 4");
    let layer = MpoLinearConfig {
        spec: spec.clone(),
        init: WeightInit::He,
        bias: true,
        seed: 1,
    }
    .init(&Device::flex());
    assert_eq!(layer.spec(), &spec);
    assert_eq!(layer.spec().clamps, spec.clamps);
    assert_eq!(layer.num_params(), spec.num_params());
}

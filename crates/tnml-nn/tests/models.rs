//! Models: Gao's compression ratios, forward/backward of every architecture, checkpoints,
//! learning on the shipped MNIST sample, NaN detection, compression of a dense model.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use tnml_core::TruncParams;
use tnml_data::{load, Dataset, Images, Split};
use tnml_nn::checkpoint::{self, CheckpointHeader};
use tnml_nn::train::{evaluate, train, LabeledImages, OptimizerKind, Silent, TrainConfig};
use tnml_nn::{Arch, Net, NetConfig, NnError, NormKind, WeightInit};

fn sample(split: Split, n: usize) -> LabeledImages {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample");
    let set = load(Dataset::MnistSample, &dir, split).unwrap().take(n);
    LabeledImages {
        images: Images::from_set(&set),
        labels: set.labels,
    }
}

fn config(arch: Arch, mpo: bool, bond: Option<usize>) -> NetConfig {
    NetConfig {
        arch,
        mpo: mpo.then(|| arch.gao_preset(bond).unwrap()),
        norm: NormKind::None,
        init: WeightInit::He,
        seed: 1,
        pairing: None,
    }
}

fn adam(epochs: usize, lr: f64) -> TrainConfig {
    TrainConfig::adam(epochs, 50, lr, 3)
}

fn logits(net: &Net, x: Tensor<4>) -> Vec<f32> {
    net.valid()
        .forward(x)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn gao_presets_reproduce_the_papers_ratios() {
    let r = config(Arch::Fc2, true, Some(2)).compression().unwrap();
    assert_eq!((r.total.mpo_params, r.total.dense_params), (1_024, 203_264));
    let r = config(Arch::Fc2, true, Some(16)).compression().unwrap();
    assert_eq!((r.total.mpo_params, r.total.dense_params), (15_584, 203_264));
    assert!((r.total.ratio() - 0.0767).abs() < 1e-3);
    let r = config(Arch::Lenet5, true, None).compression().unwrap();
    assert_eq!((r.total.mpo_params, r.total.dense_params), (2_860, 58_920));
    let r = config(Arch::Vgg16, true, None).compression().unwrap();
    assert_eq!((r.total.mpo_params, r.total.dense_params), (10_944, 23_633_920));
    // ResNet and DenseNet (Gao et al.'s Table 5 shapes): rho over the replaced layers
    let r = config(Arch::Resnet20, true, None).compression().unwrap();
    assert_eq!((r.total.mpo_params, r.total.dense_params), (276, 2_560));
    assert!((r.total.ratio() - 0.108).abs() < 1e-3);
    let r = config(Arch::Resnet56, true, None).compression().unwrap();
    assert_eq!(r.layers[0].params.mpo_params, 16 + 6 * 256 + 16);
    assert_eq!(
        (r.total.mpo_params, r.total.dense_params),
        (2 * 1_568 + 276, 2 * 589_824 + 2_560)
    );
    let r = config(Arch::Densenet40, true, None).compression().unwrap();
    assert_eq!((r.total.mpo_params, r.total.dense_params), (576, 4_480));
    assert!((r.total.ratio() - 0.129).abs() < 1e-3);
    // the built model has exactly those MPO parameters
    let net = config(Arch::Lenet5, true, None).init(&Device::flex()).unwrap();
    let n: usize = net.mpo_layers().iter().map(|(_, l)| l.num_params()).sum();
    assert_eq!(n, 2_860);
}

#[test]
fn every_architecture_runs_forward_and_backward() {
    let dev = Device::flex().autodiff();
    for (arch, mpo) in [
        (Arch::Fc2, false),
        (Arch::Fc2, true),
        (Arch::Lenet5, true),
        (Arch::Vgg16, true),
        (Arch::Vgg19, false),
    ] {
        let net = config(arch, mpo, None).init(&dev).unwrap();
        let [c, h, w] = arch.input_shape();
        let x = Tensor::<4>::from_data(
            TensorData::new(
                tnml_nn::init::Normal::new(2).vec(2 * c * h * w, 1.0),
                [2, c, h, w],
            ),
            &dev,
        );
        let y = net.forward(x);
        assert_eq!(y.dims(), [2, 10], "{arch:?}");
        let grads = y.sum().backward();
        if mpo {
            // one name per layer: the MPO layers are named as the layers they replace
            let names: Vec<String> = net.mpo_layers().into_iter().map(|(n, _)| n).collect();
            let replaced: Vec<&str> = arch.replaceable().iter().map(|l| l.0).collect();
            assert_eq!(names, replaced, "{arch:?}");
            let (name, layer) = &net.mpo_layers()[0];
            let g = layer.cores[0]
                .val()
                .grad(&grads)
                .expect("gradient reaches the MPO cores");
            let g = g.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
            assert!(
                g.iter().any(|v| *v != 0.0) && g.iter().all(|v| v.is_finite()),
                "{arch:?} {name}"
            );
        }
    }
}

#[test]
fn resnet_and_densenet_run_and_every_mpo_core_gets_a_gradient() {
    let dev = Device::flex().autodiff();
    for arch in [Arch::Resnet20, Arch::Resnet56, Arch::Densenet40] {
        let net = config(arch, true, None).init(&dev).unwrap();
        let x = Tensor::<4>::from_data(
            TensorData::new(
                tnml_nn::init::Normal::new(5).vec(2 * 3 * 32 * 32, 1.0),
                [2, 3, 32, 32],
            ),
            &dev,
        );
        let y = net.forward(x);
        assert_eq!(y.dims(), [2, 10], "{arch:?}");
        let grads = y.sum().backward();
        let names: Vec<String> = net.mpo_layers().into_iter().map(|(n, _)| n).collect();
        let replaced: Vec<&str> = arch.replaceable().iter().map(|l| l.0).collect();
        assert_eq!(names, replaced, "{arch:?}");
        for (name, layer) in net.mpo_layers() {
            for (k, core) in layer.cores.iter().enumerate() {
                let g = core.val().grad(&grads).expect("gradient reaches the MPO cores");
                let g = g.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
                assert!(
                    g.iter().any(|v| *v != 0.0) && g.iter().all(|v| v.is_finite()),
                    "{arch:?} {name} core {k}"
                );
            }
        }
    }
    // the dense DenseNet-40: about 1.0 million parameters (Huang et al.), 448 features
    let dense = config(Arch::Densenet40, false, None).init(&dev).unwrap();
    let fc = dense.affine("fc").unwrap().num_params();
    assert_eq!(fc, 448 * 10);
}

#[test]
fn mismatched_presets_and_data_are_refused() {
    let mut cfg = config(Arch::Fc2, true, None);
    cfg.mpo.as_mut().unwrap().pop();
    let e = cfg.init(&Device::flex()).unwrap_err().to_string();
    assert!(e.contains("2 replaceable layers") && e.contains("got 1"), "{e}");
    let mut cfg = config(Arch::Lenet5, true, None);
    cfg.mpo = Some(
        Arch::Fc2
            .gao_preset(None)
            .unwrap()
            .into_iter()
            .chain(Arch::Fc2.gao_preset(None).unwrap())
            .take(3)
            .collect(),
    );
    let e = cfg.init(&Device::flex()).unwrap_err().to_string();
    assert!(e.contains("layer fc3") && e.contains("784"), "{e}");
    let data = sample(Split::Test, 10);
    let e = data.check([3, 32, 32], 10).unwrap_err().to_string();
    assert!(e.contains("3x32x32") && e.contains("1x28x28"), "{e}");
}

#[test]
fn fc2_mpo_learns_and_checkpoints_round_trip() {
    let dev = Device::flex().autodiff();
    let cfg = config(Arch::Fc2, true, Some(4));
    let net = cfg.init(&dev).unwrap();
    let (tr, te) = (sample(Split::Train, 3000), sample(Split::Test, 500));
    let (_, acc0) = evaluate(&net, &te, 250, &dev);
    let tc = adam(2, 3e-3);
    let (net, records) = train(
        net,
        tc.build_optimizer(),
        &tc,
        &tr,
        Some(&te),
        1,
        &dev,
        &mut Silent,
    )
    .unwrap();
    let acc = records.last().unwrap().test_acc.unwrap();
    assert!(acc > 0.80 && acc > acc0 + 0.5, "test accuracy {acc0} -> {acc}");

    let dir = tempfile::tempdir().unwrap();
    let header = CheckpointHeader {
        format: checkpoint::FORMAT.into(),
        version: 1,
        net: cfg.clone(),
        train: Some(tc),
        epoch: 2,
        history: records,
    };
    checkpoint::save(dir.path(), &header, &net, None).unwrap();
    let (h2, back) = checkpoint::load(dir.path(), &dev).unwrap();
    assert_eq!(h2.net, cfg);
    let x = te.batch(&[0, 1, 2], &dev).0;
    assert_eq!(logits(&net, x.clone()), logits(&back, x));

    // a checkpoint of another model is refused
    let mut wrong = header.clone();
    wrong.net = config(Arch::Fc2, false, None);
    std::fs::write(
        dir.path().join("checkpoint.json"),
        serde_json::to_vec(&wrong).unwrap(),
    )
    .unwrap();
    let e = checkpoint::load(dir.path(), &dev).unwrap_err().to_string();
    assert!(e.contains("does not match"), "{e}");
    // a corrupt model file is refused
    std::fs::write(
        dir.path().join("checkpoint.json"),
        serde_json::to_vec(&header).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("model.bpk"), b"garbage").unwrap();
    assert!(checkpoint::load(dir.path(), &dev).is_err());

    // the safetensors export holds every parameter (and the MPO layers' dense weights besides)
    let st = dir.path().join("model.safetensors");
    tnml_nn::torch_layout::write(&st, &net, &cfg).unwrap();
    let bytes = std::fs::read(&st).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names = file.names();
    let reconstruction = |n: &str| {
        n.strip_suffix(".weight")
            .is_some_and(|p| names.contains(&format!("{p}.cores.0").as_str()))
    };
    let total: usize = file
        .tensors()
        .iter()
        .filter(|(n, _)| !reconstruction(n))
        .map(|(_, v)| v.shape().iter().product::<usize>())
        .sum();
    assert_eq!(total, net.num_params());
    assert!(
        file.names().iter().any(|n| n.contains("cores")),
        "{:?}",
        file.names()
    );
}

#[test]
fn a_diverging_run_stops_with_the_epoch_and_step() {
    let dev = Device::flex().autodiff();
    let net = config(Arch::Fc2, false, None).init(&dev).unwrap();
    let tc = TrainConfig {
        optimizer: OptimizerKind::Sgd {
            momentum: 0.0,
            nesterov: false,
        },
        ..adam(1, 1e30)
    };
    let err = train(
        net,
        tc.build_optimizer(),
        &tc,
        &sample(Split::Train, 500),
        None,
        1,
        &dev,
        &mut Silent,
    )
    .unwrap_err();
    assert!(matches!(err, NnError::NonFiniteLoss { epoch: 1, .. }), "{err}");
}

#[test]
fn compressing_a_dense_model_at_full_rank_keeps_its_predictions() {
    let dev = Device::flex().autodiff();
    let cfg = config(Arch::Fc2, false, None);
    let tc = adam(1, 1e-3);
    let (tr, te) = (sample(Split::Train, 1000), sample(Split::Test, 300));
    let (dense, _) = train(
        cfg.init(&dev).unwrap(),
        tc.build_optimizer(),
        &tc,
        &tr,
        None,
        1,
        &dev,
        &mut Silent,
    )
    .unwrap();
    let modes = Arch::Fc2.gao_preset(None).unwrap();
    let full = TruncParams::max_bond(10_000);
    let c = tnml_nn::compress::compress_dense(&dense, &cfg, &modes, &full, &dev).unwrap();
    let (mpo, mcfg, reports) = (c.net, c.config, c.reports);
    assert!(reports.iter().all(|(_, r)| r.total_discarded_weight() < 1e-8));
    assert!(mcfg.mpo.is_some());
    let x = te.batch(&(0..20).collect::<Vec<_>>(), &dev).0;
    let (a, b) = (logits(&dense, x.clone()), logits(&mpo, x));
    let err = a
        .iter()
        .zip(&b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0f32, f32::max);
    assert!(err < 1e-3, "max logit difference {err}");
    // truncated to bond 2, it still runs and reports what it dropped
    let reports = tnml_nn::compress::compress_dense(&dense, &cfg, &modes, &TruncParams::max_bond(2), &dev)
        .unwrap()
        .reports;
    assert!(reports[0].1.total_discarded_weight() > 1e-3);
}

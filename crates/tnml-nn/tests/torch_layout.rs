//! The PyTorch layout: names and shapes of the state_dict, a forward pass written from the file
//! alone that gives the model's logits, round trips of dense, MPO and batch-norm models, and the
//! strict reading (missing, unexpected, misshapen, non-float, non-finite tensors).

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use tnml_data::{load, Dataset, Images, Split};
use tnml_nn::torch_layout::{load_state_dict, state_dict, stored_config, to_safetensors, StateTensor};
use tnml_nn::train::{train, LabeledImages, Silent, TrainConfig};
use tnml_nn::{Arch, Net, NetConfig, NormKind, WeightInit};

fn config(arch: Arch, mpo: bool, norm: NormKind, seed: u64) -> NetConfig {
    NetConfig {
        arch,
        mpo: mpo.then(|| arch.gao_preset(None).unwrap()),
        norm,
        init: WeightInit::He,
        seed,
        pairing: None,
    }
}

fn sample(n: usize) -> LabeledImages {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample");
    let set = load(Dataset::MnistSample, &dir, Split::Train).unwrap().take(n);
    LabeledImages {
        images: Images::from_set(&set),
        labels: set.labels,
    }
}

fn logits(net: &Net, images: &LabeledImages, n: usize) -> Vec<f32> {
    let px = images.images.height * images.images.width;
    let x: Vec<f32> = images.images.data[..n * px].to_vec();
    let t = Tensor::<4>::from_data(TensorData::new(x, [n, 1, 28, 28]), &Device::flex());
    net.valid()
        .forward(t)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap()
}

fn find<'a>(sd: &'a [StateTensor], name: &str) -> &'a StateTensor {
    sd.iter().find(|t| t.name == name).unwrap_or_else(|| {
        panic!(
            "no {name} in {:?}",
            sd.iter().map(|t| &t.name).collect::<Vec<_>>()
        )
    })
}

/// `y = W x + b` with `W` `(out, in)` row-major, as torch.nn.Linear.
fn linear(w: &StateTensor, b: &StateTensor, x: &[f32]) -> Vec<f32> {
    let (out, inp) = (w.shape[0], w.shape[1]);
    assert_eq!(x.len(), inp);
    (0..out)
        .map(|o| b.values[o] + (0..inp).map(|i| w.values[o * inp + i] * x[i]).sum::<f32>())
        .collect()
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "entry {k}: {x} vs {y}");
    }
}

#[test]
fn fc2_state_dict_is_torch_linear_and_its_forward_gives_the_logits() {
    let dev = Device::flex();
    let net = config(Arch::Fc2, false, NormKind::None, 3).init(&dev).unwrap();
    let sd = state_dict(&net).unwrap();
    let names: Vec<&str> = sd.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]);
    assert_eq!(find(&sd, "fc1.weight").shape, [256, 784]);
    assert_eq!(find(&sd, "fc2.weight").shape, [10, 256]);
    let images = sample(4);
    let expected = logits(&net, &images, 4);
    for n in 0..4 {
        let x = &images.images.data[n * 784..(n + 1) * 784];
        let h: Vec<f32> = linear(find(&sd, "fc1.weight"), find(&sd, "fc1.bias"), x)
            .into_iter()
            .map(|v| v.max(0.0))
            .collect();
        let y = linear(find(&sd, "fc2.weight"), find(&sd, "fc2.bias"), &h);
        close(&y, &expected[n * 10..(n + 1) * 10], 1e-4);
    }
}

#[test]
fn mpo_model_round_trips_and_carries_its_dense_weight() {
    let dev = Device::flex();
    let cfg = config(Arch::Fc2, true, NormKind::Layer, 5);
    let net = cfg.init(&dev).unwrap();
    let sd = state_dict(&net).unwrap();
    let names: Vec<&str> = sd.iter().map(|t| t.name.as_str()).collect();
    for n in [
        "fc1.cores.0",
        "fc1.cores.3",
        "fc1.weight",
        "fc1.bias",
        "norm1.weight",
        "norm1.bias",
        "fc2.cores.3",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert_eq!(find(&sd, "fc1.cores.1").shape, [16, 7, 4, 16]);
    // the dense reconstruction is the layer's W (out, in)
    let mpo = net.mpo_layers()[0].1.to_dense();
    close(&find(&sd, "fc1.weight").values, &mpo, 1e-5);

    let bytes = to_safetensors(&net, &cfg, Path::new("m.safetensors")).unwrap();
    assert_eq!(stored_config(&bytes, "m").unwrap(), Some(cfg.clone()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("fc1.weight").unwrap().shape(), [256, 784]);
    let other = config(Arch::Fc2, true, NormKind::Layer, 99).init(&dev).unwrap();
    let images = sample(3);
    assert_ne!(logits(&other, &images, 3), logits(&net, &images, 3));
    let loaded = load_state_dict(other, &bytes, "m.safetensors").unwrap();
    assert_eq!(logits(&loaded, &images, 3), logits(&net, &images, 3));
}

#[test]
fn lenet_with_batch_norm_round_trips_its_running_statistics() {
    let dev = Device::flex().autodiff();
    let cfg = config(Arch::Lenet5, false, NormKind::Batch, 2);
    let set = sample(100);
    let tc = TrainConfig::adam(1, 50, 1e-3, 0);
    let (net, _) = train(
        cfg.init(&dev).unwrap(),
        tc.build_optimizer(),
        &tc,
        &set,
        None,
        1,
        &dev,
        &mut Silent,
    )
    .unwrap();
    let sd = state_dict(&net).unwrap();
    assert_eq!(find(&sd, "conv1.weight").shape, [6, 1, 5, 5]);
    assert_eq!(find(&sd, "fc3.weight").shape, [120, 400]);
    let mean = find(&sd, "norm3.running_mean");
    assert_eq!(mean.shape, [120]);
    assert!(
        mean.values.iter().any(|&v| v != 0.0),
        "training moved the running mean"
    );
    assert!(sd.iter().any(|t| t.name == "norm3.running_var"));
    let bytes = to_safetensors(&net, &cfg, Path::new("l.safetensors")).unwrap();
    let fresh = config(Arch::Lenet5, false, NormKind::Batch, 7)
        .init(&dev)
        .unwrap();
    let loaded = load_state_dict(fresh, &bytes, "l").unwrap();
    for (a, b) in state_dict(&loaded).unwrap().iter().zip(&sd) {
        assert_eq!(a, b, "{}", a.name);
    }
    assert_eq!(logits(&loaded, &set, 5), logits(&net, &set, 5));
}

fn file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    safetensors::serialize(
        tensors
            .iter()
            .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap())),
        None,
    )
    .unwrap()
}

fn f32s(v: impl IntoIterator<Item = f32>) -> Vec<u8> {
    v.into_iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn reading_is_strict_and_names_every_problem() {
    let dev = Device::flex();
    let fresh = || config(Arch::Fc2, false, NormKind::None, 1).init(&dev).unwrap();
    fn good(name: &str, shape: Vec<usize>) -> (&str, Dtype, Vec<usize>, Vec<u8>) {
        let n = shape.iter().product::<usize>();
        (name, Dtype::F32, shape, f32s((0..n).map(|i| i as f32 * 1e-4)))
    }
    // a PyTorch file: F64 weights, an I64 batch counter, all accepted
    let w2: Vec<u8> = (0..2560)
        .flat_map(|i| (f64::from(i) * 1e-4).to_le_bytes())
        .collect();
    let ok = file(&[
        good("fc1.weight", vec![256, 784]),
        good("fc1.bias", vec![256]),
        ("fc2.weight", Dtype::F64, vec![10, 256], w2),
        good("fc2.bias", vec![10]),
        (
            "bn.num_batches_tracked",
            Dtype::I64,
            vec![],
            0i64.to_le_bytes().to_vec(),
        ),
    ]);
    let net = load_state_dict(fresh(), &ok, "ok").unwrap();
    let sd = state_dict(&net).unwrap();
    // fc1.weight (out, in) = (256, 784): entry (o, i) = (o * 784 + i) * 1e-4
    assert!((find(&sd, "fc1.weight").values[3 * 784 + 5] - (3.0 * 784.0 + 5.0) * 1e-4).abs() < 1e-6);
    assert!((find(&sd, "fc2.weight").values[2 * 256 + 1] - 513e-4).abs() < 1e-6);

    let err = |bytes: &[u8]| {
        load_state_dict(fresh(), bytes, "bad.safetensors")
            .unwrap_err()
            .to_string()
    };
    let e = err(&file(&[
        good("fc1.weight", vec![784, 256]),
        good("fc1.bias", vec![256]),
        good("fc2.bias", vec![10]),
        good("head.weight", vec![10, 256]),
    ]));
    assert!(e.contains("bad.safetensors"), "{e}");
    assert!(
        e.contains("fc1.weight has shape [784, 256], the model needs [256, 784]"),
        "{e}"
    );
    assert!(e.contains("missing tensor fc2.weight [10, 256]"), "{e}");
    assert!(
        e.contains("unexpected tensors (not in this model): head.weight"),
        "{e}"
    );
    let mut nan = f32s((0..2560).map(|_| 0.0));
    nan[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = err(&file(&[
        good("fc1.weight", vec![256, 784]),
        ("fc1.bias", Dtype::I32, vec![256], vec![0; 1024]),
        ("fc2.weight", Dtype::F32, vec![10, 256], nan),
        good("fc2.bias", vec![10]),
    ]));
    assert!(e.contains("fc1.bias has dtype I32"), "{e}");
    assert!(e.contains("fc2.weight holds 1 non-finite values"), "{e}");
    assert!(err(b"not a safetensors file").contains("not a valid safetensors file"));
}

#[test]
fn resnet56_round_trips_with_its_whole_map_mpos_as_cores_only() {
    let dev = Device::flex();
    let cfg = config(Arch::Resnet56, true, NormKind::None, 4);
    let net = cfg.init(&dev).unwrap();
    let sd = state_dict(&net).unwrap();
    let names: Vec<&str> = sd.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"blocks.26.conv1.cores.7"), "{names:?}");
    assert!(
        !names.contains(&"blocks.26.conv1.weight"),
        "16384 x 16384 is not rebuilt"
    );
    assert!(names.contains(&"fc.weight") && names.contains(&"blocks.0.bn1.running_var"));
    assert_eq!(find(&sd, "blocks.9.shortcut.conv.weight").shape, [128, 64, 1, 1]);
    let bytes = to_safetensors(&net, &cfg, Path::new("r.safetensors")).unwrap();
    let other = config(Arch::Resnet56, true, NormKind::None, 8)
        .init(&dev)
        .unwrap();
    let loaded = load_state_dict(other, &bytes, "r").unwrap();
    let x = Tensor::<4>::from_data(
        TensorData::new(
            tnml_nn::init::Normal::new(1).vec(3 * 32 * 32, 1.0),
            [1, 3, 32, 32],
        ),
        &dev,
    );
    let f = |n: &Net| {
        n.valid()
            .forward(x.clone())
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap()
    };
    assert_eq!(f(&loaded), f(&net));
}

//! tnml's CPU convolution and pooling kernels against burn's own modules on the same parameters:
//! outputs and all gradients agree to 1e-5, with and without autodiff, and models route through
//! them.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::PaddingConfig2d;
use burn::tensor::{Device, Tensor, TensorData};
use tnml_nn::init::Normal;
use tnml_nn::kernels::{conv2d, max_pool2d};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// `max |got - want| <= 1e-5 max(1, max |want|)`: relative to the tensor's scale, since an entry
/// of a weight gradient is a sum over thousands of products and may cancel to a small value whose
/// own f32 rounding (in burn's sum as in tnml's) is far above 1e-5 of itself.
fn close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * scale,
            "{what}[{i}]: tnml {g}, burn {w} (scale {scale})"
        );
    }
}

fn random<const D: usize>(shape: [usize; D], seed: u64, dev: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(Normal::new(seed).vec(n, 1.0), shape), dev)
}

/// Builds the same convolution twice (tnml kernel and burn) and compares y, dx, dw, db.
fn compare_conv(conv: Conv2d, x_shape: [usize; 4]) {
    let dev = Device::flex().autodiff();
    let conv = Conv2d {
        weight: Param::from_tensor(random(conv.weight.dims(), 3, &dev)),
        bias: conv.bias.map(|b| Param::from_tensor(random(b.dims(), 4, &dev))),
        ..conv
    };
    let x = random(x_shape, 5, &dev).require_grad();
    let y_burn = conv.forward(x.clone());
    let y_tnml = conv2d(&conv, x.clone());
    assert_eq!(y_tnml.dims(), y_burn.dims());
    // a non-uniform output gradient: sum(y * r)
    let r = random(y_burn.dims(), 6, &dev);
    let g_burn = (y_burn.clone() * r.clone()).sum().backward();
    let g_tnml = (y_tnml.clone() * r).sum().backward();
    close("y", &values(y_tnml), &values(y_burn));
    let grad = |t: &Tensor<4>, g| values(t.grad(g).unwrap());
    close("dx", &grad(&x, &g_tnml), &grad(&x, &g_burn));
    let w = conv.weight.val();
    close("dw", &grad(&w, &g_tnml), &grad(&w, &g_burn));
    if let Some(b) = &conv.bias {
        let gb = |g| values(b.val().grad(g).unwrap());
        close("db", &gb(&g_tnml), &gb(&g_burn));
    }
}

#[test]
fn convolution_matches_burn_with_gradients() {
    let dev = Device::flex();
    // LeNet-5's two convolutions
    compare_conv(
        Conv2dConfig::new([1, 6], [5, 5])
            .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
            .init(&dev),
        [3, 1, 28, 28],
    );
    compare_conv(Conv2dConfig::new([6, 16], [5, 5]).init(&dev), [2, 6, 14, 14]);
    // strided, rectangular, no bias (ResNet's downsampling form)
    compare_conv(
        Conv2dConfig::new([3, 5], [3, 2])
            .with_stride([2, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false)
            .init(&dev),
        [2, 3, 9, 8],
    );
}

#[test]
fn unsupported_convolutions_fall_back_to_burn() {
    // dilation 2: the kernel does not handle it, the wrapper must give burn's answer
    let dev = Device::flex();
    let conv = Conv2dConfig::new([2, 3], [3, 3]).with_dilation([2, 2]).init(&dev);
    let x = random([1, 2, 9, 9], 1, &dev);
    close(
        "dilated",
        &values(conv2d(&conv, x.clone())),
        &values(conv.forward(x)),
    );
}

#[test]
fn max_pool_matches_burn_with_gradients() {
    let dev = Device::flex().autodiff();
    for (k, shape) in [(2, [2, 3, 28, 28]), (2, [1, 2, 7, 5]), (3, [1, 2, 9, 10])] {
        let pool = MaxPool2dConfig::new([k, k]).with_strides([k, k]).init();
        let x = random(shape, 7, &dev).require_grad();
        let y_burn = pool.forward(x.clone());
        let y_tnml = max_pool2d(&pool, x.clone());
        let r = random(y_burn.dims(), 8, &dev);
        let g_burn = (y_burn.clone() * r.clone()).sum().backward();
        let g_tnml = (y_tnml.clone() * r).sum().backward();
        close("pool y", &values(y_tnml), &values(y_burn));
        close(
            "pool dx",
            &values(x.grad(&g_tnml).unwrap()),
            &values(x.grad(&g_burn).unwrap()),
        );
    }
}

#[test]
fn kernels_run_without_autodiff() {
    let dev = Device::flex();
    let conv = Conv2dConfig::new([2, 4], [3, 3]).init(&dev);
    let x = random([2, 2, 6, 6], 9, &dev);
    close(
        "inference conv",
        &values(conv2d(&conv, x.clone())),
        &values(conv.forward(x.clone())),
    );
    let pool = MaxPool2dConfig::new([2, 2]).init();
    close(
        "inference pool",
        &values(max_pool2d(&pool, x.clone())),
        &values(pool.forward(x)),
    );
}

//! CPU kernels that replace burn's own where those are slow for the small images of MNIST-sized
//! models: convolution ([`conv`], im2col + GEMM per sample, threads over samples) and max pooling
//! ([`pool`]), and the two large-GEMM contractions of an MPO layer ([`split`], [`rebuild`]), each
//! with a hand-written backward registered with burn's autodiff. Their temporaries live in
//! per-thread scratch buffers (`scratch::with_scratch`).
//!
//! They are a burn backend extension ([`CpuKernels`]) implemented for the Flex backend and for
//! `Autodiff<Flex>`; [`conv2d`] and [`max_pool2d`] call them for tensors on the Flex device and fall
//! back to burn's modules on any other device (a GPU) or configuration (groups, dilation,
//! asymmetric padding, overlapping pools).

pub mod conv;
pub mod pool;
pub mod rebuild;
mod scratch;
pub mod split;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Flex};
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::{Tensor, TensorData};

use conv::ConvShape;
use split::SplitShape;

/// Custom CPU operations (see the module docs). Implemented for [`Flex`] and `Autodiff<Flex>`.
#[backend_extension(Flex, Autodiff)]
pub trait CpuKernels: Backend {
    /// `conv2d(x, w) + b` for `x: [B, C, H, W]`, `w: [C_out, C, kh, kw]`, `b: [C_out]`, with
    /// `stride` and symmetric zero padding `pad` (rows, columns).
    fn tnml_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        pad: [usize; 2],
    ) -> FloatTensor<Self>;

    /// Max pooling of `x: [B, C, H, W]` over `k x k` windows with stride `k`.
    fn tnml_max_pool2d(x: FloatTensor<Self>, k: usize) -> FloatTensor<Self>;

    /// The split MPO contraction of [`split`]: `x: [B, I_< I_>=]`, `a: [I_< r, J_<]`,
    /// `m: [I_>=, r J_>=]`; `shape` is `[B, I_<, I_>=, r, J_<, J_>=]`. Returns `[B, J_< J_>=]`.
    fn tnml_mpo_split(
        x: FloatTensor<Self>,
        a: FloatTensor<Self>,
        m: FloatTensor<Self>,
        shape: [usize; 6],
    ) -> FloatTensor<Self>;

    /// The fused reconstruct plan of [`rebuild`]: `x` and `shape` as for
    /// [`CpuKernels::tnml_mpo_split`], the halves as merged, `a: [I_< J_<, r]`, `m: [r, I_>= J_>=]`.
    fn tnml_mpo_rebuild(
        x: FloatTensor<Self>,
        a: FloatTensor<Self>,
        m: FloatTensor<Self>,
        shape: [usize; 6],
    ) -> FloatTensor<Self>;
}

/// The two MPO contractions over the halves `A`, `M` of the chain.
#[derive(Debug, Clone, Copy)]
enum Halves {
    /// [`split`]: keeps `T` for the backward.
    Split,
    /// [`rebuild`]: keeps `W^T` for the backward.
    Rebuild,
}

/// `(y, kept)` of a contraction over the halves, as tensors.
fn halves_forward(
    kind: Halves,
    x: &FlexTensor,
    a: &FlexTensor,
    m: &FlexTensor,
    shape: [usize; 6],
) -> (FlexTensor, FlexTensor) {
    let s = SplitShape::from_dims(shape);
    let (x, a, m) = (f32_values(x), f32_values(a), f32_values(m));
    let (y, kept) = match kind {
        Halves::Split => split::forward(&s, &x, &a, &m),
        Halves::Rebuild => rebuild::forward(&s, &x, &a, &m),
    };
    let n = kept.len();
    (flex(y, &[s.batch, s.j_lo * s.j_hi]), flex(kept, &[n]))
}

/// The values of an f32 tensor in row-major order: borrowed when it is contiguous, copied once
/// otherwise.
fn f32_values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(v) => std::borrow::Cow::Borrowed(v),
        None => std::borrow::Cow::Owned(
            t.clone()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 tensor"),
        ),
    }
}

fn flex(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

fn dims(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().to_vec()
}

fn conv_shape(x: &FlexTensor, w: &FlexTensor, stride: [usize; 2], pad: [usize; 2]) -> ConvShape {
    let (xs, ws) = (dims(x), dims(w));
    assert_eq!(xs.len(), 4, "conv2d input must be [B, C, H, W], got {xs:?}");
    assert_eq!(
        ws.len(),
        4,
        "conv2d weight must be [C_out, C, kh, kw], got {ws:?}"
    );
    assert_eq!(
        xs[1], ws[1],
        "conv2d: input has {} channels, the weight takes {}",
        xs[1], ws[1]
    );
    let s = ConvShape {
        batch: xs[0],
        c_in: xs[1],
        hw: [xs[2], xs[3]],
        c_out: ws[0],
        kernel: [ws[2], ws[3]],
        stride,
        pad,
    };
    assert!(
        s.is_valid(),
        "conv2d: kernel {:?} does not fit the padded input {:?}",
        s.kernel,
        s.hw
    );
    s
}

fn conv_forward(
    x: &FlexTensor,
    w: &FlexTensor,
    b: &FlexTensor,
    stride: [usize; 2],
    pad: [usize; 2],
) -> FlexTensor {
    let s = conv_shape(x, w, stride, pad);
    let y = conv::forward(&s, &f32_values(x), &f32_values(w), Some(&f32_values(b)));
    let [oh, ow] = s.out_hw();
    flex(y, &[s.batch, s.c_out, oh, ow])
}

fn pool_forward(x: &FlexTensor, k: usize) -> FlexTensor {
    let xs = dims(x);
    assert_eq!(xs.len(), 4, "max_pool2d input must be [B, C, H, W], got {xs:?}");
    let [oh, ow] = pool::out_hw([xs[2], xs[3]], k);
    flex(
        pool::forward(&f32_values(x), [xs[2], xs[3]], k),
        &[xs[0], xs[1], oh, ow],
    )
}

impl CpuKernels for Flex {
    fn tnml_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride: [usize; 2],
        pad: [usize; 2],
    ) -> FlexTensor {
        conv_forward(&x, &weight, &bias, stride, pad)
    }

    fn tnml_max_pool2d(x: FlexTensor, k: usize) -> FlexTensor {
        pool_forward(&x, k)
    }

    fn tnml_mpo_split(x: FlexTensor, a: FlexTensor, m: FlexTensor, shape: [usize; 6]) -> FlexTensor {
        halves_forward(Halves::Split, &x, &a, &m, shape).0
    }

    fn tnml_mpo_rebuild(x: FlexTensor, a: FlexTensor, m: FlexTensor, shape: [usize; 6]) -> FlexTensor {
        halves_forward(Halves::Rebuild, &x, &a, &m, shape).0
    }
}

#[derive(Debug)]
struct HalvesBackward(Halves);

impl Backward<Flex, 3> for HalvesBackward {
    /// x, A, M, what the forward kept (`T` or `W^T`), the shape.
    type State = (NodeId, NodeId, NodeId, FlexTensor, [usize; 6]);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_a, node_m] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x_state, a_state, m_state, t, shape) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
        let a: FlexTensor = checkpointer.retrieve_node_output(a_state);
        let m: FlexTensor = checkpointer.retrieve_node_output(m_state);
        let s = SplitShape::from_dims(shape);
        let (xv, av, mv, tv, dyv) = (
            f32_values(&x),
            f32_values(&a),
            f32_values(&m),
            f32_values(&t),
            f32_values(&dy),
        );
        let backward = match self.0 {
            Halves::Split => split::backward,
            Halves::Rebuild => rebuild::backward,
        };
        let (dx, da, dm) = backward(&s, &xv, &av, &mv, &tv, &dyv, node_x.is_some());
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, flex(dx, &dims(&x)));
        }
        if let Some(node) = node_a {
            grads.register::<Flex>(node.id, flex(da, &dims(&a)));
        }
        if let Some(node) = node_m {
            grads.register::<Flex>(node.id, flex(dm, &dims(&m)));
        }
    }
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    type State = (NodeId, NodeId, [usize; 2], [usize; 2]);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x_state, w_state, stride, pad) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
        let w: FlexTensor = checkpointer.retrieve_node_output(w_state);
        let s = conv_shape(&x, &w, stride, pad);
        let (dx, dw, db) = conv::backward(
            &s,
            &f32_values(&x),
            &f32_values(&w),
            &f32_values(&dy),
            node_x.is_some(),
        );
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, flex(dx, &dims(&x)));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, flex(dw, &dims(&w)));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, flex(db, &[s.c_out]));
        }
    }
}

#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = (NodeId, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x_state, k) = ops.state;
        if let Some(node) = node_x {
            let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
            let xs = dims(&x);
            let dx = pool::backward(&f32_values(&x), [xs[2], xs[3]], k, &f32_values(&dy));
            grads.register::<Flex>(node.id, flex(dx, &xs));
        }
    }
}

impl<C: CheckpointStrategy> CpuKernels for Autodiff<Flex, C> {
    fn tnml_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        pad: [usize; 2],
    ) -> FloatTensor<Self> {
        match ConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let w_state = prep.checkpoint(&weight);
                let y = conv_forward(x.primitive(), weight.primitive(), bias.primitive(), stride, pad);
                prep.finish((x_state, w_state, stride, pad), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(conv_forward(
                x.primitive(),
                weight.primitive(),
                bias.primitive(),
                stride,
                pad,
            )),
        }
    }

    fn tnml_max_pool2d(x: FloatTensor<Self>, k: usize) -> FloatTensor<Self> {
        match PoolBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let y = pool_forward(x.primitive(), k);
                prep.finish((x_state, k), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(pool_forward(x.primitive(), k)),
        }
    }

    fn tnml_mpo_split(
        x: FloatTensor<Self>,
        a: FloatTensor<Self>,
        m: FloatTensor<Self>,
        shape: [usize; 6],
    ) -> FloatTensor<Self> {
        halves_tracked::<C>(Halves::Split, x, a, m, shape)
    }

    fn tnml_mpo_rebuild(
        x: FloatTensor<Self>,
        a: FloatTensor<Self>,
        m: FloatTensor<Self>,
        shape: [usize; 6],
    ) -> FloatTensor<Self> {
        halves_tracked::<C>(Halves::Rebuild, x, a, m, shape)
    }
}

/// A contraction over the halves on `Autodiff<Flex>`, registering [`HalvesBackward`].
fn halves_tracked<C: CheckpointStrategy>(
    kind: Halves,
    x: FloatTensor<Autodiff<Flex, C>>,
    a: FloatTensor<Autodiff<Flex, C>>,
    m: FloatTensor<Autodiff<Flex, C>>,
    shape: [usize; 6],
) -> FloatTensor<Autodiff<Flex, C>> {
    match HalvesBackward(kind)
        .prepare::<C>([x.node(), a.node(), m.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let states = [&x, &a, &m].map(|t| prep.checkpoint(t));
            let (y, kept) = halves_forward(kind, x.primitive(), a.primitive(), m.primitive(), shape);
            prep.finish((states[0], states[1], states[2], kept, shape), y)
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(halves_forward(kind, x.primitive(), a.primitive(), m.primitive(), shape).0)
        }
    }
}

/// Whether `device` runs on the Flex CPU backend (with or without autodiff).
pub(crate) fn on_flex<const D: usize>(x: &Tensor<D>) -> bool {
    x.device().inner() == burn::tensor::Device::flex()
}

/// `conv.forward(x)` through [`CpuKernels::tnml_conv2d`] on the Flex backend (and through burn's own
/// convolution elsewhere, or for grouped, dilated or asymmetrically padded convolutions).
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let pad = match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    };
    match pad {
        Some(pad) if conv.groups == 1 && conv.dilation == [1, 1] && on_flex(&x) => {
            // a layer without bias gets a constant zero one (not tracked, so no gradient)
            let bias = match &conv.bias {
                Some(b) => b.val(),
                None => Tensor::zeros([conv.weight.dims()[0]], &x.device()),
            };
            let y = <burn::backend::Dispatch as CpuKernels>::tnml_conv2d(
                x.into_dispatch(),
                conv.weight.val().into_dispatch(),
                bias.into_dispatch(),
                conv.stride,
                pad,
            );
            Tensor::from_dispatch(y)
        }
        _ => conv.forward(x),
    }
}

/// `pool.forward(x)` through [`CpuKernels::tnml_max_pool2d`] on the Flex backend when the windows
/// tile the input (`k x k`, stride `k`, no padding or dilation); burn's pooling otherwise.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let [k, k2] = pool.kernel_size;
    let tiles = k == k2
        && pool.stride == [k, k]
        && pool.dilation == [1, 1]
        && !pool.ceil_mode
        && matches!(pool.padding, PaddingConfig2d::Valid);
    if tiles && on_flex(&x) {
        Tensor::from_dispatch(<burn::backend::Dispatch as CpuKernels>::tnml_max_pool2d(
            x.into_dispatch(),
            k,
        ))
    } else {
        pool.forward(x)
    }
}

/// The split contraction ([`CpuKernels::tnml_mpo_split`]) or the fused reconstruct plan
/// ([`CpuKernels::tnml_mpo_rebuild`]) over the halves `a`, `m` (Flex backend only; the caller
/// checks [`on_flex`]).
pub(crate) fn mpo_halves(
    rebuild: bool,
    x: Tensor<2>,
    a: Tensor<2>,
    m: Tensor<2>,
    shape: [usize; 6],
) -> Tensor<2> {
    let (x, a, m) = (x.into_dispatch(), a.into_dispatch(), m.into_dispatch());
    Tensor::from_dispatch(if rebuild {
        <burn::backend::Dispatch as CpuKernels>::tnml_mpo_rebuild(x, a, m, shape)
    } else {
        <burn::backend::Dispatch as CpuKernels>::tnml_mpo_split(x, a, m, shape)
    })
}

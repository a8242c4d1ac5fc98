//! Where the numerics run: the burn device of the network commands. Threads are set up by
//! [`crate::args::Threads::apply`].

/// The training device: burn's flex CPU backend, or GPU 0 when built with `--features cuda`
/// and `TNML_DEVICE=cuda` is set (the CUDA path is compiled from crates only and needs the
/// driver and libnvrtc at run time; it is not exercised by the tests).
pub fn device() -> burn::tensor::Device {
    #[cfg(feature = "cuda")]
    if std::env::var("TNML_DEVICE").as_deref() == Ok("cuda") {
        return burn::tensor::Device::cuda(0).autodiff();
    }
    burn::tensor::Device::flex().autodiff()
}

//! What can be checked of the CUDA path on a machine without a GPU (CI): the kernels compile
//! with NVRTC for Hopper, and opening a device without a driver is an error, not a panic.
//!
//! The NVRTC check needs libnvrtc (pip's `nvidia-cuda-nvrtc`, on LD_LIBRARY_PATH); CI installs
//! it and sets `TNML_REQUIRE_NVRTC=1`, which turns its absence into a failure.

use tnml_cuda::{compile_kernels, Gpu, GpuError};

const KERNELS: [&str; 8] = [
    "gather",
    "combine",
    "outer",
    "normalize",
    "scale_rows",
    "label_head",
    "label_carry",
    "adam",
];

#[test]
fn kernels_compile_for_hopper_with_nvrtc() {
    match compile_kernels(9, 0) {
        Ok(ptx) => {
            assert!(ptx.contains(".target sm_90"), "{}", &ptx[..ptx.len().min(400)]);
            for k in KERNELS {
                assert!(
                    ptx.contains(&format!(".entry {k}(")),
                    "kernel {k} missing from the PTX"
                );
            }
            // the f64 log-scales stay f64, the atomic of the Adam check is there
            assert!(ptx.contains("atom.global.min.u64"), "no 64-bit atomicMin in adam");
        }
        Err(GpuError::MissingLibrary { lib }) => {
            assert!(
                std::env::var("TNML_REQUIRE_NVRTC").is_err(),
                "TNML_REQUIRE_NVRTC is set but {lib} cannot be loaded (LD_LIBRARY_PATH?)"
            );
            eprintln!("skipped: {lib} is not on this machine (pip install nvidia-cuda-nvrtc)");
        }
        Err(e) => panic!("the kernels do not compile: {e}"),
    }
}

#[test]
fn opening_a_device_without_one_is_an_error() {
    match Gpu::open(0) {
        // a machine with a GPU: it opens and describes itself
        Ok(gpu) => assert!(gpu.describe().starts_with("cuda:0 (")),
        Err(e) => {
            let text = e.to_string();
            assert!(
                matches!(
                    e,
                    GpuError::NoDriver | GpuError::NoDevice { .. } | GpuError::MissingLibrary { .. }
                ),
                "{text}"
            );
        }
    }
    assert!(Gpu::open(4096).is_err(), "no machine has 4097 GPUs");
}

//! Where the numerics run: the burn device of the network commands. Threads are set up by
//! [`crate::args::Threads::apply`].

/// The training device: burn's flex CPU backend, or GPU 0 when built with `--features burn-cuda`
/// and `TNML_DEVICE=cuda` is set (the CUDA path is compiled from crates only and needs the
/// driver and libnvrtc at run time; it is not exercised by the tests).
pub fn device() -> burn::tensor::Device {
    #[cfg(feature = "burn-cuda")]
    if std::env::var("TNML_DEVICE").as_deref() == Ok("cuda") {
        return burn::tensor::Device::cuda(0).autodiff();
    }
    burn::tensor::Device::flex().autodiff()
}

/// This machine's memory in bytes (`MemTotal` of /proc/meminfo; 16 GiB where it cannot be read).
pub fn total_memory() -> u128 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u128>().ok())
        })
        .map_or(16 << 30, |kb| kb * 1024)
}

/// Refuses work whose estimated memory exceeds the machine's, with both figures, before
/// anything is allocated (an allocation failure aborts the process without a word).
///
/// # Errors
/// `bytes` above [`total_memory`].
pub fn check_memory(bytes: u128, what: &str) -> anyhow::Result<()> {
    let total = total_memory();
    if bytes > total {
        anyhow::bail!(
            "{what} needs about {:.1} GB, more than this machine's {:.1} GB",
            bytes as f64 / 1e9,
            total as f64 / 1e9
        );
    }
    Ok(())
}

/// Peak resident memory of this process so far (`VmHWM` of /proc/self/status), in bytes.
pub fn peak_resident_bytes() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    })
}

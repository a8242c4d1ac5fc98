//! Where the hot loops of a trainer run: the CPU (rayon threads) or one CUDA GPU.
//!
//! `Device` is parsed from the spelling users give on the command line and in Python
//! (`cpu`, `cuda`, `cuda:1`) and printed back the same way. A build without the `cuda` cargo
//! feature still parses `cuda`, and refuses it where a trainer would run on it
//! ([`Device::check_available`]), so a run never falls back to the CPU silently.

use std::fmt;
use std::str::FromStr;

use crate::error::{MpsError, Result};

/// A compute device of the trainers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// The CPU: every thread of rayon's pool.
    #[default]
    Cpu,
    /// The CUDA GPU of this ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl Device {
    /// True when this build has the CUDA path (the `cuda` cargo feature).
    pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

    /// Checks that this build can run on the device (for `Cuda`, only that the feature is built
    /// in; the driver and the device are checked when the device is opened).
    ///
    /// # Errors
    /// [`MpsError::Device`] for `Cuda` in a build without the `cuda` feature.
    pub fn check_available(self) -> Result<()> {
        match self {
            Self::Cpu => Ok(()),
            Self::Cuda(_) if Self::CUDA_BUILT => Ok(()),
            Self::Cuda(_) => Err(MpsError::Device {
                device: self.to_string(),
                reason: "this tnml was built without CUDA support; rebuild with `--features cuda` \
                         (cargo install --path crates/tnml-cli --features cuda)"
                    .into(),
            }),
        }
    }

    /// Checks that the device can be used now and describes it (`cpu: 16 threads`,
    /// `cuda:0 (NVIDIA H200)`): for CUDA it opens the device (driver, libraries, kernels) and
    /// closes it again, so a command can refuse before it writes anything.
    ///
    /// # Errors
    /// [`MpsError::Device`]: not built in, no driver, no such device, a CUDA failure.
    pub fn probe(self) -> Result<String> {
        self.check_available()?;
        match self {
            Self::Cpu => Ok(format!("cpu: {} threads", rayon::current_num_threads())),
            #[cfg(feature = "cuda")]
            Self::Cuda(n) => tnml_cuda::Gpu::open(n)
                .map(|g| g.describe())
                .map_err(|e| MpsError::Device {
                    device: self.to_string(),
                    reason: e.to_string(),
                }),
            #[cfg(not(feature = "cuda"))]
            Self::Cuda(_) => unreachable!("check_available refuses cuda in this build"),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for Device {
    type Err = MpsError;

    /// `cpu`, `cuda` (= `cuda:0`) or `cuda:N`, case-insensitive.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || MpsError::Device {
            device: s.to_string(),
            reason: "expected cpu, cuda or cuda:N (N = 0, 1, ...)".into(),
        };
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => {
                let n = other.strip_prefix("cuda:").ok_or_else(bad)?;
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 4 {
                    return Err(bad());
                }
                n.parse().map(Self::Cuda).map_err(|_| bad())
            }
        }
    }
}

impl serde::Serialize for Device {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Device {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_same_spelling() {
        for (text, dev) in [
            ("cpu", Device::Cpu),
            ("cuda:0", Device::Cuda(0)),
            ("cuda:3", Device::Cuda(3)),
        ] {
            assert_eq!(text.parse::<Device>().unwrap(), dev);
            assert_eq!(dev.to_string(), text);
        }
        assert_eq!("CUDA".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!(" cpu ".parse::<Device>().unwrap(), Device::Cpu);
    }

    #[test]
    fn refuses_what_is_not_a_device() {
        for text in [
            "",
            "gpu",
            "cuda:",
            "cuda:-1",
            "cuda:1.5",
            "cuda:x",
            "cuda:99999",
            "cpu:0",
            "cuda:+1",
        ] {
            let err = text.parse::<Device>().unwrap_err().to_string();
            assert!(err.contains("expected cpu, cuda or cuda:N"), "{text}: {err}");
        }
    }

    /// Without a GPU (CI) a CUDA device is refused with the reason, never a panic.
    #[test]
    fn probing_cuda_without_a_gpu_is_an_error_not_a_panic() {
        assert!(Device::Cpu.probe().unwrap().starts_with("cpu: "));
        if let Err(e) = Device::Cuda(0).probe() {
            let text = e.to_string();
            assert!(text.starts_with("device cuda:0: "), "{text}");
        }
        let far = Device::Cuda(9999).probe();
        assert!(far.is_err(), "cuda:9999 cannot exist");
    }

    #[test]
    fn cuda_is_refused_without_the_feature() {
        assert!(Device::Cpu.check_available().is_ok());
        let cuda = Device::Cuda(0).check_available();
        assert_eq!(cuda.is_ok(), Device::CUDA_BUILT);
        if let Err(e) = cuda {
            assert!(e.to_string().contains("--features cuda"), "{e}");
        }
    }
}

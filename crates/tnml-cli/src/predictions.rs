//! What `tnml mps predict` and `tnml net predict` share: the output format chosen from the file's
//! extension (checked before anything is computed), little-endian tensor bytes, the closing line.

use std::path::Path;

use anyhow::{bail, Result};

/// The output formats of a predictions file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One row per image.
    Csv,
    /// Named tensors (NumPy, PyTorch).
    Safetensors,
}

impl Format {
    /// The format of `path`, from its extension.
    ///
    /// # Errors
    /// Any other extension.
    pub fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Ok(Self::Csv),
            Some("safetensors") => Ok(Self::Safetensors),
            _ => bail!("--out {}: give a .csv or a .safetensors file", path.display()),
        }
    }
}

/// Labels as I64 bytes (NumPy's and PyTorch's integer default).
pub fn i64_bytes(v: &[usize]) -> Vec<u8> {
    v.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect()
}

/// F32 values as bytes.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// F64 values as bytes.
pub fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Prints what was written, with the error rate of the predictions.
pub fn report_written(labels: &[usize], predicted: &[usize], path: &Path, rule: &str) {
    let wrong = labels.iter().zip(predicted).filter(|(l, p)| l != p).count();
    println!(
        "wrote {} predictions to {} (error {:.4}, {} wrong; {rule})",
        labels.len(),
        path.display(),
        wrong as f64 / labels.len().max(1) as f64,
        wrong,
    );
}

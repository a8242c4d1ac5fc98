//! What the MPS benchmarks share: the Python that runs the reference, and the files it reads.

use std::path::{Path, PathBuf};

use tnml_mps::MpsClassifier;

/// `$TNML_PYTHON`, else `bench/.venv/bin/python` when it exists, else `python3`.
pub fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/.venv/bin/python");
    std::env::var("TNML_PYTHON")
        .map(Into::into)
        .unwrap_or(if venv.exists() { venv } else { "python3".into() })
}

/// `bench/<name>`, the reference script.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../bench")
        .join(name)
}

/// Labels as little-endian u32.
pub fn write_labels(path: &Path, labels: &[usize]) {
    let bytes: Vec<u8> = labels.iter().flat_map(|&l| (l as u32).to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

/// The sites' data one after the other as little-endian f32; returns their `[left, phys,
/// right]` shapes.
pub fn write_model(path: &Path, model: &MpsClassifier) -> Vec<[usize; 3]> {
    let bytes: Vec<u8> = model
        .sites()
        .iter()
        .flat_map(|s| s.data().iter().flat_map(|&v| (v as f32).to_le_bytes()))
        .collect();
    std::fs::write(path, bytes).unwrap();
    model.sites().iter().map(|s| s.shape()).collect()
}

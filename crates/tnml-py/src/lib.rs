//! # tnml-py
//!
//! The native module `tnml._tnml` behind the Python package `tnml` (the Python layer in
//! `python/tnml/` checks dtypes and shapes and gives the sklearn-style classes; this crate does
//! the work). Conventions are the Rust core's: MPO cores `[left, in, out, right]`, dense matrices
//! `(prod out, prod in)` as `nn.Linear.weight`, entropies in natural log.
//!
//! Errors: invalid arrays and options become `ValueError`, files that cannot be read `OSError`
//! (`FileNotFoundError` where missing), a training run that diverges `RuntimeError`; every
//! message is the Rust one. Long calls release the GIL.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

mod classifier;
mod data;
mod fit;
mod mpo;

/// A `ValueError` with the message of a Rust error.
pub(crate) fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A Python exception for an error of the MPS classifier: I/O as `OSError` (with the file
/// name), divergence and an unusable device (no CUDA driver, no GPU) as `RuntimeError`,
/// everything else as `ValueError`.
pub(crate) fn mps_error(e: tnml_mps::MpsError) -> PyErr {
    match e {
        tnml_mps::MpsError::Io { file, source } => {
            PyErr::from(std::io::Error::new(source.kind(), format!("{file}: {source}")))
        }
        e @ (tnml_mps::MpsError::Diverged { .. } | tnml_mps::MpsError::NonFiniteCost { .. }) => {
            PyRuntimeError::new_err(e.to_string())
        }
        e @ tnml_mps::MpsError::Device { .. } => PyRuntimeError::new_err(e.to_string()),
        e @ (tnml_mps::MpsError::InvalidOption { option, .. }
        | tnml_mps::MpsError::SiteOutOfChain { option, .. }) => {
            // the library names its fields; Python names its parameters
            let text = e.to_string();
            match text.strip_prefix(option) {
                Some(rest) => value_error(format!("{}{rest}", parameter(option))),
                None => value_error(text),
            }
        }
        e => value_error(e),
    }
}

/// The `MPSClassifier` parameter of a library setting (`lambda` is `lam`).
fn parameter(field: &str) -> &str {
    match field {
        "lambda" => "lam",
        "learning_rate" => "lr",
        "final_refit" => "refit",
        "final_refit_lambda" => "refit_lambda",
        "seed" => "random_state",
        f => f,
    }
}

/// An `OSError` (the matching subclass) for an I/O error on `path`.
pub(crate) fn io_error(path: &std::path::Path, e: &std::io::Error) -> PyErr {
    PyErr::from(std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The native module.
#[pymodule]
fn _tnml(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<mpo::PyMpo>()?;
    m.add_class::<classifier::Model>()?;
    m.add_function(wrap_pyfunction!(fit::fit, m)?)?;
    m.add_function(wrap_pyfunction!(fit::defaults, m)?)?;
    m.add_function(wrap_pyfunction!(data::load_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(data::read_safetensors, m)?)?;
    m.add_function(wrap_pyfunction!(data::default_layer_modes, m)?)?;
    m.add_function(wrap_pyfunction!(mpo::read_mpo_file, m)?)?;
    m.add_function(wrap_pyfunction!(mpo::mpo_file_bytes, m)?)?;
    Ok(())
}

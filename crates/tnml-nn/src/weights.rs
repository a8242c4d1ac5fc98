//! Dense weights read from safetensors files written by anything (PyTorch, NumPy, tnml): one
//! 2-D tensor as a matrix, rows = outputs as `nn.Linear.weight`. Every size is checked against
//! the file's own data before a matrix is built.

use safetensors::{Dtype, SafeTensors};
use tnml_core::faer::Mat;

use crate::error::{NnError, Result};

/// Reads the 2-D tensor `name` (F32 or F64) from the bytes of a safetensors file; `file` names
/// it in errors. With `name = None` the file must hold exactly one tensor.
///
/// # Errors
/// [`NnError::WeightsFile`]: not safetensors, no such tensor, not 2-D, empty, inconsistent, another dtype.
pub fn matrix_from_safetensors(bytes: &[u8], name: Option<&str>, file: &str) -> Result<(String, Mat<f64>)> {
    let bad = |reason: String| NnError::WeightsFile {
        path: file.to_string(),
        reason,
    };
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
    let mut names = st.names();
    names.sort();
    let name = match name {
        Some(n) => n.to_string(),
        None if names.len() == 1 => names[0].to_string(),
        None => {
            return Err(bad(format!(
                "holds {} tensors ({}): pick one with --tensor",
                names.len(),
                names.join(", ")
            )))
        }
    };
    let view = st
        .tensor(&name)
        .map_err(|_| bad(format!("no tensor {name:?} (it has: {})", names.join(", "))))?;
    let shape = view.shape().to_vec();
    if shape.len() != 2 {
        return Err(bad(format!(
            "tensor {name:?} has shape {shape:?}: a matrix (2 dimensions) is needed"
        )));
    }
    if shape[0] == 0 || shape[1] == 0 {
        return Err(bad(format!(
            "tensor {name:?} has shape {shape:?}: an empty matrix has no MPO"
        )));
    }
    let (elems, width) = match view.dtype() {
        Dtype::F32 => (view.data().len() / 4, 4),
        Dtype::F64 => (view.data().len() / 8, 8),
        _ => (0, 0),
    };
    if width > 0 && shape[0].checked_mul(shape[1]) != Some(elems) {
        return Err(bad(format!(
            "tensor {name:?} has shape {shape:?} but {elems} values: the file is inconsistent"
        )));
    }
    let values: Vec<f64> = match view.dtype() {
        Dtype::F32 => view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        Dtype::F64 => view
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
        other => {
            return Err(bad(format!(
                "tensor {name:?} has dtype {other:?}: F32 or F64 is needed"
            )))
        }
    };
    let (rows, cols) = (shape[0], shape[1]);
    Ok((name, Mat::from_fn(rows, cols, |i, j| values[i * cols + j])))
}

//! Dense weights read from safetensors files written by anything (PyTorch, NumPy, tnml): one
//! 2-D tensor as a matrix, rows = outputs as `nn.Linear.weight`, or every weight of a state_dict
//! (convolutions `(out, in, kh, kw)` as `out x (in kh kw)`). Every size is checked against the
//! file's own data before a matrix is built.

use safetensors::{Dtype, SafeTensors};
use tnml_core::faer::Mat;

use crate::error::{NnError, Result};

/// The values of an F32 or F64 tensor holding `rows x cols` of them, as a matrix.
///
/// # Errors
/// Another dtype (`Ok(None)` is never returned for F32/F64), a value count that is not
/// `rows * cols` (the message names the tensor).
fn matrix_of(
    view: &safetensors::tensor::TensorView<'_>,
    name: &str,
    rows: usize,
    cols: usize,
) -> std::result::Result<Option<Mat<f64>>, String> {
    let width = match view.dtype() {
        Dtype::F32 => 4,
        Dtype::F64 => 8,
        _ => return Ok(None),
    };
    let elems = view.data().len() / width;
    if rows.checked_mul(cols) != Some(elems) {
        return Err(format!(
            "tensor {name:?} has shape {:?} but {elems} values: the file is inconsistent",
            view.shape()
        ));
    }
    let values: Vec<f64> = view
        .data()
        .chunks_exact(width)
        .map(|c| match width {
            4 => f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            _ => f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        })
        .collect();
    Ok(Some(Mat::from_fn(rows, cols, |i, j| values[i * cols + j])))
}

fn bad_file(file: &str, reason: String) -> NnError {
    NnError::WeightsFile {
        path: file.to_string(),
        reason,
    }
}

/// The parsed file and its tensor names, sorted.
fn open<'a>(bytes: &'a [u8], file: &str) -> Result<(SafeTensors<'a>, Vec<String>)> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| bad_file(file, format!("not a valid safetensors file ({e})")))?;
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    Ok((st, names))
}

/// Reads the 2-D tensor `name` (F32 or F64) from the bytes of a safetensors file; `file` names
/// it in errors. With `name = None` the file must hold exactly one tensor.
///
/// # Errors
/// [`NnError::WeightsFile`]: not safetensors, no such tensor, not 2-D, empty, inconsistent, another dtype.
pub fn matrix_from_safetensors(bytes: &[u8], name: Option<&str>, file: &str) -> Result<(String, Mat<f64>)> {
    let bad = |reason: String| bad_file(file, reason);
    let (st, names) = open(bytes, file)?;
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
    match matrix_of(&view, &name, shape[0], shape[1]).map_err(bad)? {
        Some(m) => Ok((name, m)),
        None => Err(bad(format!(
            "tensor {name:?} has dtype {:?}: F32 or F64 is needed",
            view.dtype()
        ))),
    }
}

/// One weight of a state_dict read as a matrix.
#[derive(Debug, Clone)]
pub struct WeightMatrix {
    /// Tensor name.
    pub name: String,
    /// Its shape in the file.
    pub shape: Vec<usize>,
    /// `shape[0] x prod(shape[1..])`.
    pub matrix: Mat<f64>,
}

/// Tensors left out of [`weight_matrices`]: `(name, why)`.
pub type Skipped = Vec<(String, String)>;

/// The tensors left out, as one line: those of fewer than two dimensions (biases, norm
/// parameters, counters: not weights) counted with a few names, every other one with its reason.
pub fn describe_skipped(skipped: &[(String, String)]) -> String {
    let (flat, odd): (Vec<_>, Vec<_>) = skipped
        .iter()
        .partition(|(_, why)| why.ends_with("(fewer than 2 dimensions)"));
    let mut parts: Vec<String> = odd.iter().map(|(n, why)| format!("{n} ({why})")).collect();
    match flat.len() {
        0 => {}
        1..=3 => parts.extend(flat.iter().map(|(n, why)| format!("{n} ({why})"))),
        k => parts.push(format!(
            "{k} tensors of fewer than 2 dimensions ({}, ..., {})",
            flat.iter()
                .take(2)
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            flat[k - 1].0
        )),
    }
    parts.join(", ")
}

/// Why a weight cannot be decomposed, if it cannot: every entry zero (no normalized state, so no
/// entanglement, and nothing to compress) or a non-finite entry. `None` for a usable weight.
pub fn unusable(w: &WeightMatrix) -> Option<String> {
    let (mut nonzero, mut bad) = (false, None);
    for j in 0..w.matrix.ncols() {
        for i in 0..w.matrix.nrows() {
            let v = w.matrix[(i, j)];
            if !v.is_finite() {
                bad.get_or_insert((i, j, v));
            }
            nonzero |= v != 0.0;
        }
    }
    if let Some((i, j, v)) = bad {
        return Some(format!("entry ({i}, {j}) is {v}"));
    }
    (!nonzero).then(|| {
        "every entry is zero: no entanglement is defined and there is nothing to compress".to_string()
    })
}

/// Every F32/F64 tensor of two or more dimensions as a matrix (sorted by name), and the names
/// of the tensors left out with why (1-D biases and buffers, integer or half-precision dtypes).
///
/// # Errors
/// [`NnError::WeightsFile`]: not safetensors, an inconsistent tensor, no weight at all.
pub fn weight_matrices(bytes: &[u8], file: &str) -> Result<(Vec<WeightMatrix>, Skipped)> {
    let bad = |reason: String| bad_file(file, reason);
    let (st, names) = open(bytes, file)?;
    let (mut out, mut skipped) = (Vec::new(), Vec::new());
    for name in &names {
        let view = st.tensor(name).map_err(|e| bad(e.to_string()))?;
        let shape = view.shape().to_vec();
        let Some((rows, cols)) = tnml_core::modes::matrix_shape(&shape) else {
            skipped.push((
                name.to_string(),
                format!("shape {shape:?} (fewer than 2 dimensions)"),
            ));
            continue;
        };
        if !matches!(view.dtype(), Dtype::F32 | Dtype::F64) {
            skipped.push((name.to_string(), format!("dtype {:?}", view.dtype())));
            continue;
        }
        if rows == 0 || cols == 0 {
            skipped.push((name.to_string(), format!("shape {shape:?} (empty)")));
            continue;
        }
        let Some(matrix) = matrix_of(&view, name, rows, cols).map_err(bad)? else {
            continue; // F32/F64 checked above
        };
        out.push(WeightMatrix {
            name: name.to_string(),
            shape,
            matrix,
        });
    }
    if out.is_empty() {
        return Err(bad(format!(
            "holds no weight of 2 or more dimensions in F32 or F64 (left out: {})",
            skipped
                .iter()
                .map(|(n, why)| format!("{n}: {why}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok((out, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    #[test]
    fn every_weight_as_a_matrix_and_what_was_left_out() {
        let conv: Vec<u8> = (0..6 * 25).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let fc: Vec<u8> = (0..12).flat_map(|i| (i as f64).to_le_bytes()).collect();
        let bias: Vec<u8> = [0f32; 6].iter().flat_map(|x| x.to_le_bytes()).collect();
        let steps: Vec<u8> = 3i64.to_le_bytes().to_vec();
        let bytes = safetensors::serialize(
            [
                (
                    "conv.weight",
                    TensorView::new(Dtype::F32, vec![6, 1, 5, 5], &conv).unwrap(),
                ),
                ("fc.weight", TensorView::new(Dtype::F64, vec![3, 4], &fc).unwrap()),
                ("conv.bias", TensorView::new(Dtype::F32, vec![6], &bias).unwrap()),
                ("steps", TensorView::new(Dtype::I64, vec![1, 1], &steps).unwrap()),
            ],
            None,
        )
        .unwrap();
        let (w, skipped) = weight_matrices(&bytes, "m.safetensors").unwrap();
        assert_eq!(
            w.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["conv.weight", "fc.weight"]
        );
        assert_eq!((w[0].matrix.nrows(), w[0].matrix.ncols()), (6, 25));
        assert_eq!(w[0].matrix[(1, 2)], 27.0); // row-major (out, in kh kw)
        assert_eq!(w[1].matrix[(2, 3)], 11.0);
        assert_eq!(skipped.len(), 2);
        let only_bias = safetensors::serialize(
            [("b", TensorView::new(Dtype::F32, vec![6], &bias).unwrap())],
            None,
        )
        .unwrap();
        let err = weight_matrices(&only_bias, "b.safetensors")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("holds no weight") && err.contains("b: shape [6]"),
            "{err}"
        );
        assert!(weight_matrices(b"junk", "j").is_err());
    }
}

#[cfg(test)]
mod skipped_tests {
    use super::describe_skipped;

    #[test]
    fn many_flat_tensors_are_counted_and_odd_ones_listed() {
        let flat = |n: &str| (n.to_string(), "shape [8] (fewer than 2 dimensions)".to_string());
        let mut s = vec![flat("a.bias"), flat("b.bias"), flat("c.bias"), flat("d.bias")];
        s.push(("w".to_string(), "all zero".to_string()));
        assert_eq!(
            describe_skipped(&s),
            "w (all zero), 4 tensors of fewer than 2 dimensions (a.bias, b.bias, ..., d.bias)"
        );
        assert_eq!(
            describe_skipped(&s[..1]),
            "a.bias (shape [8] (fewer than 2 dimensions))"
        );
        assert_eq!(describe_skipped(&[]), "");
    }
}

//! Data in and out: the datasets as the CLI reads them, tensors of a safetensors file, the
//! default mode factorization of a weight.

use std::collections::BTreeMap;
use std::path::PathBuf;

use numpy::ndarray::{Array2, ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayDyn};
use pyo3::prelude::*;
use safetensors::{Dtype, SafeTensors};
use tnml_data::{load_gray, resolve_data_dir, Dataset, Selection, Split};

use crate::{io_error, value_error};

/// Pixels `(n, side*side)` float32 in `[0, 1]` and labels `(n,)` int64 of a dataset split, read
/// exactly as `tnml mps` reads it. `shuffle_seed` takes a seeded random subset of `limit`
/// images (all, shuffled, without a limit), as `tnml mps train --seed S --train-limit N` does
/// for its training set; without it the first `limit` images, as `--test-limit` does.
#[pyfunction]
#[pyo3(signature = (name="mnist-sample", split="train", image_size=14, limit=None, shuffle_seed=None, data_dir=None))]
#[allow(clippy::type_complexity)]
pub fn load_dataset<'py>(
    py: Python<'py>,
    name: &str,
    split: &str,
    image_size: usize,
    limit: Option<usize>,
    shuffle_seed: Option<u64>,
    data_dir: Option<PathBuf>,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray1<i64>>)> {
    let dataset = Dataset::from_cli_name(name).ok_or_else(|| {
        value_error(format!(
            "unknown dataset {name:?}: use mnist-sample, mnist, fashion-mnist (cifar10 is colour; the MPS classifier takes grey images)"
        ))
    })?;
    let split = match split {
        "train" => Split::Train,
        "test" => Split::Test,
        s => return Err(value_error(format!("split {s:?}: use \"train\" or \"test\""))),
    };
    let (dir, _) = resolve_data_dir(dataset, data_dir.as_deref());
    let select = match shuffle_seed {
        Some(seed) => Selection {
            subset: Some((limit.unwrap_or(usize::MAX), seed)),
            limit: None,
        },
        None => Selection { subset: None, limit },
    };
    let g = py
        .detach(|| load_gray(dataset, &dir, split, select, image_size))
        .map_err(|e| match e {
            tnml_data::DataError::Io { file, source } => io_error(&file, &source),
            tnml_data::DataError::ImageSize { size, height, width } => value_error(format!(
                "image_size={size} does not fit {height}x{width} images: use {height} or {}",
                height / 2
            )),
            ref e @ tnml_data::DataError::NotFound { cli_name, .. } => {
                pyo3::exceptions::PyFileNotFoundError::new_err(format!(
                    "{e}. Fetch it with `tnml data fetch --dataset {cli_name}` (the tnml command \
                     line; needs network), or pass data_dir= a folder that has the files"
                ))
            }
            e => value_error(e),
        })?;
    let n = g.labels.len();
    let x = Array2::from_shape_vec((n, g.side * g.side), g.pixels).map_err(value_error)?;
    let y: Vec<i64> = g.labels.iter().map(|&l| l as i64).collect();
    Ok((x.into_pyarray(py), PyArray1::from_vec(py, y)))
}

/// IEEE half precision to f32.
fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = (bits >> 10) & 0x1f;
    let frac = f32::from(bits & 0x3ff);
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f32.powi(i32::from(e) - 15),
    }
}

/// Every floating-point tensor of a safetensors file as float64 arrays of their own shape
/// (F64, F32, F16, BF16), and `(name, dtype)` of the tensors skipped (integers, booleans).
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn read_safetensors(
    py: Python<'_>,
    path: PathBuf,
) -> PyResult<(
    BTreeMap<String, Bound<'_, PyArrayDyn<f64>>>,
    Vec<(String, String)>,
)> {
    let bytes = std::fs::read(&path).map_err(|e| io_error(&path, &e))?;
    let bad = |why: String| value_error(format!("{}: {why}", path.display()));
    let st =
        SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
    let (mut out, mut skipped) = (BTreeMap::new(), Vec::new());
    for (name, view) in st.tensors() {
        let data = view.data();
        let values: Vec<f64> = match view.dtype() {
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|c| f64::from(f16_to_f32(u16::from_le_bytes([c[0], c[1]]))))
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|c| f64::from(f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16)))
                .collect(),
            other => {
                skipped.push((name, format!("{other:?}")));
                continue;
            }
        };
        let shape = view.shape().to_vec();
        let a = ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|_| {
            bad(format!(
                "tensor {name:?} of shape {shape:?} holds another number of values"
            ))
        })?;
        out.insert(name, a.into_pyarray(py));
    }
    Ok((out, skipped))
}

/// `(in_modes, out_modes)` chosen for a `rows x cols` weight with at most `sites` sites
/// ([`tnml_core::modes::layer_modes`]); a lopsided split is a ValueError naming the size to pad to.
#[pyfunction]
#[pyo3(signature = (rows, cols, sites = tnml_core::modes::DEFAULT_SITES))]
pub fn default_layer_modes(rows: usize, cols: usize, sites: usize) -> PyResult<(Vec<usize>, Vec<usize>)> {
    if rows == 0 || cols == 0 {
        return Err(value_error(format!(
            "a {rows} x {cols} weight is empty: it has no MPO"
        )));
    }
    if !(2..=tnml_core::modes::MAX_SITES).contains(&sites) {
        return Err(value_error(format!(
            "sites={sites}: give 2 to {} sites",
            tnml_core::modes::MAX_SITES
        )));
    }
    tnml_core::modes::layer_modes(rows, cols, sites).map_err(value_error)
}

#[cfg(test)]
mod tests {
    #[test]
    fn half_precision() {
        assert_eq!(super::f16_to_f32(0x3c00), 1.0);
        assert_eq!(super::f16_to_f32(0xc000), -2.0);
        assert_eq!(super::f16_to_f32(0x0001), 2f32.powi(-24));
    }
}

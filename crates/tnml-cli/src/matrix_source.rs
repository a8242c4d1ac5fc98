//! Where a dense matrix comes from: a tensor in a safetensors file (PyTorch, NumPy, tnml), or a
//! seeded synthetic matrix.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safetensors::{Dtype, SafeTensors};
use tnml_core::faer::Mat;

/// A seeded synthetic matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Synthetic {
    /// Gaussian kernel exp(-(u_i - v_j)^2 / 2 sigma^2) on a grid: smooth, low TT rank.
    Smooth,
    /// i.i.d. N(0, 1/cols) entries: near-maximal entanglement, compresses badly.
    Random,
    /// The identity (rows must equal cols): a product operator, bond dimension 1.
    Identity,
}

impl Synthetic {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Smooth => "smooth",
            Self::Random => "random",
            Self::Identity => "identity",
        }
    }

    /// Builds a `rows x cols` matrix.
    pub fn build(self, rows: usize, cols: usize, seed: u64) -> Result<Mat<f64>> {
        Ok(match self {
            Self::Smooth => {
                let sigma = 0.1;
                Mat::from_fn(rows, cols, |i, j| {
                    let u = i as f64 / rows.max(2).saturating_sub(1) as f64;
                    let v = j as f64 / cols.max(2).saturating_sub(1) as f64;
                    (-(u - v).powi(2) / (2.0 * sigma * sigma)).exp()
                })
            }
            Self::Random => {
                let mut rng = StdRng::seed_from_u64(seed);
                let scale = (1.0 / cols as f64).sqrt();
                // Box-Muller keeps the dependency list short.
                Mat::from_fn(rows, cols, |_, _| {
                    let (a, b): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
                    scale * (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
                })
            }
            Self::Identity => {
                if rows != cols {
                    bail!("the identity needs a square matrix: out_modes give {rows} rows, in_modes {cols} columns");
                }
                Mat::identity(rows, cols)
            }
        })
    }
}

/// Reads the 2-D tensor `name` (F32 or F64) from a safetensors file.
///
/// With `name = None` the file must hold exactly one tensor.
pub fn read_safetensors_matrix(path: &Path, name: Option<&str>) -> Result<(String, Mat<f64>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not a valid safetensors file", path.display()))?;
    let mut names = st.names();
    names.sort();
    let name = match name {
        Some(n) => n.to_string(),
        None if names.len() == 1 => names[0].to_string(),
        None => bail!(
            "{} holds {} tensors ({}): pick one with --tensor",
            path.display(),
            names.len(),
            names.join(", ")
        ),
    };
    let view = st.tensor(&name).with_context(|| {
        format!(
            "no tensor {name:?} in {} (it has: {})",
            path.display(),
            names.join(", ")
        )
    })?;
    let shape = view.shape().to_vec();
    if shape.len() != 2 {
        bail!("tensor {name:?} has shape {shape:?}: a matrix (2 dimensions) is needed");
    }
    if shape[0] == 0 || shape[1] == 0 {
        bail!("tensor {name:?} has shape {shape:?}: an empty matrix has no MPO");
    }
    let (elems, width) = match view.dtype() {
        Dtype::F32 => (view.data().len() / 4, 4),
        Dtype::F64 => (view.data().len() / 8, 8),
        _ => (0, 0),
    };
    if width > 0 && shape[0].checked_mul(shape[1]) != Some(elems) {
        bail!("tensor {name:?} has shape {shape:?} but {elems} values: the file is inconsistent");
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
        other => bail!("tensor {name:?} has dtype {other:?}: F32 or F64 is needed"),
    };
    let (rows, cols) = (shape[0], shape[1]);
    Ok((name, Mat::from_fn(rows, cols, |i, j| values[i * cols + j])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    #[test]
    fn reads_f32_and_rejects_bad_files() {
        let tmp = tempfile::tempdir().unwrap();
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let bytes = safetensors::serialize(
            [("w", TensorView::new(Dtype::F32, vec![2, 3], &data).unwrap())],
            None,
        )
        .unwrap();
        let path = tmp.path().join("w.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let (name, m) = read_safetensors_matrix(&path, None).unwrap();
        assert_eq!((name.as_str(), m.nrows(), m.ncols(), m[(1, 2)]), ("w", 2, 3, 6.0));
        let err = read_safetensors_matrix(&path, Some("b")).unwrap_err();
        assert!(format!("{err:#}").contains("no tensor \"b\""), "{err:#}");
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = read_safetensors_matrix(&path, None).unwrap_err();
        assert!(
            format!("{err:#}").contains("not a valid safetensors file"),
            "{err:#}"
        );
    }
}

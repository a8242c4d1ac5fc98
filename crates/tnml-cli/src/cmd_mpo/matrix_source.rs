//! Where a dense matrix comes from: a tensor in a safetensors file (PyTorch, NumPy, tnml), or a
//! seeded synthetic matrix.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
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

/// Reads the 2-D tensor `name` (F32 or F64) from a safetensors file
/// ([`tnml_nn::weights::matrix_from_safetensors`]); with `name = None` the file must hold
/// exactly one tensor.
pub fn read_safetensors_matrix(path: &Path, name: Option<&str>) -> Result<(String, Mat<f64>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(tnml_nn::weights::matrix_from_safetensors(
        &bytes,
        name,
        &path.display().to_string(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;

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

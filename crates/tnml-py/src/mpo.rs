//! `tnml._tnml.MPO`: [`tnml_core::Mpo`] for NumPy arrays.

use numpy::ndarray::{Array2, Array4};
use numpy::PyUntypedArrayMethods;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2, PyReadonlyArray4};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tnml_core::faer::Mat;
use tnml_core::{Mpo, TruncParams, TruncReport};

use crate::value_error;

/// A matrix product operator (tensor-train matrix) with cores `[left, in, out, right]`.
#[pyclass(module = "tnml._tnml", name = "MPO", frozen)]
pub struct PyMpo {
    inner: std::sync::RwLock<Mpo>,
    /// What the last truncation (from_dense or truncate) dropped, bond by bond.
    discarded: std::sync::RwLock<TruncReport>,
}

/// Truncation parameters from the optional Python arguments (neither: exact).
fn trunc_params(max_bond: Option<usize>, cutoff: Option<f64>) -> PyResult<TruncParams> {
    let params = TruncParams::new(max_bond, cutoff.unwrap_or(0.0));
    params.validate().map_err(value_error)?;
    Ok(params)
}

fn truncation_dicts<'py>(py: Python<'py>, report: &TruncReport) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for b in &report.bonds {
        let d = PyDict::new(py);
        d.set_item("bond", b.bond)?;
        d.set_item("kept", b.kept)?;
        d.set_item("full_rank", b.full_rank)?;
        d.set_item("discarded_weight", b.discarded_weight)?;
        let fraction = if report.initial_norm2 > 0.0 {
            b.discarded_norm2 / report.initial_norm2
        } else {
            0.0
        };
        d.set_item("discarded_fraction", fraction)?;
        out.append(d)?;
    }
    Ok(out)
}

impl PyMpo {
    fn new(mpo: Mpo, discarded: TruncReport) -> Self {
        Self {
            inner: std::sync::RwLock::new(mpo),
            discarded: std::sync::RwLock::new(discarded),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Mpo> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[pymethods]
impl PyMpo {
    /// TT-SVD of `w` (`(prod out_modes, prod in_modes)`, float64, C order) with the pair
    /// `(in_k, out_k)` on site k; `max_bond` and `cutoff` (relative discarded weight per SVD)
    /// truncate, neither keeps it exact.
    #[staticmethod]
    #[pyo3(signature = (w, in_modes, out_modes, max_bond=None, cutoff=None))]
    fn from_dense(
        py: Python<'_>,
        w: PyReadonlyArray2<'_, f64>,
        in_modes: Vec<usize>,
        out_modes: Vec<usize>,
        max_bond: Option<usize>,
        cutoff: Option<f64>,
    ) -> PyResult<Self> {
        let params = trunc_params(max_bond, cutoff)?;
        let a = w.as_array();
        let m = Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]]);
        let (mpo, report) = py
            .detach(|| Mpo::from_dense(m.as_ref(), &in_modes, &out_modes, &params))
            .map_err(value_error)?;
        Ok(Self::new(mpo, report))
    }

    /// An MPO from its cores, each `[left, in, out, right]` float64, boundary bonds 1.
    #[staticmethod]
    fn from_cores(cores: Vec<PyReadonlyArray4<'_, f64>>) -> PyResult<Self> {
        let cores = cores
            .iter()
            .map(|c| {
                let s = c.shape();
                ([s[0], s[1], s[2], s[3]], c.as_array().iter().copied().collect())
            })
            .collect();
        Ok(Self::new(
            Mpo::from_cores(cores).map_err(value_error)?,
            TruncReport::default(),
        ))
    }

    /// The cores, `[left, in, out, right]` each (copies).
    #[getter]
    fn cores<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mpo = self.read();
        let out = PyList::empty(py);
        for k in 0..mpo.len() {
            let (s, data) = mpo.core(k).map_err(value_error)?;
            let a = Array4::from_shape_vec((s[0], s[1], s[2], s[3]), data.to_vec()).map_err(value_error)?;
            out.append(a.into_pyarray(py))?;
        }
        Ok(out)
    }

    /// Input modes.
    #[getter]
    fn in_modes(&self) -> Vec<usize> {
        self.read().in_modes().to_vec()
    }

    /// Output modes.
    #[getter]
    fn out_modes(&self) -> Vec<usize> {
        self.read().out_modes().to_vec()
    }

    /// Bond dimensions, bond 1 first.
    #[getter]
    fn bond_dims(&self) -> Vec<usize> {
        self.read().bond_dims()
    }

    /// Number of parameters (entries of all cores).
    #[getter]
    fn num_params(&self) -> usize {
        self.read().num_params()
    }

    /// `(rows, cols)` of the dense matrix: `(prod out_modes, prod in_modes)`.
    #[getter]
    fn dense_shape(&self) -> (usize, usize) {
        self.read().dense_shape()
    }

    /// Compression ratio rho = MPO parameters / dense parameters (Gao et al. 2020).
    #[getter]
    fn compression(&self) -> f64 {
        self.read().compression().ratio()
    }

    /// What the last truncation dropped: per bond `bond`, `kept`, `full_rank`,
    /// `discarded_weight` (relative to the norm at that split) and `discarded_fraction`
    /// (relative to the norm before truncating; these add up to the squared relative error).
    #[getter]
    fn discarded<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let d = self
            .discarded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        truncation_dicts(py, &d)
    }

    /// Frobenius norm.
    fn norm(&self) -> f64 {
        self.read().norm()
    }

    /// The dense matrix `(prod out_modes, prod in_modes)`, float64.
    fn to_dense<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, numpy::PyArray2<f64>>> {
        let m = {
            let mpo = self.read();
            py.detach(|| mpo.to_dense()).map_err(value_error)?
        };
        Ok(Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| m[(i, j)]).into_pyarray(py))
    }

    /// Truncates in place (canonical form, then SVDs); returns per bond what was dropped.
    #[pyo3(signature = (max_bond=None, cutoff=None))]
    fn truncate<'py>(
        &self,
        py: Python<'py>,
        max_bond: Option<usize>,
        cutoff: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let params = trunc_params(max_bond, cutoff)?;
        let report = {
            let mut guard = self
                .inner
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mpo: &mut Mpo = &mut guard;
            py.detach(|| mpo.truncate(&params)).map_err(value_error)?
        };
        let out = truncation_dicts(py, &report)?;
        *self
            .discarded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = report;
        Ok(out)
    }

    /// Entanglement per bond of `W / ||W||` with `(in_k, out_k)` grouped per site: `bond`,
    /// `bond_dim`, `left_dim`, `right_dim`, `entropy` (von Neumann, natural log), `renyi2`,
    /// `bound` (`ln min(bond_dim, left_dim, right_dim)`), `normalized` (entropy / bound),
    /// `spectrum` (Schmidt values, `sum s^2 = 1`) and `discarded_weight`, whose entry `D - 1` is
    /// the weight a truncation to `D` values would drop (the last is 0).
    fn entanglement<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let profile = {
            let mpo = self.read();
            py.detach(|| mpo.entanglement_profile()).map_err(value_error)?
        };
        let out = PyList::empty(py);
        for b in &profile.bonds {
            let d = PyDict::new(py);
            d.set_item("bond", b.bond)?;
            d.set_item("bond_dim", b.bond_dim)?;
            d.set_item("left_dim", b.left_dim)?;
            d.set_item("right_dim", b.right_dim)?;
            d.set_item("entropy", b.entropy)?;
            d.set_item("renyi2", b.renyi2)?;
            d.set_item("bound", b.bound)?;
            d.set_item("normalized", b.normalized())?;
            d.set_item("spectrum", PyArray1::from_slice(py, &b.spectrum))?;
            let dropped: Vec<f64> = (1..=b.spectrum.len()).map(|k| b.discarded_weight_at(k)).collect();
            d.set_item("discarded_weight", PyArray1::from_vec(py, dropped))?;
            out.append(d)?;
        }
        Ok(out)
    }

    fn __len__(&self) -> usize {
        self.read().len()
    }

    fn __repr__(&self) -> String {
        let m = self.read();
        format!(
            "MPO(in_modes={:?}, out_modes={:?}, bond_dims={:?}, num_params={}, compression={:.4})",
            m.in_modes(),
            m.out_modes(),
            m.bond_dims(),
            m.num_params(),
            m.compression().ratio()
        )
    }
}

/// The MPOs of an MPO file (`tnml mpo compress`'s `mpo.safetensors`, older files included, or
/// the MPO layers of a network's `model.safetensors`): `[(name, MPO)]` in name order.
#[pyfunction]
pub fn read_mpo_file(path: std::path::PathBuf) -> PyResult<Vec<(String, PyMpo)>> {
    let bytes = std::fs::read(&path)
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("{}: {e}", path.display())))?;
    let mpos =
        tnml_core::mpo_file::from_safetensors(&bytes, &path.display().to_string()).map_err(value_error)?;
    Ok(mpos
        .into_iter()
        .map(|(name, mpo)| (name, PyMpo::new(mpo, TruncReport::default())))
        .collect())
}

/// The bytes of an MPO file holding `mpos` (`[(name, MPO)]`), in the format `tnml mpo compress`
/// writes (the Python side writes them whole to the file).
#[pyfunction]
pub fn mpo_file_bytes(mpos: Vec<(String, PyRef<'_, PyMpo>)>, source: &str) -> PyResult<Vec<u8>> {
    let guards: Vec<_> = mpos.iter().map(|(_, m)| m.read()).collect();
    let named: Vec<(&str, &Mpo)> = mpos
        .iter()
        .zip(&guards)
        .map(|((n, _), g)| (n.as_str(), &**g))
        .collect();
    tnml_core::mpo_file::to_safetensors(&named, source).map_err(value_error)
}

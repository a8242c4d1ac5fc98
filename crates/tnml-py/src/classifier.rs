//! `tnml._tnml.Model`: a trained [`MpsClassifier`] (the Python `MPSClassifier` holds one as
//! `model_`): scores, predictions, the model file.

use std::path::PathBuf;

use numpy::ndarray::Array2;
use numpy::PyUntypedArrayMethods;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tnml_mps::{embed_batch, Decision, FeatureMap, MpsClassifier, Scores};

use crate::{io_error, mps_error, value_error};

/// A trained MPS classifier.
#[pyclass(module = "tnml._tnml", frozen)]
pub struct Model {
    pub(crate) inner: MpsClassifier,
}

/// The name of a feature map as the Python options spell it.
pub(crate) fn map_name(m: FeatureMap) -> String {
    match m {
        FeatureMap::Trig => "trig".into(),
        FeatureMap::TrigD(d) => format!("trig{d}"),
        FeatureMap::Linear => "linear".into(),
    }
}

/// A feature map from its Python name: `trig`, `trigN` (N = 2..16), `linear`.
pub(crate) fn parse_map(s: &str) -> PyResult<FeatureMap> {
    s.parse::<FeatureMap>().map_err(mps_error)
}

impl Model {
    fn scores(&self, py: Python<'_>, x: &PyReadonlyArray2<'_, f32>) -> PyResult<Scores> {
        let sites = self.inner.num_sites();
        if x.shape()[1] != sites {
            let (h, w) = self.inner.image();
            return Err(value_error(format!(
                "X has {} columns, the model takes {h}x{w} = {sites} pixels per image",
                x.shape()[1]
            )));
        }
        let pixels = x.as_slice().map_err(value_error)?.to_vec();
        let map = self.inner.feature_map();
        py.detach(|| {
            let feats = embed_batch(map, &pixels, sites)?;
            self.inner.scores(&feats)
        })
        .map_err(mps_error)
    }
}

#[pymethods]
impl Model {
    /// Normalized scores `(n, L)` and the log of the per-image scale removed:
    /// `f^l(x_n) = scores[n, l] * exp(log_scale[n])`. X: `(n, h*w)` float32, C order, in [0, 1].
    #[allow(clippy::type_complexity)]
    fn scores_normalized<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<(Bound<'py, PyArray2<f64>>, Bound<'py, PyArray1<f64>>)> {
        let s = self.scores(py, &x)?;
        let v = Array2::from_shape_vec(
            (s.log_scale.len(), s.num_labels),
            s.values.iter().map(|&v| f64::from(v)).collect(),
        )
        .map_err(value_error)?;
        Ok((v.into_pyarray(py), PyArray1::from_vec(py, s.log_scale)))
    }

    /// Predicted classes `(n,)` int64 by the model's decision rule.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let s = self.scores(py, &x)?;
        let d = self.inner.decision();
        let pred: Vec<i64> = s
            .values
            .chunks(s.num_labels)
            .map(|row| d.pick(row) as i64)
            .collect();
        Ok(PyArray1::from_vec(py, pred))
    }

    /// Number of classes.
    #[getter]
    fn num_labels(&self) -> usize {
        self.inner.num_labels()
    }

    /// `(height, width)` of the images the sites stand for.
    #[getter]
    fn image_shape(&self) -> (usize, usize) {
        self.inner.image()
    }

    /// The feature map's name.
    #[getter]
    fn feature_map(&self) -> String {
        map_name(self.inner.feature_map())
    }

    /// `"magnitude"` (argmax |f|, the quadratic cost) or `"signed"` (argmax f, softmax logits).
    #[getter]
    fn decision(&self) -> &'static str {
        match self.inner.decision() {
            Decision::Magnitude => "magnitude",
            Decision::Signed => "signed",
        }
    }

    /// Site carrying the label index.
    #[getter]
    fn label_site(&self) -> usize {
        self.inner.label_site()
    }

    /// Bond dimensions, bond 1 first.
    #[getter]
    fn bond_dims(&self) -> Vec<usize> {
        self.inner.bond_dims()
    }

    /// Number of parameters.
    #[getter]
    fn num_params(&self) -> usize {
        self.inner.num_params()
    }

    /// The model file's bytes (the format of `tnml mps train`'s `model.safetensors`).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.inner.to_safetensors().map_err(mps_error)?))
    }

    /// Writes the model file: to a temporary file beside `path`, then renamed, so an
    /// interrupted save never leaves half a model.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        let bytes = self.inner.to_safetensors().map_err(mps_error)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                io_error(&path, &e)
            })
    }

    /// Reads a model file written by `save` or by `tnml mps train`.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        let bytes = std::fs::read(&path).map_err(|e| io_error(&path, &e))?;
        let inner =
            MpsClassifier::from_safetensors(&bytes, &path.display().to_string()).map_err(mps_error)?;
        Ok(Self { inner })
    }
}

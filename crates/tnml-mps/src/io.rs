//! Saving and loading a classifier as safetensors: tensors `site.000` .. (f64; `[left, d, right]`,
//! the label site `[left, d, L, right]`) and the metadata (JSON strings in the header):
//! `format = "tnml-mps-classifier"`, `num_labels`, `label_site`, `feature_map`, `image_height`,
//! `image_width`, `decision` (`"magnitude"` or `"signed"`; files without it predate it and are
//! `magnitude`), `tnml_version`. Values are stored bit-exactly.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use tnml_core::SiteTensor;

use crate::error::{MpsError, Result};
use crate::feature::FeatureMap;
use crate::model::{Decision, MpsClassifier};

/// The `format` value written into every model file.
pub const FORMAT: &str = "tnml-mps-classifier";

impl MpsClassifier {
    /// The model as safetensors bytes.
    ///
    /// # Errors
    /// Serialization failure (not expected for a valid model).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        self.to_safetensors_tagged(&[])
    }

    /// The model as safetensors bytes with extra metadata `tags` (`key -> value`, for example
    /// the sweep a checkpoint was saved after: `tnml.step`); keys of the format itself win.
    ///
    /// # Errors
    /// Serialization failure (not expected for a valid model).
    pub fn to_safetensors_tagged(&self, tags: &[(&str, String)]) -> Result<Vec<u8>> {
        let d = self.feature_map.dim();
        let bytes: Vec<Vec<u8>> = self
            .sites
            .iter()
            .map(|s| s.data().iter().flat_map(|x| x.to_le_bytes()).collect())
            .collect();
        let views = self
            .sites
            .iter()
            .zip(&bytes)
            .enumerate()
            .map(|(k, (s, b))| {
                let shape = if k == self.label_site {
                    vec![s.left(), d, self.num_labels, s.right()]
                } else {
                    vec![s.left(), d, s.right()]
                };
                TensorView::new(Dtype::F64, shape, b).map(|v| (format!("site.{k:03}"), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| MpsError::ModelFile {
                file: "(memory)".into(),
                reason: e.to_string(),
            })?;
        let mut meta: HashMap<String, String> =
            tags.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect();
        meta.extend([
            ("format".to_string(), FORMAT.to_string()),
            ("num_labels".to_string(), self.num_labels.to_string()),
            ("label_site".to_string(), self.label_site.to_string()),
            (
                "feature_map".to_string(),
                serde_json::to_string(&self.feature_map).unwrap_or_default(),
            ),
            ("image_height".to_string(), self.image.0.to_string()),
            ("image_width".to_string(), self.image.1.to_string()),
            (
                "decision".to_string(),
                serde_json::to_string(&self.decision).unwrap_or_default(),
            ),
            ("tnml_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ]);
        safetensors::serialize(views, Some(meta)).map_err(|e| MpsError::ModelFile {
            file: "(memory)".into(),
            reason: e.to_string(),
        })
    }

    /// Parses a model from safetensors bytes; `file` names the source in errors.
    ///
    /// # Errors
    /// Not safetensors, another format, missing or inconsistent metadata or tensors.
    pub fn from_safetensors(bytes: &[u8], file: &str) -> Result<Self> {
        let bad = |reason: String| MpsError::ModelFile {
            file: file.to_string(),
            reason,
        };
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let get = |k: &str| {
            meta.get(k)
                .cloned()
                .ok_or_else(|| bad(format!("metadata has no {k:?}")))
        };
        let format = get("format")?;
        if format != FORMAT {
            return Err(bad(format!(
                "format is {format:?}, expected {FORMAT:?} (a tnml MPS classifier)"
            )));
        }
        let num = |k: &str| -> Result<usize> {
            get(k)?
                .parse()
                .map_err(|_| bad(format!("metadata {k:?} is not a number")))
        };
        let (num_labels, label_site, h, w) = (
            num("num_labels")?,
            num("label_site")?,
            num("image_height")?,
            num("image_width")?,
        );
        let feature_map: FeatureMap =
            serde_json::from_str(&get("feature_map")?).map_err(|e| bad(format!("feature_map: {e}")))?;
        feature_map.validate().map_err(|e| bad(e.to_string()))?;
        let d = feature_map.dim();
        // sizes read from the file are checked against the file itself before anything is
        // allocated: one tensor per pixel
        if h.checked_mul(w) != Some(st.len()) {
            return Err(bad(format!(
                "metadata says {h}x{w} pixels, the file holds {} site tensors",
                st.len()
            )));
        }
        let mut sites = Vec::with_capacity(h * w);
        for k in 0..h * w {
            let name = format!("site.{k:03}");
            let t = st
                .tensor(&name)
                .map_err(|_| bad(format!("tensor {name} is missing")))?;
            if t.dtype() != Dtype::F64 {
                return Err(bad(format!("{name} has dtype {:?}, expected F64", t.dtype())));
            }
            let shape = t.shape();
            let (left, phys, right) = match (k == label_site, shape) {
                (true, [l, dd, ll, r]) if *dd == d && *ll == num_labels => (*l, d * num_labels, *r),
                (false, [l, dd, r]) if *dd == d => (*l, d, *r),
                _ => {
                    return Err(bad(format!(
                        "{name} has shape {shape:?}, which does not fit d = {d}, L = {num_labels}"
                    )))
                }
            };
            let data = t
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect();
            sites.push(SiteTensor::new(left, phys, right, data).map_err(|e| bad(format!("{name}: {e}")))?);
        }
        if st.len() != h * w {
            return Err(bad(format!(
                "{} tensors for a {h}x{w} image ({} sites)",
                st.len(),
                h * w
            )));
        }
        let decision: Decision = match meta.get("decision") {
            None => Decision::Magnitude,
            Some(v) => serde_json::from_str(v)
                .map_err(|_| bad(format!("decision {v:?} is neither \"magnitude\" nor \"signed\"")))?,
        };
        let mut model = MpsClassifier::from_sites(sites, label_site, num_labels, feature_map, (h, w))
            .map_err(|e| bad(e.to_string()))?;
        model.decision = decision;
        Ok(model)
    }

    /// The metadata value `key` of a model file's header (`None` when absent), without
    /// reading the tensors.
    ///
    /// # Errors
    /// I/O errors, a file that is not safetensors.
    pub fn file_tag(path: &Path, key: &str) -> Result<Option<String>> {
        let bytes = std::fs::read(path).map_err(|source| MpsError::Io {
            file: path.display().to_string(),
            source,
        })?;
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| MpsError::ModelFile {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(meta.metadata().as_ref().and_then(|m| m.get(key).cloned()))
    }

    /// Reads a model file.
    ///
    /// # Errors
    /// I/O errors and everything [`MpsClassifier::from_safetensors`] rejects.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| MpsError::Io {
            file: path.display().to_string(),
            source,
        })?;
        Self::from_safetensors(&bytes, &path.display().to_string())
    }
}

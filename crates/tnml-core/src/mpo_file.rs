//! The one MPO file format: named MPOs in a safetensors file, the cores of MPO `name` as
//! tensors `<name>.cores.<k>` (`k = 0, 1, ...`), each `[left, in, out, right]` — the layout of an
//! MPO layer in a network's PyTorch state_dict, so one reader serves both. Written in `f64`
//! with metadata `format = tnml-mpo`; read in `f64` or `f32`. The modes are the cores' shapes.
//!
//! Files of older tnml versions are read too: `mpo compress` wrote `core.000, core.001, ...`
//! (one MPO, read under the name `mpo`), `mpo compress --auto` wrote `format =
//! tnml-mpo-layers` with the same tensor names as now.
//!
//! Everything read is checked before use: four dimensions per core, consecutive core indices
//! from 0, boundary bonds of 1 and matching inner bonds (by [`Mpo::from_cores`]), finite values.

use std::collections::{BTreeMap, HashMap};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::error::{CoreError, Result};
use crate::mpo::Mpo;

/// `format` in the metadata of the files this module writes.
pub const FORMAT: &str = "tnml-mpo";

/// The name an old single-MPO file's cores (`core.000`, ...) are read under.
pub const OLD_SINGLE_NAME: &str = "mpo";

fn file_error(file: &str, reason: impl Into<String>) -> CoreError {
    CoreError::MpoFile {
        file: file.to_string(),
        reason: reason.into(),
    }
}

/// The bytes of a safetensors file holding `mpos` (name, MPO) in `f64`, with `source` in the
/// metadata.
///
/// # Errors
/// A duplicate or empty name, or a name containing `.cores.`.
pub fn to_safetensors(mpos: &[(&str, &Mpo)], source: &str) -> Result<Vec<u8>> {
    let mut seen = std::collections::HashSet::new();
    let mut blobs = Vec::new();
    for (name, mpo) in mpos {
        if name.is_empty() || name.contains(".cores.") || !seen.insert(*name) {
            return Err(file_error(
                source,
                format!("MPO name {name:?}: names must be non-empty, unique and without \".cores.\""),
            ));
        }
        for k in 0..mpo.len() {
            let (shape, data) = mpo.core(k)?;
            let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            blobs.push((format!("{name}.cores.{k}"), shape.to_vec(), bytes));
        }
    }
    let views = blobs
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F64, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| file_error(source, e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("source".to_string(), source.to_string()),
    ]);
    safetensors::serialize(views, Some(meta)).map_err(|e| file_error(source, e.to_string()))
}

/// Whether `bytes` are an MPO file (this format or an older one), read off the header alone.
pub fn is_mpo_file(bytes: &[u8]) -> bool {
    let Ok((_, meta)) = SafeTensors::read_metadata(bytes) else {
        return false;
    };
    let format = meta.metadata().as_ref().and_then(|m| m.get("format").cloned());
    matches!(format.as_deref(), Some("tnml-mpo" | "tnml-mpo-layers"))
}

/// Core `k` of MPO `name` for a tensor name: `<name>.cores.<k>`, or an old `core.<k>`.
fn core_name(tensor: &str) -> Option<(&str, usize)> {
    if let Some((name, k)) = tensor.rsplit_once(".cores.") {
        return Some((name, k.parse().ok()?));
    }
    let k = tensor.strip_prefix("core.")?;
    Some((OLD_SINGLE_NAME, k.parse().ok()?))
}

/// The values of a core tensor as `f64` (from `f64` or `f32`), all finite.
fn core_values(file: &str, name: &str, view: &TensorView<'_>) -> Result<Vec<f64>> {
    let data = view.data();
    let values: Vec<f64> = match view.dtype() {
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap_or([0; 4]))))
            .collect(),
        other => {
            return Err(file_error(
                file,
                format!("{name} is {other:?}; MPO cores are F64 or F32"),
            ))
        }
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(file_error(
            file,
            format!("{name} has a non-finite value at entry {i}"),
        ));
    }
    Ok(values)
}

/// One core read from a file: its shape `[left, in, out, right]` and values.
type Core = ([usize; 4], Vec<f64>);

/// The MPOs of an MPO file (or of the MPO layers of a network's state_dict), by name in sorted
/// order. Tensors whose names are not cores are ignored.
///
/// # Errors
/// Not safetensors, no core, a core that is not 4-D, F64 or F32 and finite, a gap in a core
/// sequence, or cores whose bonds do not chain.
pub fn from_safetensors(bytes: &[u8], file: &str) -> Result<Vec<(String, Mpo)>> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| file_error(file, format!("not a safetensors file: {e}")))?;
    let mut cores: BTreeMap<String, BTreeMap<usize, Core>> = BTreeMap::new();
    for (tensor, view) in st.tensors() {
        let Some((name, k)) = core_name(&tensor) else {
            continue;
        };
        let shape: [usize; 4] = view.shape().try_into().map_err(|_| {
            file_error(
                file,
                format!(
                    "{tensor} has shape {:?}; a core is [left, in, out, right]",
                    view.shape()
                ),
            )
        })?;
        let values = core_values(file, &tensor, &view)?;
        cores
            .entry(name.to_string())
            .or_default()
            .insert(k, (shape, values));
    }
    if cores.is_empty() {
        return Err(file_error(
            file,
            "holds no MPO core (tensors named <name>.cores.<k>)",
        ));
    }
    cores
        .into_iter()
        .map(|(name, by_index)| {
            if let Some((pos, k)) = by_index.keys().enumerate().find(|(pos, k)| pos != *k) {
                return Err(file_error(
                    file,
                    format!("{name}: core {pos} is missing (the cores go up to {k}); they must be numbered 0, 1, ... without gaps"),
                ));
            }
            let mpo = Mpo::from_cores(by_index.into_values().collect())
                .map_err(|e| file_error(file, format!("{name}: {e}")))?;
            Ok((name, mpo))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TruncParams;

    fn sample(rows: usize, cols: usize, seed: u64) -> Mpo {
        let m = faer::Mat::from_fn(rows, cols, |i, j| {
            ((i * 7 + j * 3 + seed as usize) % 11) as f64 - 5.0
        });
        Mpo::from_dense(m.as_ref(), &[2, 2, 2], &[2, 3, 2], &TruncParams::exact())
            .unwrap()
            .0
    }

    fn core_bytes(mpo: &Mpo) -> Vec<Vec<f64>> {
        (0..mpo.len()).map(|k| mpo.core(k).unwrap().1.to_vec()).collect()
    }

    #[test]
    fn named_mpos_round_trip_bit_for_bit() {
        let (a, b) = (sample(12, 8, 0), sample(12, 8, 5));
        let bytes = to_safetensors(&[("fc1.weight", &a), ("fc2.weight", &b)], "test").unwrap();
        assert!(is_mpo_file(&bytes));
        let read = from_safetensors(&bytes, "f").unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].0, "fc1.weight");
        assert_eq!(core_bytes(&read[0].1), core_bytes(&a));
        assert_eq!(core_bytes(&read[1].1), core_bytes(&b));
        assert_eq!(read[1].1.in_modes(), b.in_modes());
    }

    #[test]
    fn old_single_mpo_files_still_read() {
        let a = sample(12, 8, 1);
        let mut blobs = Vec::new();
        for k in 0..a.len() {
            let (shape, data) = a.core(k).unwrap();
            let b: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            blobs.push((format!("core.{k:03}"), shape.to_vec(), b));
        }
        let views: Vec<_> = blobs
            .iter()
            .map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F64, s.clone(), b).unwrap()))
            .collect();
        let meta = HashMap::from([("format".to_string(), "tnml-mpo".to_string())]);
        let bytes = safetensors::serialize(views, Some(meta)).unwrap();
        let read = from_safetensors(&bytes, "old").unwrap();
        assert_eq!(read[0].0, OLD_SINGLE_NAME);
        assert_eq!(core_bytes(&read[0].1), core_bytes(&a));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let a = sample(12, 8, 2);
        // a gap in the cores
        let (shape0, d0) = a.core(0).unwrap();
        let (shape2, d2) = a.core(2).unwrap();
        let (b0, b2): (Vec<u8>, Vec<u8>) = (
            d0.iter().flat_map(|x| x.to_le_bytes()).collect(),
            d2.iter().flat_map(|x| x.to_le_bytes()).collect(),
        );
        let views = vec![
            (
                "w.cores.0".to_string(),
                TensorView::new(Dtype::F64, shape0.to_vec(), &b0).unwrap(),
            ),
            (
                "w.cores.2".to_string(),
                TensorView::new(Dtype::F64, shape2.to_vec(), &b2).unwrap(),
            ),
        ];
        let bytes = safetensors::serialize(views, None).unwrap();
        let e = from_safetensors(&bytes, "gap.safetensors")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("gap.safetensors") && e.contains("core 1 is missing"),
            "{e}"
        );
        // not safetensors, no core, a NaN
        assert!(from_safetensors(b"garbage", "g")
            .unwrap_err()
            .to_string()
            .contains("not a safetensors file"));
        let nan = f64::NAN.to_le_bytes().repeat(4);
        let views = vec![(
            "x.cores.0".to_string(),
            TensorView::new(Dtype::F64, vec![1, 2, 2, 1], &nan).unwrap(),
        )];
        let e = from_safetensors(&safetensors::serialize(views, None).unwrap(), "n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-finite"), "{e}");
        let other = 1f64.to_le_bytes().repeat(4);
        let views = vec![(
            "bias".to_string(),
            TensorView::new(Dtype::F64, vec![4], &other).unwrap(),
        )];
        let e = from_safetensors(&safetensors::serialize(views, None).unwrap(), "b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds no MPO core"), "{e}");
        // names that would not read back
        let e = to_safetensors(&[("a", &a), ("a", &a)], "dup")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unique"), "{e}");
    }
}

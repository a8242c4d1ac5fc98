//! A model's weights in PyTorch's layout: the names and shapes of the `state_dict` of the
//! equivalent `torch.nn` model, written to and read from safetensors.
//!
//! | tnml (burn) | PyTorch `state_dict` |
//! |---|---|
//! | dense layer: `Linear` weight `[in, out]`, bias `[out]` | `fc1.weight` `(out, in)`, `fc1.bias` |
//! | convolution weight `[out, in, kh, kw]`, bias | `conv1.weight` `(out, in, kh, kw)`, `conv1.bias` (same) |
//! | MPO layer: cores `[left, in_k, out_k, right]`, bias | `fc1.cores.K` (same), `fc1.bias`, and `fc1.weight` `(out, in)`, the dense `W` the cores multiply to (written up to [`DENSE_EXPORT_LIMIT`] entries, ignored on reading) |
//! | LayerNorm `gamma`, `beta` | `norm1.weight`, `norm1.bias` |
//! | BatchNorm `gamma`, `beta`, running mean and variance | `bn.weight`, `bn.bias`, `bn.running_mean`, `bn.running_var` |
//!
//! Names are the model's field path with burn's enum variants left out (`Fc2.fc1.Dense.weight`
//! -> `fc1.weight`, `Vgg.features.3.Conv.conv.weight` -> `features.3.conv.weight`). Every model
//! computes `x W^T + b` as `torch.nn.Linear` does, flattens `(C, H, W)` row-major as
//! `torch.flatten`, and uses PyTorch's norm constants (eps 1e-5, momentum 0.1), so the file
//! loads into the equivalent `nn.Sequential` with `load_state_dict` and gives the same logits.
//! Reading is strict as `load_state_dict(strict=True)`: a missing tensor, an unexpected one,
//! a wrong shape, a non-float dtype or a non-finite value is an error naming the tensor.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use tnml_core::Mpo;

use crate::checkpoint::atomic_write;
use crate::error::{NnError, Result};
use crate::models::{Arch, Net, NetConfig};

/// The largest MPO layer (entries of `W`) whose dense weight is written next to its cores:
/// 2^25 (128 MB as f32; VGG's 4096 x 4096 fc7 is 2^24). Larger layers are written as cores only.
pub const DENSE_EXPORT_LIMIT: usize = 1 << 25;

/// Metadata key holding the model configuration (JSON) in files tnml writes.
pub const CONFIG_KEY: &str = "tnml.net";

/// One tensor of a `state_dict`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateTensor {
    /// PyTorch name (`fc1.weight`).
    pub name: String,
    /// PyTorch shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

/// Where one parameter of the model goes in the PyTorch layout.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    name: String,
    /// A `Linear` weight: burn's `[in, out]` is PyTorch's `(out, in)` transposed.
    transpose: bool,
}

/// The path of modules entered so far: `(name, container type)` as burn reports them.
#[derive(Default)]
struct PathStack(Vec<(String, String)>);

impl PathStack {
    fn enter(&mut self, name: &str, container: &str) {
        self.0.push((name.to_string(), container.to_string()));
    }

    fn exit(&mut self) {
        self.0.pop();
    }

    /// The PyTorch key of the parameter at the current path (its last segment is the leaf).
    fn key(&self, dims: usize) -> Key {
        let kept: Vec<&(String, String)> = self
            .0
            .iter()
            .filter(|(_, c)| !c.starts_with("Enum:") && c != "Struct:Norm1d")
            .collect();
        let (leaf, container) = self.0.last().map_or(("", ""), |(n, c)| (n.as_str(), c.as_str()));
        let norm = matches!(container, "Struct:LayerNorm" | "Struct:BatchNorm");
        let renamed = match leaf {
            "gamma" if norm => "weight",
            "beta" if norm => "bias",
            other => other,
        };
        let mut parts: Vec<&str> = kept[..kept.len().saturating_sub(1)]
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        parts.push(renamed);
        Key {
            name: parts.join("."),
            transpose: leaf == "weight" && container == "Struct:Linear" && dims == 2,
        }
    }
}

/// Collects the model's tensors under their PyTorch names.
struct Collector {
    path: PathStack,
    out: Vec<StateTensor>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let dims = t.dims().to_vec();
        let key = self.path.key(D);
        let values = crate::mpo_linear::to_vec(t);
        let (shape, values) = if key.transpose {
            (vec![dims[1], dims[0]], transposed(&values, dims[0], dims[1]))
        } else {
            (dims, values)
        };
        self.out.push(StateTensor {
            name: key.name,
            shape,
            values,
        });
    }
}

/// `rows x cols` row-major to `cols x rows` row-major.
fn transposed(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = values[i * cols + j];
        }
    }
    out
}

/// The MPO layers' prefixes (`fc1` for `fc1.cores.K`) with their cores in order.
fn mpo_groups(tensors: &[StateTensor]) -> BTreeMap<String, Vec<&StateTensor>> {
    let mut groups: BTreeMap<String, BTreeMap<usize, &StateTensor>> = BTreeMap::new();
    for t in tensors {
        if let Some((prefix, k)) = t.name.rsplit_once(".cores.") {
            if let Ok(k) = k.parse::<usize>() {
                groups.entry(prefix.to_string()).or_default().insert(k, t);
            }
        }
    }
    groups
        .into_iter()
        .map(|(p, cores)| (p, cores.into_values().collect()))
        .collect()
}

/// The model's `state_dict` in PyTorch's layout (see the module docs), sorted by name; MPO
/// layers also get `weight`, their dense reconstruction `(out, in)`, up to
/// [`DENSE_EXPORT_LIMIT`] entries.
///
/// # Errors
/// An MPO layer whose cores do not chain (not produced by tnml) or too large to rebuild densely.
pub fn state_dict(net: &Net) -> Result<Vec<StateTensor>> {
    let mut c = Collector {
        path: PathStack::default(),
        out: Vec::new(),
    };
    // valid(): batch norms' running statistics synced (a plain visit can lag one update)
    net.valid().visit(&mut c);
    let mut out = c.out;
    let mut dense = Vec::new();
    for (prefix, cores) in mpo_groups(&out) {
        let rows: usize = cores.iter().map(|t| t.shape[2]).product();
        let cols: usize = cores.iter().map(|t| t.shape[1]).product();
        if rows.saturating_mul(cols) > DENSE_EXPORT_LIMIT {
            continue; // e.g. ResNet-56's whole-map MPOs (16384 x 16384): the cores only
        }
        let in_layer = |e: NnError| NnError::InLayer {
            layer: prefix.to_string(),
            source: Box::new(e),
        };
        let mpo = Mpo::from_cores(
            cores
                .iter()
                .map(|t| {
                    let s = [t.shape[0], t.shape[1], t.shape[2], t.shape[3]];
                    (s, t.values.iter().map(|&v| f64::from(v)).collect())
                })
                .collect(),
        )
        .map_err(|e| in_layer(e.into()))?;
        let w = mpo.to_dense().map_err(|e| in_layer(e.into()))?;
        let values: Vec<f32> = (0..w.nrows())
            .flat_map(|i| (0..w.ncols()).map(move |j| (i, j)))
            .map(|(i, j)| w[(i, j)] as f32)
            .collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(in_layer(
                tnml_core::CoreError::NonFinite {
                    what: "the dense weight rebuilt from the MPO in f32",
                    position: format!(
                        "({}, {}) (the product leaves f32's range, 3.4e38)",
                        i / w.ncols(),
                        i % w.ncols()
                    ),
                    value: w[(i / w.ncols(), i % w.ncols())],
                }
                .into(),
            ));
        }
        dense.push(StateTensor {
            name: format!("{prefix}.weight"),
            shape: vec![w.nrows(), w.ncols()],
            values,
        });
    }
    out.extend(dense);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// How the images are prepared before the model sees them, for the file's metadata.
pub fn input_description(arch: Arch) -> String {
    let [c, h, w] = arch.input_shape();
    let prep = match arch {
        Arch::Fc2 | Arch::Lenet5 => "MNIST-style 28x28 grey images, pixel / 255",
        Arch::Talk => "28x28 grey images, pixel / 255, zero-padded to 32x32 (2 pixels each side)",
        Arch::Vgg16 | Arch::Vgg19 | Arch::Resnet20 | Arch::Resnet56 | Arch::Densenet40 => {
            "CIFAR-10 32x32 RGB, pixel / 255, then (x - mean) / std per channel with mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616)"
        }
    };
    format!("float32 ({c}, {h}, {w}) per image: {prep}; output: 10 logits")
}

fn write_err(path: &Path, reason: String) -> NnError {
    NnError::Checkpoint {
        path: path.display().to_string(),
        reason,
    }
}

/// The safetensors bytes of `net` in PyTorch's layout, with metadata `format = pt` (as
/// `safetensors.torch.save_file` writes), the model config under [`CONFIG_KEY`], `tnml.layout
/// = torch` and `tnml.input` (see [`input_description`]).
///
/// # Errors
/// As [`state_dict`], or serialization.
pub fn to_safetensors(net: &Net, config: &NetConfig, path: &Path) -> Result<Vec<u8>> {
    serialize(&state_dict(net)?, config, path)
}

/// The safetensors bytes of a [`state_dict`] of the model `config` describes (metadata as
/// [`to_safetensors`]); `path` names the file in errors.
///
/// # Errors
/// Serialization.
pub fn serialize(tensors: &[StateTensor], config: &NetConfig, path: &Path) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            safetensors::tensor::TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| write_err(path, format!("tensor {}: {e}", t.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("tnml.layout".to_string(), "torch".to_string()),
        ("tnml.input".to_string(), input_description(config.arch)),
        (
            CONFIG_KEY.to_string(),
            serde_json::to_string(config).map_err(|e| write_err(path, format!("the model config: {e}")))?,
        ),
    ]);
    safetensors::serialize(views, Some(meta)).map_err(|e| write_err(path, format!("serializing: {e}")))
}

/// Writes [`to_safetensors`] to `path` atomically.
///
/// # Errors
/// As [`to_safetensors`], and file errors.
pub fn write(path: &Path, net: &Net, config: &NetConfig) -> Result<()> {
    atomic_write(path, &to_safetensors(net, config, path)?)
}

/// The model configuration stored in a file tnml wrote, if any.
///
/// # Errors
/// Not safetensors, or a config that does not parse or validate.
pub fn stored_config(bytes: &[u8], file: &str) -> Result<Option<NetConfig>> {
    let bad = |reason: String| NnError::WeightsFile {
        path: file.to_string(),
        reason,
    };
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
    let Some(text) = meta.metadata().as_ref().and_then(|m| m.get(CONFIG_KEY)) else {
        return Ok(None);
    };
    let cfg: NetConfig = serde_json::from_str(text)
        .map_err(|e| bad(format!("metadata {CONFIG_KEY} is not a model config: {e}")))?;
    cfg.validate()
        .map_err(|e| bad(format!("metadata {CONFIG_KEY}: {e}")))?;
    Ok(Some(cfg))
}

/// Fills the model's parameters from a parsed file, recording what went wrong.
struct Loader<'a> {
    path: PathStack,
    file: &'a SafeTensors<'a>,
    used: Vec<String>,
    errors: Vec<String>,
}

impl Loader<'_> {
    fn values(&mut self, key: &Key, dims: &[usize]) -> Option<Vec<f32>> {
        let expected: Vec<usize> = if key.transpose {
            vec![dims[1], dims[0]]
        } else {
            dims.to_vec()
        };
        let Ok(view) = self.file.tensor(&key.name) else {
            self.errors
                .push(format!("missing tensor {} {expected:?}", key.name));
            return None;
        };
        self.used.push(key.name.clone());
        if view.shape() != expected.as_slice() {
            self.errors.push(format!(
                "tensor {} has shape {:?}, the model needs {expected:?}",
                key.name,
                view.shape()
            ));
            return None;
        }
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
                .collect(),
            other => {
                self.errors.push(format!(
                    "tensor {} has dtype {other:?}: F32 or F64 is needed",
                    key.name
                ));
                return None;
            }
        };
        let bad = values.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            self.errors.push(format!(
                "tensor {} holds {bad} non-finite values (NaN or infinite)",
                key.name
            ));
            return None;
        }
        Some(if key.transpose {
            transposed(&values, dims[1], dims[0])
        } else {
            values
        })
    }
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let key = self.path.key(D);
        param.map(|t| {
            let dims = t.dims();
            match self.values(&key, &dims) {
                Some(values) => Tensor::from_data(TensorData::new(values, dims), &t.device()),
                None => t,
            }
        })
    }
}

/// `net` with every parameter read from a PyTorch-layout safetensors file (`file` names it in
/// errors). Strict: every tensor the model has must be there with its PyTorch shape, in F32 or
/// F64, finite; a tensor the model does not have is an error, except `num_batches_tracked`
/// buffers and the dense `weight` written next to an MPO layer's cores.
///
/// # Errors
/// [`NnError::WeightsFile`] listing every problem found.
pub fn load_state_dict(net: Net, bytes: &[u8], file: &str) -> Result<Net> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| NnError::WeightsFile {
        path: file.to_string(),
        reason: format!("not a valid safetensors file ({e})"),
    })?;
    let mut loader = Loader {
        path: PathStack::default(),
        file: &st,
        used: Vec::new(),
        errors: Vec::new(),
    };
    let net = net.map(&mut loader);
    let mpo_prefixes: Vec<String> = loader
        .used
        .iter()
        .filter_map(|n| n.rsplit_once(".cores.").map(|(p, _)| p.to_string()))
        .collect();
    let mut unexpected: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| !loader.used.iter().any(|u| u == *n))
        .filter(|n| !n.ends_with("num_batches_tracked"))
        .filter(|n| !mpo_prefixes.iter().any(|p| **n == format!("{p}.weight")))
        .map(str::to_string)
        .collect();
    unexpected.sort();
    let mut errors = loader.errors;
    if !unexpected.is_empty() {
        errors.push(format!(
            "unexpected tensors (not in this model): {}",
            unexpected.join(", ")
        ));
    }
    if errors.is_empty() {
        Ok(net)
    } else {
        Err(NnError::WeightsFile {
            path: file.to_string(),
            reason: format!("does not fit the model: {}", errors.join("; ")),
        })
    }
}

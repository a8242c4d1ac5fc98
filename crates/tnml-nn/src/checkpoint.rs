//! Checkpoints: the model (burnpack, exact), the optimizer state, and a JSON header naming the
//! model configuration and the epoch; plus a safetensors export of the weights for other tools.
//!
//! A checkpoint directory holds `checkpoint.json`, `model.bpk`, `optimizer.bpk`. Every file is
//! written to a temporary name, synced, and renamed, and `checkpoint.json` is written last, so a
//! crash leaves either the previous checkpoint or the new one, never a mix.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};
use crate::models::{Net, NetConfig};
use crate::train::{EpochRecord, TrainConfig};

/// Format tag in `checkpoint.json`.
pub const FORMAT: &str = "tnml-net-checkpoint";

/// The JSON header of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// [`FORMAT`].
    pub format: String,
    /// Format version (1).
    pub version: u32,
    /// The model.
    pub net: NetConfig,
    /// The training configuration, when saved by training.
    pub train: Option<TrainConfig>,
    /// Last finished epoch (0 = before training).
    pub epoch: usize,
    /// Metrics of all finished epochs.
    pub history: Vec<EpochRecord>,
}

impl CheckpointHeader {
    /// The header of a model before its first epoch.
    pub fn new(net: NetConfig, train: Option<TrainConfig>) -> Self {
        Self {
            format: FORMAT.into(),
            version: 1,
            net,
            train,
            epoch: 0,
            history: Vec::new(),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> NnError + '_ {
    move |source| NnError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-write");
    {
        let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn record_err(what: &str, path: &Path, e: impl std::fmt::Display) -> NnError {
    NnError::Checkpoint {
        path: path.display().to_string(),
        reason: format!("{what}: {e}"),
    }
}

/// Saves `net` (and `optim` if given) with `header` into directory `dir` (created if missing).
///
/// # Errors
/// File system errors, serialization errors.
pub fn save(dir: &Path, header: &CheckpointHeader, net: &Net, optim: Option<&ModuleOptimizer>) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let model = net
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| record_err("model", dir, e))?;
    atomic_write(&dir.join("model.bpk"), &model)?;
    if let Some(o) = optim {
        let bytes = o.into_bytes().map_err(|e| record_err("optimizer", dir, e))?;
        atomic_write(&dir.join("optimizer.bpk"), &bytes)?;
    }
    let json = serde_json::to_vec_pretty(header).map_err(|e| record_err("header", dir, e))?;
    atomic_write(&dir.join("checkpoint.json"), &json)
}

/// The checkpoint directory of `path`: `path/checkpoint` when `path` is a run directory
/// (it holds `checkpoint/checkpoint.json`), else `path` itself.
pub fn resolve_dir(path: &Path) -> std::path::PathBuf {
    if path.join("checkpoint").join("checkpoint.json").exists() {
        path.join("checkpoint")
    } else {
        path.to_path_buf()
    }
}

/// Reads the header of the checkpoint in `dir`.
///
/// # Errors
/// A missing or corrupt `checkpoint.json`, or a file of another format.
pub fn read_header(dir: &Path) -> Result<CheckpointHeader> {
    let path = dir.join("checkpoint.json");
    let text = fs::read(&path).map_err(io_err(&path))?;
    let header: CheckpointHeader =
        serde_json::from_slice(&text).map_err(|e| record_err("not a tnml checkpoint header", &path, e))?;
    if header.format != FORMAT || header.version != 1 {
        return Err(NnError::Checkpoint {
            path: path.display().to_string(),
            reason: format!(
                "format {:?} version {}, expected {FORMAT:?} version 1",
                header.format, header.version
            ),
        });
    }
    Ok(header)
}

/// Loads the model of the checkpoint in `dir` onto `device`.
///
/// # Errors
/// As [`read_header`], and a model file that does not match the header's model.
pub fn load(dir: &Path, device: &Device) -> Result<(CheckpointHeader, Net)> {
    let header = read_header(dir)?;
    let net = header.net.init(device)?;
    let path = dir.join("model.bpk");
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| record_err("corrupt model file", &path, e))?;
    let net = net
        .try_load_record(record)
        .map_err(|e| record_err("model file does not match the checkpoint's model", &path, e))?;
    Ok((header, net))
}

/// Loads the optimizer state saved next to a model into `optim`.
///
/// # Errors
/// A missing or corrupt `optimizer.bpk`.
pub fn load_optimizer(dir: &Path, optim: ModuleOptimizer) -> Result<ModuleOptimizer> {
    let path: PathBuf = dir.join("optimizer.bpk");
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    optim
        .from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| record_err("corrupt optimizer state", &path, e))
}

/// Collects every float tensor of a module by its dotted path.
struct Collector {
    path: Vec<String>,
    out: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let dims = t.dims().to_vec();
        let data = crate::mpo_linear::to_vec(t);
        let mut name = self
            .path
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(".");
        while self.out.contains_key(&name) {
            name.push('_');
        }
        self.out.insert(name, (dims, data));
    }
}

/// The model's float tensors by dotted path (`fc1.cores.0`, ...), with shapes.
pub fn named_tensors<M: Module>(module: &M) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut c = Collector {
        path: Vec::new(),
        out: BTreeMap::new(),
    };
    module.visit(&mut c);
    c.out
}

/// Writes the weights of `net` as safetensors (f32, little endian) with the model config in the
/// metadata (`tnml.net`), for PyTorch / NumPy users.
///
/// # Errors
/// Serialization or file errors.
pub fn export_safetensors(path: &Path, net: &Net, config: &NetConfig) -> Result<()> {
    let tensors = named_tensors(net);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, (shape, data))| (name, shape, data.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| NnError::Checkpoint {
                    path: path.display().to_string(),
                    reason: format!("tensor {name}: {e}"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "tnml-net".to_string());
    meta.insert(
        "tnml.net".to_string(),
        serde_json::to_string(config).map_err(|e| record_err("the model config", path, e))?,
    );
    let data = safetensors::serialize(views, Some(meta)).map_err(|e| record_err("serializing", path, e))?;
    atomic_write(path, &data)
}

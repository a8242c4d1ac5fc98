//! Checkpoints: the model (burnpack, exact), the optimizer state, and a JSON header naming the
//! model configuration and the epoch. The weights for other tools, in PyTorch's layout, are
//! written by [`crate::torch_layout`].
//!
//! A checkpoint directory holds `checkpoint.json`, `model.bpk`, `optimizer.bpk`, all of one
//! epoch. [`save`] writes the three files into a new sibling directory (`checkpoint.new`),
//! syncs them, moves the previous checkpoint aside (`checkpoint.old`), renames the new one into
//! place and removes the old one. A kill at any point therefore leaves a whole checkpoint of one
//! epoch: `checkpoint/` (old or new), or, between the two renames, `checkpoint.old/`, which
//! [`resolve_dir`] finds. Tested by killing the process between every two steps
//! (`TNML_FAULT=checkpoint:<epoch>:<step>`, see [`fault_point`]).

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

/// Writes `bytes` to `path` atomically: a temporary file created new next to it (a planted
/// file or symlink is never followed), synced, renamed over `path`; removed on any error (a full
/// disk leaves nothing behind).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    // the temporary name stays within the file system's 255 bytes whatever the target's length
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(64).collect::<String>())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!("{name}.tmp-{}", std::process::id()));
    let result = write_synced(&tmp, bytes).and_then(|()| fs::rename(&tmp, path).map_err(io_err(path)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn record_err(what: &str, path: &Path, e: impl std::fmt::Display) -> NnError {
    NnError::Checkpoint {
        path: path.display().to_string(),
        reason: format!("{what}: {e}"),
    }
}

/// `dir` with `.suffix` appended to its last component (`checkpoint` -> `checkpoint.new`).
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

/// Test hook for crash safety: `TNML_FAULT=checkpoint:<epoch>:<step>` aborts the process at
/// `step` of saving the checkpoint of `epoch` (steps: `model`, `optimizer`, `header`, `synced`,
/// `old-moved`, `swapped`); `TNML_FAULT=checkpoint:<epoch>:model:io` makes writing the model
/// fail as a full disk does. Unset, it costs one environment lookup per step.
pub fn fault_point(epoch: usize, step: &str) {
    if let Ok(spec) = std::env::var("TNML_FAULT") {
        if spec == format!("checkpoint:{epoch}:{step}") {
            eprintln!("TNML_FAULT: aborting at {step} of the epoch-{epoch} checkpoint");
            std::process::abort();
        }
    }
}

fn fault_io(epoch: usize, path: &Path) -> Result<()> {
    if std::env::var("TNML_FAULT").is_ok_and(|f| f == format!("checkpoint:{epoch}:model:io")) {
        return Err(NnError::Io {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::StorageFull, "TNML_FAULT: simulated full disk"),
        });
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

fn sync_dir(dir: &Path) {
    // best effort: directory fsync is not available everywhere
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Saves `net` (and `optim` if given) with `header` as the checkpoint directory `dir`,
/// replacing the previous one whole (see the module docs).
///
/// # Errors
/// File system errors, serialization errors; the previous checkpoint is then left in place
/// and the partial new one removed.
pub fn save(dir: &Path, header: &CheckpointHeader, net: &Net, optim: Option<&ModuleOptimizer>) -> Result<()> {
    let (new, old) = (sibling(dir, "new"), sibling(dir, "old"));
    if new.exists() {
        fs::remove_dir_all(&new).map_err(io_err(&new))?; // left by a crash
    }
    let result = write_new(&new, header, net, optim);
    if result.is_err() {
        let _ = fs::remove_dir_all(&new);
        return result;
    }
    fault_point(header.epoch, "synced");
    if dir.exists() {
        if old.exists() {
            fs::remove_dir_all(&old).map_err(io_err(&old))?;
        }
        fs::rename(dir, &old).map_err(io_err(dir))?;
        fault_point(header.epoch, "old-moved");
    }
    fs::rename(&new, dir).map_err(io_err(dir))?;
    fault_point(header.epoch, "swapped");
    if let Some(parent) = dir.parent() {
        sync_dir(parent);
    }
    if old.exists() {
        fs::remove_dir_all(&old).map_err(io_err(&old))?;
    }
    Ok(())
}

fn write_new(
    new: &Path,
    header: &CheckpointHeader,
    net: &Net,
    optim: Option<&ModuleOptimizer>,
) -> Result<()> {
    fs::create_dir_all(new).map_err(io_err(new))?;
    let model = net
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| record_err("model", new, e))?;
    fault_io(header.epoch, &new.join("model.bpk"))?;
    write_synced(&new.join("model.bpk"), &model)?;
    fault_point(header.epoch, "model");
    if let Some(o) = optim {
        let bytes = o.into_bytes().map_err(|e| record_err("optimizer", new, e))?;
        write_synced(&new.join("optimizer.bpk"), &bytes)?;
        fault_point(header.epoch, "optimizer");
    }
    let json = serde_json::to_vec_pretty(header).map_err(|e| record_err("header", new, e))?;
    write_synced(&new.join("checkpoint.json"), &json)?;
    fault_point(header.epoch, "header");
    sync_dir(new);
    Ok(())
}

/// The checkpoint directory of `path` (a run directory or a checkpoint directory):
/// `path` itself when it holds `checkpoint.json`, else `path/checkpoint`; when that is missing
/// because a save was killed between its two renames, the whole previous checkpoint
/// `checkpoint.old` next to it.
pub fn resolve_dir(path: &Path) -> PathBuf {
    let ck = if path.join("checkpoint.json").exists() {
        return path.to_path_buf();
    } else if path.file_name().is_some_and(|n| n == "checkpoint") {
        path.to_path_buf()
    } else {
        path.join("checkpoint")
    };
    let old = sibling(&ck, "old");
    if !ck.join("checkpoint.json").exists() && old.join("checkpoint.json").exists() {
        return old;
    }
    ck
}

/// Reads the header of the checkpoint in `dir`.
///
/// # Errors
/// A missing or corrupt `checkpoint.json`, or a file of another format.
pub fn read_header(dir: &Path) -> Result<CheckpointHeader> {
    let path = dir.join("checkpoint.json");
    if !path.exists() {
        // say what the user gave, not a path tnml made up from it
        let given = if dir.file_name().is_some_and(|n| n == "checkpoint") {
            dir.parent().unwrap_or(dir)
        } else {
            dir
        };
        let what = if given.is_file() {
            "is a file, not a run or checkpoint directory (give the run directory of `net train`; a .safetensors state_dict goes to `net compress --from-torch`)"
        } else if given.is_dir() {
            "holds no checkpoint (it has no checkpoint/checkpoint.json, so it is not a `net train` run, or one killed before its first epoch ended)"
        } else {
            "does not exist"
        };
        return Err(NnError::Checkpoint {
            path: given.display().to_string(),
            reason: what.to_string(),
        });
    }
    parse_header(&fs::read(&path).map_err(io_err(&path))?, &path)
}

/// Parses and checks a checkpoint header: format, version, and the model and training
/// configurations through the same validation as ones built in code.
///
/// # Errors
/// Not JSON, another format, an invalid model or training configuration.
pub fn parse_header(text: &[u8], path: &Path) -> Result<CheckpointHeader> {
    let header: CheckpointHeader =
        serde_json::from_slice(text).map_err(|e| record_err("not a tnml checkpoint header", path, e))?;
    header
        .net
        .validate()
        .map_err(|e| record_err("invalid model", path, e))?;
    if let Some(t) = &header.train {
        t.validate()
            .map_err(|e| record_err("invalid training configuration", path, e))?;
    }
    if header.epoch != header.history.len() {
        return Err(record_err(
            "inconsistent",
            path,
            format!(
                "epoch {} with {} epochs of history",
                header.epoch,
                header.history.len()
            ),
        ));
    }
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
    let path = dir.join("model.bpk");
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    let net = load_model(&header, bytes, &path, device)?;
    Ok((header, net))
}

/// The model of `header` with the weights of a `model.bpk` (its bytes); `path` names it in
/// errors.
///
/// # Errors
/// A corrupt record, or one of another model.
pub fn load_model(header: &CheckpointHeader, bytes: Vec<u8>, path: &Path, device: &Device) -> Result<Net> {
    let net = header.net.init(device)?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| record_err("corrupt model file", path, e))?;
    net.try_load_record(record)
        .map_err(|e| record_err("model file does not match the checkpoint's model", path, e))
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

//! The run directory every command that produces results writes:
//!
//! ```text
//! runs/<command>-<UTC timestamp>/
//!   config.json     resolved configuration (every default filled in), tnml version
//!   metrics.jsonl   one JSON object per line
//!   *.safetensors   model files (+ JSON metadata inside the header)
//!   *.csv           tables for other tools
//!   summary.md      short human summary
//! ```
//!
//! Every file is written atomically: the bytes go to a temporary file in the same directory,
//! which is flushed to disk and then renamed over the target, so a crash leaves either the old
//! file or the new one, never half of one. `metrics.jsonl` is rewritten whole (it stays small).

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::run_files;
use anyhow::{bail, Context, Result};
use serde::Serialize;

/// Temporary files of this process get distinct names.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Files of a run directory that no output option may replace, `--force` or not.
const RUN_FILES: [&str; 4] = [
    run_files::CONFIG,
    run_files::METRICS,
    run_files::SUMMARY,
    run_files::ENTANGLEMENT,
];

/// Checks that a command may write its output file `path` (`--out` of `predict` / `export`):
/// a missing path is fine; an existing one is refused unless `force`, and never replaced when
/// it is a directory, a model file or a record of a run directory (a folder with `config.json`)
/// or anything inside a run's `checkpoint/`.
///
/// # Errors
/// Said above, with the path and the way out.
pub fn check_output(path: &Path, force: bool) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("--out {}", path.display())),
        Ok(m) => m,
    };
    if meta.is_dir() {
        bail!("--out {} is a directory: give a file name", path.display());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let in_run = dir.join(run_files::CONFIG).is_file();
    let in_checkpoint = dir.file_name().is_some_and(|n| n == "checkpoint");
    let is_model = name.starts_with("model") && name.ends_with(".safetensors");
    if in_checkpoint || (in_run && (is_model || RUN_FILES.contains(&name.as_str()))) {
        bail!(
            "--out {} belongs to the run in {}: tnml never replaces a run's model or records; choose another file",
            path.display(),
            dir.display()
        );
    }
    if !force {
        bail!("--out {} exists: give --force to replace it", path.display());
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (temporary file + fsync + rename). The temporary file is
/// created new (`O_EXCL`: a planted file or symlink of that name is never followed) and removed
/// on any error.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .context("atomic_write needs a file name")?
        .to_string_lossy();
    // the temporary name stays within the file system's 255 bytes whatever the target's length
    let short: String = name.chars().take(64).collect();
    let tmp = dir.join(format!(
        ".{short}.tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let result = (|| -> Result<()> {
        f.write_all(bytes)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("flushing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A run directory being written.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    metrics: Vec<String>,
    _lock: RunLock,
}

/// The lock a process holds on a run directory while it writes it: `.tnml-lock` holding the
/// process id, created new, removed when the run ends (dropped). A second writer (a `--resume`
/// of a run still training) is refused; a lock whose process is gone (killed) is taken over.
#[derive(Debug)]
struct RunLock {
    path: PathBuf,
}

/// The lock file of a run directory.
pub const LOCK: &str = ".tnml-lock";

/// Whether process `pid` is alive (Linux: /proc; elsewhere every holder counts as alive).
fn holder_alive(pid: u32) -> bool {
    !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{pid}")).exists()
}

impl RunLock {
    fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK);
        for _ in 0..2 {
            match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(std::process::id().to_string().as_bytes())
                        .with_context(|| format!("writing {}", path.display()))?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let holder = fs::read_to_string(&path).unwrap_or_default();
                    match holder.trim().parse::<u32>() {
                        Ok(pid) if pid != std::process::id() && holder_alive(pid) => bail!(
                            "{} is being written by process {pid} (another tnml still training it); \
                             wait for it to end or stop it (if no tnml has that id, remove {})",
                            dir.display(),
                            path.display()
                        ),
                        // a lock left by a killed run (or unreadable): take it over
                        _ => {
                            let _ = fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("locking {}", dir.display())),
            }
        }
        bail!(
            "{}: could not take {} (another process keeps creating it)",
            dir.display(),
            LOCK
        )
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Removes the temporary files a killed write left in `dir` (`.NAME.tmp-PID-N`, see
/// [`atomic_write`]); returns how many. Only names of that form are touched.
fn remove_stale_temporaries(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with('.') && name.contains(".tmp-") && e.file_type().is_ok_and(|t| t.is_file())
        })
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

impl RunDir {
    /// Creates `out`, or `runs/<command>-<timestamp>` when `out` is `None`.
    ///
    /// An existing non-empty directory is refused: results are never mixed or overwritten.
    /// Creation is atomic: the directory itself is created (not checked, then created), and the
    /// default name takes the next free `-2`, `-3`, ... when two runs start in the same second.
    pub fn create(out: Option<&Path>, command: &str) -> Result<Self> {
        let path = match out {
            Some(p) => {
                create_parent(p)?;
                match fs::create_dir(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        if !p.is_dir() {
                            let dangling = !p.exists()
                                && fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
                            if dangling {
                                bail!(
                                    "{} is a symbolic link to {}, which does not exist: remove the link or give another --out",
                                    p.display(),
                                    fs::read_link(p).map_or_else(|_| "?".into(), |t| t.display().to_string())
                                );
                            }
                            bail!("{} exists and is not a directory", p.display());
                        }
                        if fs::read_dir(p)?.next().is_some() {
                            bail!(
                                "{} exists and is not empty: choose another --out (results are never overwritten)",
                                p.display()
                            );
                        }
                    }
                    Err(e) => {
                        return Err(e).with_context(|| format!("creating run directory {}", p.display()))
                    }
                }
                p.to_path_buf()
            }
            None => create_unique_in(Path::new("runs"), command)?,
        };
        // claim the directory: of two runs given the same empty --out, one gets it
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path.join(CLAIM))
            .with_context(|| format!("{} is being written by another run", path.display()))?;
        let lock = RunLock::acquire(&path)?;
        Ok(Self {
            path,
            metrics: Vec::new(),
            _lock: lock,
        })
    }

    /// Reopens an existing run directory to continue it (`--resume`): new metrics are appended
    /// after the recorded ones. Takes the run's lock (refused while another process writes it)
    /// and removes the temporary files a killed write left behind.
    pub fn open_existing(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            bail!("{} is not a run directory", path.display());
        }
        let lock = RunLock::acquire(path)?;
        let stale = remove_stale_temporaries(path) + remove_stale_temporaries(&path.join("checkpoint"));
        if stale > 0 {
            eprintln!(
                "removed {stale} temporary file(s) a killed write had left in {}",
                path.display()
            );
        }
        let metrics = match fs::read_to_string(path.join(run_files::METRICS)) {
            Ok(text) => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect(),
            Err(_) => Vec::new(),
        };
        Ok(Self {
            path: path.to_path_buf(),
            metrics,
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `config.json` (pretty JSON).
    pub fn write_config<A: Serialize, F: Serialize>(
        &self,
        config: &run_files::RunConfig<'_, A, F>,
    ) -> Result<()> {
        self.write_json(run_files::CONFIG, config)
    }

    /// Writes any serializable value as pretty JSON.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(value)?;
        bytes.push(b'\n');
        self.write_file(name, &bytes)
    }

    /// Replaces `metrics.jsonl` by `records` (a resume rewrites it from the checkpoint's
    /// history, so the file matches the checkpoint even after a kill between the two writes).
    pub fn reset_metrics<T: Serialize>(&mut self, records: &[T]) -> Result<()> {
        self.metrics = records
            .iter()
            .map(serde_json::to_string)
            .collect::<std::result::Result<_, _>>()?;
        let mut text = self.metrics.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        self.write_file(run_files::METRICS, text.as_bytes())
    }

    /// Appends one record to `metrics.jsonl`.
    pub fn log_metric<T: Serialize>(&mut self, record: &T) -> Result<()> {
        self.metrics.push(serde_json::to_string(record)?);
        let mut text = self.metrics.join("\n");
        text.push('\n');
        self.write_file(run_files::METRICS, text.as_bytes())
    }

    /// Appends lines to a JSON-lines file in the run directory (rewritten atomically).
    pub fn append_lines(&self, name: &str, lines: &[String]) -> Result<()> {
        let mut text = fs::read_to_string(self.path.join(name)).unwrap_or_default();
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        self.write_file(name, text.as_bytes())
    }

    /// Writes `summary.md`.
    pub fn write_summary(&self, markdown: &str) -> Result<()> {
        self.write_file(run_files::SUMMARY, markdown.as_bytes())
    }

    /// Writes a file inside the run directory atomically.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        atomic_write(&self.path.join(name), bytes)
    }
}

/// The marker a run directory is claimed with (created new, so only one run gets it).
pub const CLAIM: &str = ".tnml-run";

fn create_parent(path: &Path) -> Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display())),
        None => Ok(()),
    }
}

/// `<root>/<command>-<UTC time>`, or the first free `-2`, `-3`, ... created atomically.
fn create_unique_in(root: &Path, command: &str) -> Result<PathBuf> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let base = root.join(format!("{command}-{}", utc_stamp(secs)));
    create_parent(&base)?;
    for i in 1..10_000 {
        let path = if i == 1 {
            base.clone()
        } else {
            PathBuf::from(format!("{}-{i}", base.display()))
        };
        match fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating run directory {}", path.display())),
        }
    }
    bail!("no free run directory name next to {}", base.display())
}

/// `YYYYmmdd-HHMMSS` in UTC for seconds since the Unix epoch (civil-from-days, H. Hinnant).
pub fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One writer at a time: a run held by a live process cannot be reopened; a lock left by a
    /// dead process is taken over, and the temporary files of a killed write are removed.
    #[test]
    fn a_run_is_locked_while_it_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let run = RunDir::create(Some(&out), "test").unwrap();
        assert_eq!(
            fs::read_to_string(out.join(LOCK)).unwrap(),
            std::process::id().to_string()
        );
        drop(run);
        assert!(!out.join(LOCK).exists(), "the lock outlived its run");
        // another live process holds it
        let mut other = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        fs::write(out.join(LOCK), other.id().to_string()).unwrap();
        let err = RunDir::open_existing(&out).unwrap_err().to_string();
        assert!(
            err.contains(&format!("being written by process {}", other.id())),
            "{err}"
        );
        other.kill().unwrap();
        other.wait().unwrap();
        // now that process is gone: its lock is taken over; a killed write's temporary goes
        fs::write(out.join(".model.safetensors.tmp-123-0"), b"half").unwrap();
        fs::write(out.join("model.safetensors"), b"whole").unwrap();
        let again = RunDir::open_existing(&out).unwrap();
        assert!(!out.join(".model.safetensors.tmp-123-0").exists());
        assert_eq!(fs::read(out.join("model.safetensors")).unwrap(), b"whole");
        assert_eq!(
            fs::read_to_string(out.join(LOCK)).unwrap(),
            std::process::id().to_string()
        );
        drop(again);
    }

    #[test]
    fn utc_stamp_known_dates() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(1_795_824_000 + 3661), "20261128-010101");
    }

    #[test]
    fn run_dir_writes_files_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let mut run = RunDir::create(Some(&out), "test").unwrap();
        run.write_config(&run_files::RunConfig::new(
            "test",
            None::<&()>,
            serde_json::json!({"seed": 1}),
        ))
        .unwrap();
        run.log_metric(&serde_json::json!({"epoch": 1})).unwrap();
        run.log_metric(&serde_json::json!({"epoch": 2})).unwrap();
        run.write_summary("# ok\n").unwrap();
        let metrics = fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        assert_eq!(metrics, "{\"epoch\":1}\n{\"epoch\":2}\n");
        // no temporary files are left behind
        let names: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 5, "{names:?} (3 files, the claim and the lock)");
        let err = RunDir::create(Some(&out), "test").unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
    }

    #[test]
    fn runs_started_together_get_distinct_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("runs");
        let paths: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| create_unique_in(&root, "race").unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut unique = paths.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 8, "{paths:?}");
        // one empty --out, two runs: one is refused
        let out = tmp.path().join("shared");
        fs::create_dir(&out).unwrap();
        let first = RunDir::create(Some(&out), "a");
        let second = RunDir::create(Some(&out), "b");
        assert!(first.is_ok() && second.is_err());
    }

    #[test]
    fn atomic_write_never_follows_a_planted_temporary_name() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("model.safetensors");
        atomic_write(&target, b"one").unwrap();
        atomic_write(&target, b"two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }
}

//! Confusion matrices of a classifier on one split: counts `[true label][predicted label]`, the
//! error per class, printed as a table and written as `confusion-<split>.json` / `.csv` next to
//! the model (its run directory), where `tnml plot` draws them as a heat map.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::run_dir::atomic_write;

/// File-name prefix of confusion matrices in a run directory.
pub const PREFIX: &str = "confusion-";

/// Counts of (true, predicted) label pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// The split (`test`, `train`).
    pub split: String,
    /// The model it was computed for (a path).
    pub model: String,
    /// `counts[t][p]`: images of label `t` predicted as `p`.
    pub counts: Vec<Vec<usize>>,
}

impl Confusion {
    /// The matrix of `labels` classes from true and predicted labels.
    ///
    /// # Errors
    /// Different lengths, or a label `>= labels`.
    pub fn new(
        labels: usize,
        truth: &[usize],
        predicted: &[usize],
        split: &str,
        model: &Path,
    ) -> Result<Self> {
        if truth.len() != predicted.len() {
            bail!("{} labels but {} predictions", truth.len(), predicted.len());
        }
        let mut counts = vec![vec![0; labels]; labels];
        for (&t, &p) in truth.iter().zip(predicted) {
            if t >= labels || p >= labels {
                bail!("label {t} / prediction {p}: the model has {labels} classes");
            }
            counts[t][p] += 1;
        }
        Ok(Self {
            split: split.to_string(),
            model: model.display().to_string(),
            counts,
        })
    }

    /// Per class: images and wrong predictions.
    pub fn per_class(&self) -> Vec<(usize, usize)> {
        self.counts
            .iter()
            .enumerate()
            .map(|(t, row)| {
                let total: usize = row.iter().sum();
                (total, total - row[t])
            })
            .collect()
    }

    /// Images and wrong predictions over all classes.
    pub fn totals(&self) -> (usize, usize) {
        self.per_class()
            .iter()
            .fold((0, 0), |(n, w), (a, b)| (n + a, w + b))
    }

    /// The table as printed: rows true labels, columns predictions, then images and error.
    pub fn table(&self) -> String {
        let l = self.counts.len();
        let width = self.totals().0.to_string().len().max(3);
        let mut s = format!("{:>width$} |", "t\\p");
        for p in 0..l {
            let _ = write!(s, " {p:>width$}");
        }
        let _ = writeln!(s, " | {:>width$} | error", "n");
        for (t, (row, (n, wrong))) in self.counts.iter().zip(self.per_class()).enumerate() {
            let _ = write!(s, "{t:>width$} |");
            for c in row {
                let _ = write!(s, " {c:>width$}");
            }
            let err = if n == 0 {
                f64::NAN
            } else {
                100.0 * wrong as f64 / n as f64
            };
            let _ = writeln!(s, " | {n:>width$} | {err:5.2}%");
        }
        s
    }

    /// CSV: `true_label,pred_0,..,pred_{L-1},images,errors,error_rate`.
    pub fn csv(&self) -> String {
        let l = self.counts.len();
        let mut s = String::from("true_label");
        for p in 0..l {
            let _ = write!(s, ",pred_{p}");
        }
        s.push_str(",images,errors,error_rate\n");
        for (t, (row, (n, wrong))) in self.counts.iter().zip(self.per_class()).enumerate() {
            let _ = write!(s, "{t}");
            for c in row {
                let _ = write!(s, ",{c}");
            }
            let rate = if n == 0 { f64::NAN } else { wrong as f64 / n as f64 };
            let _ = writeln!(s, ",{n},{wrong},{rate:.6}");
        }
        s
    }

    /// Writes `confusion-<split>.json` and `.csv` into `dir` (atomically); the paths written.
    ///
    /// # Errors
    /// File errors.
    pub fn save(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let stem = dir.join(format!("{PREFIX}{}", self.split));
        let (json, csv) = (stem.with_extension("json"), stem.with_extension("csv"));
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        atomic_write(&json, &bytes)?;
        atomic_write(&csv, self.csv().as_bytes())?;
        Ok(vec![json, csv])
    }

    /// The heat map's cells: the share of each true class predicted as each other class (%), the
    /// diagonal (the correct ones) left out so that the mistakes are visible.
    pub fn error_shares(&self) -> Vec<Vec<f64>> {
        self.counts
            .iter()
            .enumerate()
            .map(|(t, row)| {
                let n: usize = row.iter().sum();
                row.iter()
                    .enumerate()
                    .map(|(p, &c)| {
                        if p == t || n == 0 {
                            f64::NAN
                        } else {
                            100.0 * c as f64 / n as f64
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

/// The run directory a model or checkpoint path belongs to: the directory of a model file, the
/// parent of a `checkpoint` directory, else the directory itself.
pub fn run_dir_of(path: &Path) -> PathBuf {
    let dir = if path.is_file() {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        path.to_path_buf()
    };
    let is_checkpoint = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "checkpoint" || n.starts_with("checkpoint."));
    let dir = if is_checkpoint {
        dir.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        dir
    };
    if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    }
}

/// Prints the table, writes the files next to the model, says where.
///
/// # Errors
/// File errors.
pub fn report(c: &Confusion, dir: &Path) -> Result<()> {
    println!(
        "confusion matrix ({} split; rows: true label, columns: predicted):",
        c.split
    );
    print!("{}", c.table());
    let written = c.save(dir)?;
    eprintln!(
        "wrote {} (`tnml plot {}` draws it as a heat map)",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_errors_and_files() {
        let truth = [0, 0, 1, 1, 1, 2];
        let pred = [0, 1, 1, 1, 2, 2];
        let c = Confusion::new(3, &truth, &pred, "test", Path::new("m")).unwrap();
        assert_eq!(c.counts, vec![vec![1, 1, 0], vec![0, 2, 1], vec![0, 0, 1]]);
        assert_eq!(c.per_class(), vec![(2, 1), (3, 1), (1, 0)]);
        assert_eq!(c.totals(), (6, 2));
        assert!(c.table().contains("| 50.00%"), "{}", c.table());
        assert!(c
            .csv()
            .starts_with("true_label,pred_0,pred_1,pred_2,images,errors,error_rate\n0,1,1,0,2,1,0.500000\n"));
        let shares = c.error_shares();
        assert!(shares[1][1].is_nan() && (shares[1][2] - 100.0 / 3.0).abs() < 1e-12);
        let tmp = tempfile::tempdir().unwrap();
        let files = c.save(tmp.path()).unwrap();
        let back: Confusion = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(Confusion::new(3, &[3], &[0], "test", Path::new("m")).is_err());
        assert!(Confusion::new(3, &[0, 1], &[0], "test", Path::new("m")).is_err());
    }

    #[test]
    fn the_run_directory_of_a_model_or_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        std::fs::create_dir_all(run.join("checkpoint")).unwrap();
        std::fs::write(run.join("model.safetensors"), b"x").unwrap();
        assert_eq!(run_dir_of(&run.join("model.safetensors")), run);
        assert_eq!(run_dir_of(&run.join("checkpoint")), run);
        assert_eq!(run_dir_of(&run), run);
    }
}

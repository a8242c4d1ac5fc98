//! The figures of a run directory, drawn from its recorded files (`metrics.jsonl`,
//! `entanglement.jsonl`, `entanglement-baseline.json`, `truncation.csv`) into `plots/`: used by
//! `tnml plot` and at the end of every run that records them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::confusion::Confusion;
use anyhow::{bail, Context, Result};
use tnml_nn::entangle::{Baseline, BondRecord};
use tnml_nn::train::EpochRecord;
use tnml_plot::{draw_heatmap, draw_lines, Heatmap, LineChart, Series};

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1)))
        .collect()
}

fn series(name: &str, points: Vec<(f64, f64)>, color: usize, dashed: bool) -> Series {
    Series {
        name: name.to_string(),
        points,
        dashed,
        color,
    }
}

/// The most sites of an MPO layer a recorded file may name (a bound on what is drawn).
const MAX_SITES: usize = 1024;

/// Draws all figures of `run` into `run/plots/`; returns the files written.
pub fn plot_run(run: &Path, formats: &[&str]) -> Result<Vec<PathBuf>> {
    let out = run.join("plots");
    std::fs::create_dir_all(&out)?;
    let written = std::cell::RefCell::new(Vec::new());
    let save_lines = |chart: &LineChart, stem: &str| -> Result<()> {
        if !tnml_plot::drawable(chart) {
            // e.g. a truncation-error curve of weights whose every bond is 1: all errors 0 on a
            // log axis. The numbers are in the run's files; the figure is left out, not the run.
            eprintln!(
                "plots/{stem}: nothing to draw (no point is finite, or positive on a log axis); left out"
            );
            return Ok(());
        }
        for f in formats {
            let p = out.join(format!("{stem}.{f}"));
            draw_lines(chart, &p)?;
            written.borrow_mut().push(p);
        }
        Ok(())
    };
    let metrics = run.join("metrics.jsonl");
    let sweeps = metrics.is_file() && {
        let first: Vec<serde_json::Value> = read_jsonl(&metrics)?;
        first.first().is_some_and(|r| r.get("sweep").is_some())
    };
    if sweeps {
        // an MPS sweep run: error rates per sweep
        let recs: Vec<serde_json::Value> = read_jsonl(&metrics)?;
        let curve = |key: &str| -> Vec<(f64, f64)> {
            recs.iter()
                .filter_map(|r| Some((r.get("sweep")?.as_f64()?, 100.0 * r.get(key)?.as_f64()?)))
                .collect()
        };
        let mut lines = vec![
            series("train", curve("train_error"), 0, false),
            series("test", curve("test_error"), 1, false),
        ];
        let validation = curve("validation_error");
        if !validation.is_empty() {
            lines.push(series("validation", validation, 2, false));
        }
        save_lines(
            &LineChart {
                title: "error per sweep".into(),
                x_label: "sweep".into(),
                y_label: "error (%)".into(),
                series: lines,
                log_y: false,
            },
            "error",
        )?;
    } else if metrics.is_file() {
        let recs: Vec<EpochRecord> = read_jsonl(&metrics)?;
        let e = |r: &EpochRecord| r.epoch as f64;
        save_lines(
            &LineChart {
                title: "accuracy".into(),
                x_label: "epoch".into(),
                y_label: "accuracy (%)".into(),
                series: vec![
                    series(
                        "train",
                        recs.iter().map(|r| (e(r), 100.0 * r.train_acc)).collect(),
                        0,
                        false,
                    ),
                    series(
                        "test",
                        recs.iter()
                            .filter_map(|r| r.test_acc.map(|a| (e(r), 100.0 * a)))
                            .collect(),
                        1,
                        false,
                    ),
                    series(
                        "validation",
                        recs.iter()
                            .filter_map(|r| r.validation_acc.map(|a| (e(r), 100.0 * a)))
                            .collect(),
                        2,
                        false,
                    ),
                ]
                .into_iter()
                .filter(|s| !s.points.is_empty())
                .collect(),
                log_y: false,
            },
            "accuracy",
        )?;
        save_lines(
            &LineChart {
                title: "loss".into(),
                x_label: "epoch".into(),
                y_label: "cross-entropy".into(),
                series: vec![
                    series(
                        "train",
                        recs.iter().map(|r| (e(r), r.train_loss)).collect(),
                        0,
                        false,
                    ),
                    series(
                        "test",
                        recs.iter()
                            .filter_map(|r| r.test_loss.map(|l| (e(r), l)))
                            .collect(),
                        1,
                        false,
                    ),
                ],
                log_y: true,
            },
            "loss",
        )?;
    }
    let ent = run.join("entanglement.jsonl");
    if ent.is_file() {
        let recs: Vec<BondRecord> = read_jsonl(&ent)?;
        let baselines: Vec<Baseline> = match std::fs::read(run.join("entanglement-baseline.json")) {
            Ok(b) => serde_json::from_slice(&b).context("entanglement-baseline.json")?,
            Err(_) => Vec::new(),
        };
        let mut layers: BTreeMap<String, Vec<&BondRecord>> = BTreeMap::new();
        for r in &recs {
            layers.entry(r.layer.clone()).or_default().push(r);
        }
        for (layer, rs) in &layers {
            let nb = rs.iter().map(|r| r.bond).max().unwrap_or(0);
            // a bond index comes from the file: bounded by what an MPO layer can have
            if nb > MAX_SITES {
                bail!(
                    "{}: layer {layer} has bond {nb}; an MPO layer has at most {MAX_SITES} sites",
                    ent.display()
                );
            }
            let safe = safe_stem(layer);
            if rs.iter().all(|r| r.epoch == rs[0].epoch) {
                // one point in time (tnml entangle): entropy and spectra against the bond
                save_lines(&entropy_per_bond(layer, rs), &format!("entropy-{safe}"))?;
                save_lines(&spectra_per_bond(layer, rs), &format!("spectra-{safe}"))?;
                continue;
            }
            let last_epoch = rs.iter().map(|r| r.epoch).max().unwrap_or(0) as f64;
            let mut s = Vec::new();
            for b in 1..=nb {
                let pts: Vec<(f64, f64)> = rs
                    .iter()
                    .filter(|r| r.bond == b)
                    .map(|r| (r.epoch as f64, r.entropy))
                    .collect();
                s.push(series(&format!("bond {b}"), pts, b - 1, false));
            }
            // bound: one dashed line per distinct value
            let mut bounds: Vec<f64> = rs.iter().map(|r| r.bound).collect();
            bounds.sort_by(f64::total_cmp);
            bounds.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
            for (k, bd) in bounds.iter().enumerate() {
                let name = if k == 0 {
                    "bound ln(min cut)".to_string()
                } else {
                    String::new()
                };
                s.push(series(
                    &name,
                    vec![(0.0, *bd), (last_epoch.max(1.0), *bd)],
                    7,
                    true,
                ));
            }
            if let Some(base) = baselines.iter().find(|b| &b.layer == layer) {
                for (b, m) in base.mean.iter().enumerate() {
                    let name = format!("bond {} random init", b + 1);
                    s.push(series(&name, vec![(0.0, *m), (last_epoch.max(1.0), *m)], b, true));
                }
            }
            save_lines(
                &LineChart {
                    title: format!("entanglement entropy of {layer} per bond"),
                    x_label: "epoch".into(),
                    y_label: "S (nats)".into(),
                    series: s,
                    log_y: false,
                },
                &format!("entropy-{safe}"),
            )?;
            for b in 1..=nb {
                let at: Vec<&&BondRecord> = rs.iter().filter(|r| r.bond == b).collect();
                let rows = at.iter().map(|r| r.spectrum.len()).max().unwrap_or(0);
                if rows == 0 {
                    continue;
                }
                let values: Vec<Vec<f64>> = (0..rows)
                    .map(|k| {
                        at.iter()
                            .map(|r| r.spectrum.get(k).map_or(f64::NAN, |s| (s * s).max(1e-16).log10()))
                            .collect()
                    })
                    .collect();
                for f in formats {
                    let p = out.join(format!("spectrum-{safe}-bond{b}.{f}"));
                    draw_heatmap(
                        &Heatmap {
                            title: format!("entanglement spectrum of {layer}, bond {b}: log10 s^2"),
                            x_label: "epoch".into(),
                            y_label: "Schmidt index".into(),
                            values: values.clone(),
                            x_values: at.iter().map(|r| r.epoch as f64).collect(),
                            first_row: 1.0,
                        },
                        &p,
                    )?;
                    written.borrow_mut().push(p);
                }
            }
        }
    }
    let trunc = run.join("truncation.csv");
    if trunc.is_file() {
        let text = std::fs::read_to_string(&trunc)?;
        let mut by_layer: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() >= 3 {
                if let (Ok(d), Ok(e)) = (f[1].parse::<f64>(), f[2].parse::<f64>()) {
                    by_layer.entry(f[0].to_string()).or_default().push((d, e));
                }
            }
        }
        let s = by_layer
            .into_iter()
            .enumerate()
            .map(|(i, (l, pts))| series(&l, pts, i, false))
            .collect();
        save_lines(
            &LineChart {
                title: "truncation error vs bond dimension".into(),
                x_label: "max bond dimension".into(),
                y_label: "||W - W_D|| / ||W||".into(),
                series: s,
                log_y: true,
            },
            "truncation",
        )?;
    }
    let bonds = run.join(BOND_CHOICES);
    if bonds.is_file() {
        let text = std::fs::read_to_string(&bonds)?;
        let layers: Vec<BondChoiceRecord> =
            serde_json::from_str(&text).with_context(|| format!("reading {}", bonds.display()))?;
        for l in layers.iter().take(MAX_SITES) {
            let (stem, chart) = bond_choice_chart(l);
            save_lines(&chart, &stem)?;
        }
    }
    for entry in std::fs::read_dir(run)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(split) = name
            .strip_prefix(crate::confusion::PREFIX)
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let c: Confusion = serde_json::from_slice(&std::fs::read(entry.path())?)
            .with_context(|| format!("reading {}", entry.path().display()))?;
        let labels = c.counts.len();
        if labels == 0 || labels > 1000 || c.counts.iter().any(|r| r.len() != labels) {
            bail!(
                "{}: not a square confusion matrix of at most 1000 classes",
                entry.path().display()
            );
        }
        let (n, wrong) = c.totals();
        let map = Heatmap {
            title: format!(
                "confusion ({split}, {wrong} of {n} wrong): % of each true label predicted as each other"
            ),
            x_label: "predicted label".into(),
            y_label: "true label".into(),
            values: c.error_shares(),
            x_values: (0..labels).map(|l| l as f64).collect(),
            first_row: 0.0,
        };
        if wrong == 0 {
            continue; // nothing to draw: every cell off the diagonal is 0
        }
        for f in formats {
            let p = out.join(format!("confusion-{split}.{f}"));
            draw_heatmap(&map, &p)?;
            written.borrow_mut().push(p);
        }
    }
    let path = run.join(COMPRESSION_PATH);
    if path.is_file() {
        let points: Vec<PathPoint> = read_jsonl(&path)?;
        let curve = |kind: &str| -> Vec<(f64, f64)> {
            points
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| (p.params as f64, 100.0 * p.val_acc))
                .collect()
        };
        save_lines(
            &LineChart {
                title: "validation accuracy against MPO parameters".into(),
                x_label: "parameters of the MPO layers".into(),
                y_label: "validation accuracy (%)".into(),
                series: vec![
                    series("bonds chosen per bond", curve("auto"), 0, false),
                    series("one bond dimension", curve("uniform"), 1, true),
                ],
                log_y: false,
            },
            "compression-path",
        )?;
    }
    Ok(written.into_inner())
}

/// File (in a run directory) of the bonds an automatic compression chose, per layer.
pub const BOND_CHOICES: &str = "bond-choices.json";
/// File of the accuracy-vs-parameters path of `net compress --auto`, one point per line.
pub const COMPRESSION_PATH: &str = "compression-path.jsonl";

/// The bonds chosen for one layer, with the spectra's entropy that explains them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BondChoiceRecord {
    /// Layer or tensor name.
    pub layer: String,
    /// von Neumann entropy per bond of the exact MPO (nats).
    pub entropy: Vec<f64>,
    /// Bond dimensions of the exact MPO (its ranks).
    pub exact_bond_dims: Vec<usize>,
    /// Bond dimensions chosen per bond.
    pub chosen: Vec<usize>,
    /// The uniform baseline's bond dimensions, when one was found.
    pub uniform: Option<Vec<usize>>,
}

/// One point of a compression path.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PathPoint {
    /// `auto` (bonds per bond from a budget) or `uniform` (one bond dimension).
    pub kind: String,
    /// The budget or the bond dimension, for reading.
    pub label: String,
    /// Parameters of the MPO layers.
    pub params: usize,
    /// Validation accuracy after the retraining.
    pub val_acc: f64,
}

/// Entropy per bond against the capacity `ln D` of the chosen (and uniform) bond dimensions.
fn bond_choice_chart(l: &BondChoiceRecord) -> (String, LineChart) {
    let pts = |v: &[f64]| v.iter().enumerate().map(|(i, &y)| ((i + 1) as f64, y)).collect();
    let ln = |d: &[usize]| d.iter().map(|&x| (x as f64).ln()).collect::<Vec<_>>();
    let mut lines = vec![
        series("entropy S of the exact MPO", pts(&l.entropy), 0, false),
        series("ln D chosen per bond", pts(&ln(&l.chosen)), 1, false),
        series("ln rank (exact)", pts(&ln(&l.exact_bond_dims)), 3, true),
    ];
    if let Some(u) = &l.uniform {
        lines.push(series("ln D uniform", pts(&ln(u)), 2, true));
    }
    (
        format!("bonds-{}", safe_stem(&l.layer)),
        LineChart {
            title: format!("{}: entropy and bonds chosen", l.layer),
            x_label: "bond".into(),
            y_label: "nats".into(),
            series: lines,
            log_y: false,
        },
    )
}

/// A layer or tensor name as part of a file name: letters, digits, `.` and `-` kept, anything
/// else (a `/`, a space) replaced by `_`, never starting with `.`.
fn safe_stem(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    match s.strip_prefix('.') {
        Some(rest) => format!("_{rest}"),
        None => s,
    }
}

/// Entropy per bond of one layer at one time, with the bound `ln min(cut)` dashed.
fn entropy_per_bond(layer: &str, rs: &[&BondRecord]) -> LineChart {
    let pts = |f: &dyn Fn(&BondRecord) -> f64| rs.iter().map(|r| (r.bond as f64, f(r))).collect::<Vec<_>>();
    LineChart {
        title: format!("entanglement entropy of {layer}"),
        x_label: "bond".into(),
        y_label: "S (nats)".into(),
        series: vec![
            series("entropy S", pts(&|r| r.entropy), 0, false),
            series("Renyi-2", pts(&|r| r.renyi2), 1, false),
            series("bound ln(min cut)", pts(&|r| r.bound), 7, true),
        ],
        log_y: false,
    }
}

/// Schmidt spectra `s^2` of one layer, one line per bond, on a log axis.
fn spectra_per_bond(layer: &str, rs: &[&BondRecord]) -> LineChart {
    LineChart {
        title: format!("entanglement spectra of {layer}"),
        x_label: "Schmidt index".into(),
        y_label: "s^2".into(),
        series: rs
            .iter()
            .map(|r| {
                let pts = r
                    .spectrum
                    .iter()
                    .enumerate()
                    .map(|(k, s)| ((k + 1) as f64, s * s))
                    .collect();
                series(&format!("bond {}", r.bond), pts, r.bond - 1, false)
            })
            .collect(),
        log_y: true,
    }
}

#[cfg(test)]
mod tests {
    use super::safe_stem;

    #[test]
    fn file_names_from_layer_names_stay_in_the_directory() {
        assert_eq!(safe_stem("fc1.weight"), "fc1.weight");
        assert_eq!(safe_stem("../../etc/passwd"), "_._.._etc_passwd");
        assert_eq!(safe_stem("a b/c"), "a_b_c");
    }
}

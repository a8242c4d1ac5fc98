//! Where the figures go: `run/plots/<stem>.<format>`, each written whole by `tnml-plot`, and the
//! helpers every figure uses.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tnml_plot::{draw_heatmap, draw_lines, Heatmap, LineChart, Series};

/// The figures of one run directory: the folder, the formats, the files written so far.
pub struct Sink<'a> {
    out: PathBuf,
    formats: &'a [&'a str],
    written: Vec<PathBuf>,
}

impl<'a> Sink<'a> {
    /// Figures of `run`, into `run/plots/` (created).
    pub fn create(run: &Path, formats: &'a [&'a str]) -> Result<Self> {
        let out = run.join("plots");
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        Ok(Self {
            out,
            formats,
            written: Vec::new(),
        })
    }

    /// Draws `chart` as `<stem>.<format>` for every format; a chart with nothing drawable (every
    /// point non-finite, or none positive on a log axis) is left out with a line on stderr.
    pub fn lines(&mut self, chart: &LineChart, stem: &str) -> Result<()> {
        if !tnml_plot::drawable(chart) {
            // e.g. a truncation-error curve of weights whose every bond is 1: all errors 0 on a
            // log axis. The numbers are in the run's files; the figure is left out, not the run.
            eprintln!(
                "plots/{stem}: nothing to draw (no point is finite, or positive on a log axis); left out"
            );
            return Ok(());
        }
        for f in self.formats {
            let p = self.out.join(format!("{stem}.{f}"));
            draw_lines(chart, &p)?;
            self.written.push(p);
        }
        Ok(())
    }

    /// Draws `map` as `<stem>.<format>` for every format.
    pub fn heatmap(&mut self, map: &Heatmap, stem: &str) -> Result<()> {
        for f in self.formats {
            let p = self.out.join(format!("{stem}.{f}"));
            draw_heatmap(map, &p)?;
            self.written.push(p);
        }
        Ok(())
    }

    /// The files written, in order.
    pub fn into_written(self) -> Vec<PathBuf> {
        self.written
    }
}

/// The records of a JSON-lines file (blank lines skipped), each error naming the line.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1)))
        .collect()
}

/// One line of a chart.
pub fn series(name: &str, points: Vec<(f64, f64)>, color: usize, dashed: bool) -> Series {
    Series {
        name: name.to_string(),
        points,
        dashed,
        color,
    }
}

/// A line chart with a linear or logarithmic y axis.
pub fn chart(
    title: impl Into<String>,
    x_label: &str,
    y_label: &str,
    series: Vec<Series>,
    log_y: bool,
) -> LineChart {
    LineChart {
        title: title.into(),
        x_label: x_label.into(),
        y_label: y_label.into(),
        series,
        log_y,
    }
}

/// A layer or tensor name as part of a file name: letters, digits, `.` and `-` kept, anything
/// else (a `/`, a space) replaced by `_`, never starting with `.`.
pub fn safe_stem(name: &str) -> String {
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

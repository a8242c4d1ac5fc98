//! Line charts and heat maps with plotters, written as PNG (RGB buffer encoded by `png`) or SVG,
//! chosen by the file extension. Text uses the embedded DejaVu Sans (no system fonts needed).

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::grid::{write_rgb_png, PlotError};

static FONT: Once = Once::new();

fn ensure_font() {
    FONT.call_once(|| {
        // The bytes are a valid TrueType font; registration cannot fail for them.
        let _ = register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../fonts/DejaVuSans.ttf"),
        );
    });
}

/// One curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// `(x, y)` points in drawing order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
    /// Dashed (for bounds and baselines) instead of solid.
    pub dashed: bool,
    /// Palette index; series with the same index share a colour.
    pub color: usize,
}

/// A chart of several curves.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title above the chart.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// Curves.
    pub series: Vec<Series>,
    /// Logarithmic y axis (non-positive values are skipped).
    pub log_y: bool,
}

/// A matrix of values drawn as coloured cells (rows bottom to top).
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    /// Title.
    pub title: String,
    /// x-axis label (columns).
    pub x_label: String,
    /// y-axis label (rows).
    pub y_label: String,
    /// `values[row][col]`; non-finite cells are left white.
    pub values: Vec<Vec<f64>>,
    /// x coordinate of each column (e.g. the epoch).
    pub x_values: Vec<f64>,
    /// y coordinate of the first row (1 for a Schmidt index, 0 for a label); row `k` is at
    /// `first_row + k`.
    pub first_row: f64,
}

const SIZE: (u32, u32) = (900, 560);

/// Width of the legend strip right of a line chart, in pixels.
const LEGEND_WIDTH: u32 = 250;

fn palette(i: usize) -> RGBColor {
    const P: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    P[i % P.len()]
}

/// Viridis-like colour for `t` in `[0, 1]`.
fn colormap(t: f64) -> RGBColor {
    let stops = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = t.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (t.floor() as usize).min(stops.len() - 2);
    let f = t - i as f64;
    let (a, b) = (stops[i], stops[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn draw_err<E: std::error::Error + Send + Sync>(path: &Path, e: DrawingAreaErrorKind<E>) -> PlotError {
    PlotError::Encode {
        path: path.into(),
        message: e.to_string(),
    }
}

fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return None;
    }
    if hi - lo < 1e-12 {
        let pad = if lo.abs() > 0.0 { lo.abs() * 0.05 } else { 1.0 };
        return Some((lo - pad, hi + pad));
    }
    Some((lo, hi))
}

/// Whether `chart` has a point to draw: finite, and positive on a log axis.
pub fn drawable(chart: &LineChart) -> bool {
    chart
        .series
        .iter()
        .flat_map(|s| &s.points)
        .any(|p| drawable_point(chart, p))
}

/// The axes of a line chart, fixed before drawing: the ranges of the drawable points, whether
/// the y axis is logarithmic, and the x ticks.
struct Frame {
    x: (f64, f64),
    y: (f64, f64),
    /// A log axis over less than a decade has no labelled tick: linear there.
    log_y: bool,
    /// x values all whole numbers (epochs, sweeps, bonds) get whole-number ticks.
    whole_x: bool,
    x_ticks: usize,
}

impl Frame {
    fn of(chart: &LineChart) -> Result<Self, PlotError> {
        let points = || {
            chart
                .series
                .iter()
                .flat_map(|s| s.points.iter().filter(|p| drawable_point(chart, p)))
        };
        let (Some(x), Some(y)) = (range(points().map(|p| p.0)), range(points().map(|p| p.1))) else {
            return Err(PlotError::Invalid(format!("{}: nothing to draw", chart.title)));
        };
        let whole_x = points().all(|p| (p.0 - p.0.round()).abs() < 1e-9);
        Ok(Self {
            x,
            y,
            log_y: chart.log_y && y.0 > 0.0 && y.1 / y.0 >= 20.0,
            whole_x,
            x_ticks: if whole_x {
                ((x.1 - x.0).round() as usize + 1).clamp(2, 10)
            } else {
                10
            },
        })
    }

    fn x_label(&self, v: &f64) -> String {
        if !self.whole_x {
            format!("{v}")
        } else if (v - v.round()).abs() < 1e-9 {
            format!("{v:.0}")
        } else {
            String::new()
        }
    }
}

/// A point is drawn when finite, and positive on a log axis.
fn drawable_point(chart: &LineChart, p: &(f64, f64)) -> bool {
    p.0.is_finite() && p.1.is_finite() && (!chart.log_y || p.1 > 0.0)
}

/// Draws `chart` to `path` (`.png` or `.svg`).
///
/// # Errors
/// No drawable point, an unknown extension, file or encoding errors.
pub fn draw_lines(chart: &LineChart, path: &Path) -> Result<(), PlotError> {
    ensure_font();
    let frame = Frame::of(chart)?;
    write_with(
        path,
        |bm| plot_lines(bm, chart, &frame, path),
        |svg| plot_lines(svg, chart, &frame, path),
    )
}

/// The chart on `root`: the plot, and a legend strip right of it for the named series (never
/// over the data).
fn plot_lines<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    chart: &LineChart,
    frame: &Frame,
    path: &Path,
) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
    let named: Vec<&Series> = chart
        .series
        .iter()
        .filter(|s| !s.name.trim().is_empty())
        .collect();
    let (width, _) = root.dim_in_pixel();
    let legend_width = if named.is_empty() {
        0
    } else {
        LEGEND_WIDTH.min(width / 3)
    };
    let (plot_area, legend_area) = root.split_horizontally(width - legend_width);
    let mut builder = ChartBuilder::on(&plot_area);
    builder
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70);
    let ((x0, x1), (y0, y1)) = (frame.x, frame.y);
    // every series inside the frame with a margin (a flat baseline at the top included)
    let pad = (y1 - y0) * 0.08;
    let x_fmt = |v: &f64| frame.x_label(v);
    // the two coordinate systems have different types: the same drawing for each
    macro_rules! mesh_and_series {
        ($ctx:expr) => {{
            let mut ctx = $ctx.map_err(|e| draw_err(path, e))?;
            ctx.configure_mesh()
                .x_desc(chart.x_label.as_str())
                .y_desc(chart.y_label.as_str())
                .x_labels(frame.x_ticks)
                .x_label_formatter(&x_fmt)
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 16))
                .draw()
                .map_err(|e| draw_err(path, e))?;
            for s in &chart.series {
                let color = palette(s.color);
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|p| drawable_point(chart, p))
                    .collect();
                let style = ShapeStyle::from(&color).stroke_width(2);
                if s.dashed {
                    ctx.draw_series(DashedLineSeries::new(pts, 8, 5, style))
                        .map_err(|e| draw_err(path, e))?;
                } else {
                    // markers, so that a single point (a one-bond layer) is visible too
                    ctx.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(|e| draw_err(path, e))?;
                    ctx.draw_series(LineSeries::new(pts, style))
                        .map_err(|e| draw_err(path, e))?;
                }
            }
        }};
    }
    if frame.log_y {
        mesh_and_series!(builder.build_cartesian_2d(x0..x1, (y0 * 0.9..y1 * 1.1).log_scale()));
    } else {
        mesh_and_series!(builder.build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad)));
    }
    draw_legend(&legend_area, &named, path)?;
    root.present().map_err(|e| draw_err(path, e))
}

/// The legend: each entry drawn as its series is (dashed, or solid with a marker).
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    named: &[&Series],
    path: &Path,
) -> Result<(), PlotError> {
    for (i, s) in named.iter().enumerate() {
        let color = palette(s.color);
        let y = 60 + 24 * i as i32;
        let style = ShapeStyle::from(&color).stroke_width(2);
        if s.dashed {
            for seg in 0..3 {
                let x = 6 + 9 * seg;
                area.draw(&PathElement::new(vec![(x, y), (x + 5, y)], style))
                    .map_err(|e| draw_err(path, e))?;
            }
        } else {
            area.draw(&PathElement::new(vec![(6, y), (30, y)], style))
                .map_err(|e| draw_err(path, e))?;
            area.draw(&Circle::new((18, y), 3, color.filled()))
                .map_err(|e| draw_err(path, e))?;
        }
        let font = ("sans-serif", 13).into_font().color(&BLACK);
        area.draw(&Text::new(s.name.clone(), (38, y - 7), font))
            .map_err(|e| draw_err(path, e))?;
    }
    Ok(())
}

/// Draws `map` to `path` (`.png` or `.svg`), with a colour bar.
///
/// # Errors
/// An empty or ragged matrix, an unknown extension, file or encoding errors.
pub fn draw_heatmap(map: &Heatmap, path: &Path) -> Result<(), PlotError> {
    ensure_font();
    let rows = map.values.len();
    let cols = map.values.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 || map.values.iter().any(|r| r.len() != cols) || map.x_values.len() != cols {
        return Err(PlotError::Invalid(format!(
            "{}: heat map needs a non-empty rectangular matrix with one x value per column",
            map.title
        )));
    }
    let Some((lo, hi)) = range(map.values.iter().flatten().copied()) else {
        return Err(PlotError::Invalid(format!("{}: no finite value", map.title)));
    };
    macro_rules! body {
        ($root:expr) => {{
            let root = $root;
            root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
            let (main, bar) = root.split_horizontally(SIZE.0 - 110);
            // cell j spans x_j +- h/2 (h = the smallest spacing), row k spans k+1 +- 1/2
            let xs = &map.x_values;
            let h = xs
                .windows(2)
                .map(|w| (w[1] - w[0]).abs())
                .filter(|d| *d > 0.0)
                .fold(f64::INFINITY, f64::min);
            let h = if h.is_finite() { h } else { 1.0 };
            let (x0, x1) = (
                xs.iter().copied().fold(f64::INFINITY, f64::min) - h / 2.0,
                xs.iter().copied().fold(f64::NEG_INFINITY, f64::max) + h / 2.0,
            );
            let mut ctx = ChartBuilder::on(&main)
                .caption(&map.title, ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(44)
                .y_label_area_size(60)
                .build_cartesian_2d(x0..x1, map.first_row - 0.5..map.first_row + rows as f64 - 0.5)
                .map_err(|e| draw_err(path, e))?;
            ctx.configure_mesh()
                .disable_mesh()
                .x_desc(map.x_label.as_str())
                .y_desc(map.y_label.as_str())
                .x_labels(cols.min(12))
                .y_labels(rows.min(12))
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.0}"))
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 16))
                .draw()
                .map_err(|e| draw_err(path, e))?;
            let cells = map.values.iter().enumerate().flat_map(|(r, row)| {
                row.iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(move |(c, v)| {
                        let t = (v - lo) / (hi - lo);
                        let (xa, ya) = (xs[c] - h / 2.0, map.first_row + r as f64 - 0.5);
                        Rectangle::new([(xa, ya), (xa + h, ya + 1.0)], colormap(t).filled())
                    })
            });
            ctx.draw_series(cells).map_err(|e| draw_err(path, e))?;
            let mut cb = ChartBuilder::on(&bar)
                .margin_top(50)
                .margin_bottom(56)
                .margin_right(10)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..1.0, lo..hi)
                .map_err(|e| draw_err(path, e))?;
            cb.configure_mesh()
                .disable_mesh()
                .disable_x_axis()
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(|e| draw_err(path, e))?;
            let steps = 100;
            cb.draw_series((0..steps).map(|i| {
                let a = lo + (hi - lo) * i as f64 / steps as f64;
                let b = lo + (hi - lo) * (i + 1) as f64 / steps as f64;
                Rectangle::new(
                    [(0.0, a), (1.0, b)],
                    colormap(i as f64 / (steps - 1) as f64).filled(),
                )
            }))
            .map_err(|e| draw_err(path, e))?;
            root.present().map_err(|e| draw_err(path, e))?;
            Ok(())
        }};
    }
    write_with(path, |bm| body!(bm), |svg| body!(svg))
}

/// Runs the PNG or SVG drawing closure by `path`'s extension and writes the file.
fn write_with(
    path: &Path,
    png: impl FnOnce(DrawingArea<BitMapBackend, Shift>) -> Result<(), PlotError>,
    svg: impl FnOnce(DrawingArea<SVGBackend, Shift>) -> Result<(), PlotError>,
) -> Result<(), PlotError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("png") => {
            let (w, h) = SIZE;
            let mut buf = vec![0u8; (w * h * 3) as usize];
            {
                let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
                png(root)?;
            }
            write_rgb_png(path, w as usize, h as usize, &buf)
        }
        Some("svg") => {
            let mut text = String::new();
            {
                let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
                svg(root)?;
            }
            crate::grid::write_whole(path, text.as_bytes())
        }
        _ => Err(PlotError::Invalid(format!(
            "{}: use a .png or .svg file name",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn chart() -> LineChart {
        LineChart {
            title: "entropy per bond".into(),
            x_label: "epoch".into(),
            y_label: "S".into(),
            series: vec![
                Series {
                    name: "bond 1".into(),
                    points: (0..10).map(|i| (i as f64, (i as f64).sqrt())).collect(),
                    dashed: false,
                    color: 0,
                },
                Series {
                    name: "bound".into(),
                    points: vec![(0.0, 3.0), (9.0, 3.0)],
                    dashed: true,
                    color: 3,
                },
            ],
            log_y: false,
        }
    }

    #[test]
    fn line_chart_png_and_svg_have_content() {
        let tmp = tempfile::tempdir().unwrap();
        let png_path = tmp.path().join("c.png");
        draw_lines(&chart(), &png_path).unwrap();
        let (w, h, px) = decode(&png_path);
        assert_eq!((w, h), SIZE);
        // the blue series and the red bound are both drawn
        let has = |c: RGBColor| px.chunks(3).any(|p| p == [c.0, c.1, c.2]);
        assert!(has(palette(0)) && has(palette(3)));
        let svg = tmp.path().join("c.svg");
        draw_lines(
            &LineChart {
                log_y: true,
                ..chart()
            },
            &svg,
        )
        .unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.contains("entropy per bond") && text.contains("<polyline"),
            "{}",
            &text[..200]
        );
        assert!(draw_lines(&chart(), &tmp.path().join("c.jpg")).is_err());
        let empty = LineChart {
            series: vec![],
            ..chart()
        };
        assert!(draw_lines(&empty, &png_path).is_err());
    }

    #[test]
    fn heatmap_colours_follow_the_values() {
        let tmp = tempfile::tempdir().unwrap();
        let map = Heatmap {
            title: "spectrum".into(),
            x_label: "epoch".into(),
            y_label: "index".into(),
            values: vec![vec![0.0, 1.0, 2.0], vec![3.0, 4.0, f64::NAN]],
            x_values: vec![1.0, 2.0, 3.0],
            first_row: 1.0,
        };
        let p = tmp.path().join("h.png");
        draw_heatmap(&map, &p).unwrap();
        let (_, _, px) = decode(&p);
        let has = |c: RGBColor| px.chunks(3).any(|p| p == [c.0, c.1, c.2]);
        assert!(has(colormap(0.0)) && has(colormap(1.0)));
        let ragged = Heatmap {
            values: vec![vec![1.0], vec![1.0, 2.0]],
            ..map
        };
        assert!(draw_heatmap(&ragged, &p).is_err());
    }
}

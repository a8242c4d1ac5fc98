//! A grid of images with a numeric label under each, as an RGB PNG.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::font::{digit_pixel, ADVANCE, HEIGHT};

/// Errors of the plotting crate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PlotError {
    /// Writing the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// PNG encoding failed.
    #[error("{}: PNG encoding failed: {message}", path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// The cause.
        message: String,
    },
    /// Nothing to draw, or inconsistent input.
    #[error("{0}")]
    Invalid(String),
}

/// One image to place in the grid: `channels` (1 grey or 3 RGB) planes of `height x width`
/// bytes, channel-major, and a label made of digits.
#[derive(Debug, Clone, Copy)]
pub struct GridImage<'a> {
    /// Pixel planes.
    pub pixels: &'a [u8],
    /// 1 or 3.
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// Label printed under the image (digits only).
    pub label: &'a str,
}

/// Draws `images` in rows of `cols`, each pixel magnified `scale` times, a label under each;
/// writes an RGB PNG to `path` and returns its `(width, height)`.
///
/// # Errors
/// No images, mixed sizes, a channel count other than 1 or 3, a zero scale or column count,
/// and I/O or encoding errors.
pub fn image_grid(
    images: &[GridImage<'_>],
    cols: usize,
    scale: usize,
    path: &Path,
) -> Result<(u32, u32), PlotError> {
    let first = images
        .first()
        .ok_or_else(|| PlotError::Invalid("no images to draw".into()))?;
    if cols == 0 || scale == 0 {
        return Err(PlotError::Invalid(format!(
            "columns ({cols}) and scale ({scale}) must be at least 1"
        )));
    }
    let (h, w) = (first.height, first.width);
    for im in images {
        if im.height != h || im.width != w || !(im.channels == 1 || im.channels == 3) {
            return Err(PlotError::Invalid(format!(
                "images must share one size with 1 or 3 channels: got {}x{}x{} next to {h}x{w}",
                im.channels, im.height, im.width
            )));
        }
        if im.pixels.len() != im.channels * h * w {
            return Err(PlotError::Invalid(format!(
                "an image has {} bytes, expected {}",
                im.pixels.len(),
                im.channels * h * w
            )));
        }
    }
    let font_px = scale.max(2) / 2 + 1;
    let label_h = HEIGHT * font_px + 2 * font_px;
    let (cell_w, cell_h) = (w * scale + 4, h * scale + label_h + 4);
    let rows = images.len().div_ceil(cols);
    let (img_w, img_h) = (cols * cell_w, rows * cell_h);
    let mut rgb = vec![255u8; img_w * img_h * 3];
    let mut put = |x: usize, y: usize, c: [u8; 3]| {
        let o = (y * img_w + x) * 3;
        rgb[o..o + 3].copy_from_slice(&c);
    };
    for (n, im) in images.iter().enumerate() {
        let (ox, oy) = ((n % cols) * cell_w + 2, (n / cols) * cell_h + 2);
        for y in 0..h * scale {
            for x in 0..w * scale {
                let p = (y / scale) * w + x / scale;
                let c = if im.channels == 1 {
                    [im.pixels[p]; 3]
                } else {
                    [im.pixels[p], im.pixels[h * w + p], im.pixels[2 * h * w + p]]
                };
                put(ox + x, oy + y, c);
            }
        }
        let ly = oy + h * scale + font_px;
        for (k, ch) in im
            .label
            .chars()
            .take((w * scale) / (ADVANCE * font_px))
            .enumerate()
        {
            for fy in 0..HEIGHT {
                for fx in 0..3 {
                    if digit_pixel(ch, fx, fy) == Some(true) {
                        for dy in 0..font_px {
                            for dx in 0..font_px {
                                put(
                                    ox + (k * ADVANCE + fx) * font_px + dx,
                                    ly + fy * font_px + dy,
                                    [200, 0, 0],
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    write_rgb_png(path, img_w, img_h, &rgb)?;
    Ok((img_w as u32, img_h as u32))
}

/// Writes an 8-bit RGB buffer (`width * height * 3` bytes, row-major) as a PNG file, whole
/// ([`write_whole`]: encoded in memory, then a temporary file renamed over `path`).
pub(crate) fn write_rgb_png(path: &Path, width: usize, height: usize, rgb: &[u8]) -> Result<(), PlotError> {
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, width as u32, height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let encode = |e: png::EncodingError| PlotError::Encode {
            path: path.into(),
            message: e.to_string(),
        };
        let mut writer = enc.write_header().map_err(encode)?;
        writer.write_image_data(rgb).map_err(encode)?;
        writer.finish().map_err(encode)?;
    }
    write_whole(path, &bytes)
}

/// Temporary files of this process get distinct names.
static TMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Writes `bytes` to `path` as a whole: a new temporary file in the same folder (never an
/// existing one followed), flushed, then renamed over `path`; removed on any error. A full disk
/// or a kill leaves the old picture or the new one, never a truncated one.
pub(crate) fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), PlotError> {
    use std::io::Write;
    let io = |source| PlotError::Io {
        path: path.into(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // keep the temporary name within the file system's 255 bytes whatever the target's length
    let short: String = name.chars().take(64).collect();
    let tmp = dir.join(format!(
        ".{short}.tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_with_the_expected_size_and_content() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("g.png");
        let black = vec![0u8; 4 * 4];
        let ims: Vec<GridImage> = (0..5)
            .map(|_| GridImage {
                pixels: &black,
                channels: 1,
                height: 4,
                width: 4,
                label: "7",
            })
            .collect();
        let (w, h) = image_grid(&ims, 3, 2, &path).unwrap();
        // cells: 4*2+4 = 12 wide; 4*2 + label (5*2 + 4) + 4 = 26 high; 3 columns, 2 rows
        assert_eq!((w, h), (36, 52));
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        // the first image's top-left pixel is black, the margin white
        assert_eq!(&buf[0..3], &[255, 255, 255]);
        let o = (2 * 36 + 2) * 3;
        assert_eq!(&buf[o..o + 3], &[0, 0, 0]);
        assert!(image_grid(&[], 3, 2, &path).is_err());
    }

    /// A picture replaces the old file whole, leaves no temporary file, works for names near
    /// the 255-byte limit, and a failed write leaves the old file as it was.
    #[test]
    fn pictures_are_written_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.png");
        std::fs::write(&path, b"old picture").unwrap();
        write_whole(&path, b"new picture").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new picture");
        let long = tmp.path().join(format!("{}.svg", "w".repeat(250)));
        write_whole(&long, b"<svg/>").unwrap();
        assert_eq!(std::fs::read(&long).unwrap(), b"<svg/>");
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
        // a folder where the picture should go: the write fails, nothing is left behind
        let blocked = tmp.path().join("blocked.png");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("inside"), b"kept").unwrap();
        assert!(write_whole(&blocked, b"x").is_err());
        assert_eq!(std::fs::read(blocked.join("inside")).unwrap(), b"kept");
        let after: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(after.iter().all(|n| !n.contains(".tmp-")), "{after:?}");
    }
}

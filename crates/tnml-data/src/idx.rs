//! The IDX format of MNIST and Fashion-MNIST, raw or gzipped.
//!
//! ```text
//! offset 0: 0x00 0x00 <type> <ndims>       type 0x08 = unsigned byte
//! offset 4: ndims big-endian u32 sizes
//! then:     prod(sizes) values, row-major
//! ```
//! Images are `idx3` (count, rows, cols), labels `idx1` (count). A file is accepted only if its
//! length is exactly what the header describes; gzip is detected by its magic bytes `1f 8b`.
//! A gzipped file is decompressed only as far as its header says (plus one byte, to notice
//! more): a gzip bomb is refused after reading what the header promised, never inflated whole.
//! Multi-member gzip streams (`cat a.gz b.gz`, valid for `gzip -t`) are read; bytes after the
//! last member that are not gzip are an error, not ignored.

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{io_err, DataError, Result};

/// A parsed IDX file of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idx {
    /// Sizes of each dimension.
    pub dims: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<u8>,
}

/// The most bytes tnml decompresses from one file (the largest IDX file, MNIST's training
/// images, is 47 MB).
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Reads a whole file, decompressing it when it starts with the gzip magic bytes, up to
/// [`MAX_DECOMPRESSED`] bytes.
///
/// # Errors
/// I/O, a corrupt gzip stream, more than [`MAX_DECOMPRESSED`] bytes.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(io_err(path))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut dec = MultiGzDecoder::new(&raw[..]);
        let out = read_at_most(&mut dec, MAX_DECOMPRESSED + 1, path)?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(DataError::Overlong {
                file: path.to_path_buf(),
                expected: MAX_DECOMPRESSED,
            });
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Reads at most `limit` bytes from `r` into a new buffer.
fn read_at_most(r: &mut impl Read, limit: u64, path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(limit)
        .read_to_end(&mut out)
        .map_err(|source| DataError::Gzip {
            file: path.to_path_buf(),
            source,
        })?;
    Ok(out)
}

/// Decompresses an IDX file only as far as its header describes (plus one byte).
fn read_gz_idx(raw: &[u8], expected_dims: usize, path: &Path) -> Result<Vec<u8>> {
    let mut dec = MultiGzDecoder::new(raw);
    let mut bytes = read_at_most(&mut dec, 4, path)?;
    // a short stream, a wrong magic or the wrong number of dimensions: parse_idx names it from
    // these four bytes (reading on would measure the data against a header it does not have)
    if bytes.len() < 4 || bytes[..3] != [0, 0, 0x08] || usize::from(bytes[3]) != expected_dims {
        return Ok(bytes);
    }
    let ndims = usize::from(bytes[3]);
    bytes.extend(read_at_most(&mut dec, 4 * ndims as u64, path)?);
    if bytes.len() < 4 + 4 * ndims {
        return Ok(bytes);
    }
    let body = bytes[4..].chunks_exact(4).fold(1u64, |acc, c| {
        acc.saturating_mul(u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
    });
    if body > MAX_DECOMPRESSED {
        return Err(DataError::TooLarge {
            file: path.to_path_buf(),
            claimed: body,
            limit: MAX_DECOMPRESSED,
        });
    }
    let expected = bytes.len() as u64 + body;
    bytes.extend(read_at_most(&mut dec, body + 1, path)?);
    if bytes.len() as u64 > expected {
        return Err(DataError::Overlong {
            file: path.to_path_buf(),
            expected,
        });
    }
    // the stream must end here: what follows the data is another gzip member or an error
    let mut rest = [0u8; 1];
    match dec.read(&mut rest) {
        Ok(0) => Ok(bytes),
        Ok(_) => Err(DataError::Overlong {
            file: path.to_path_buf(),
            expected,
        }),
        Err(source) => Err(DataError::Gzip {
            file: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses IDX bytes that must have `expected_dims` dimensions of unsigned bytes.
///
/// # Errors
/// Wrong magic, wrong number of dimensions, truncated or over-long data. `file` only names the
/// source in messages.
pub fn parse_idx(bytes: &[u8], expected_dims: usize, file: &Path) -> Result<Idx> {
    let what = if expected_dims == 1 {
        "labels (idx1-ubyte)"
    } else {
        "images (idx3-ubyte)"
    };
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            file: file.into(),
            expected: 4,
            found: bytes.len() as u64,
        });
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let bad_magic = |why: String| DataError::BadMagic {
        file: file.into(),
        expected: what,
        found: magic,
        why,
    };
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad_magic("the first two bytes must be zero".into()));
    }
    if bytes[2] != 0x08 {
        return Err(bad_magic(format!(
            "type code {:#04x}, only 0x08 (unsigned byte) is supported",
            bytes[2]
        )));
    }
    let ndims = bytes[3] as usize;
    if ndims != expected_dims {
        return Err(DataError::BadDimCount {
            file: file.into(),
            expected: expected_dims,
            found: ndims,
        });
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(DataError::Truncated {
            file: file.into(),
            expected: header as u64,
            found: bytes.len() as u64,
        });
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let body = dims.iter().fold(1u64, |acc, &d| acc.saturating_mul(d as u64));
    let expected = (header as u64).saturating_add(body);
    let found = bytes.len() as u64;
    if found < expected {
        return Err(DataError::Truncated {
            file: file.into(),
            expected,
            found,
        });
    }
    if found > expected {
        return Err(DataError::TrailingBytes {
            file: file.into(),
            expected,
            found,
        });
    }
    Ok(Idx {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Reads and parses an IDX file (gzipped or raw).
///
/// # Errors
/// As [`parse_idx`], plus I/O and gzip errors.
pub fn read_idx(path: &Path, expected_dims: usize) -> Result<Idx> {
    parse_maybe_gz(&std::fs::read(path).map_err(io_err(path))?, expected_dims, path)
}

/// Parses the bytes of an IDX file, gzipped (bounded, see the module docs) or raw.
///
/// # Errors
/// As [`parse_idx`], plus gzip errors and streams longer than their header.
pub fn parse_maybe_gz(raw: &[u8], expected_dims: usize, file: &Path) -> Result<Idx> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        parse_idx(&read_gz_idx(raw, expected_dims, file)?, expected_dims, file)
    } else {
        parse_idx(raw, expected_dims, file)
    }
}

/// Serializes an IDX file of unsigned bytes (used to write the shipped sample and in tests).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend((d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gzipped labels file whose magic says 4 dimensions (2052) is named for its magic, not
    /// measured against a header it does not have.
    #[test]
    fn a_gzipped_file_with_the_wrong_dimension_count_says_so() {
        use std::io::Write as _;
        let mut labels = encode_idx(&[5], &[1, 2, 3, 4, 5]);
        labels[3] = 4; // magic 0x00000804 = 2052
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&labels).unwrap();
        let e = parse_maybe_gz(&gz.finish().unwrap(), 1, Path::new("l.gz"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("4 dimension") || e.contains("dimensions"), "{e}");
        assert!(!e.contains("gzip bomb"), "{e}");
    }

    fn p() -> &'static Path {
        Path::new("x-idx3-ubyte")
    }

    #[test]
    fn round_trip() {
        let bytes = encode_idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let idx = parse_idx(&bytes, 3, p()).unwrap();
        assert_eq!(idx.dims, vec![2, 2, 3]);
        assert_eq!(idx.data[11], 12);
    }

    #[test]
    fn bad_headers_are_named() {
        let good = encode_idx(&[2, 2, 3], &[0; 12]);
        let mut bad = good.clone();
        bad[2] = 0x0d;
        let e = parse_idx(&bad, 3, p()).unwrap_err().to_string();
        assert!(
            e.contains("magic number 0x00000d03") && e.contains("type code 0x0d"),
            "{e}"
        );
        let e = parse_idx(&good, 1, p()).unwrap_err().to_string();
        assert_eq!(e, "x-idx3-ubyte: IDX file has 3 dimensions, expected 1");
        let e = parse_idx(&good[..20], 3, p()).unwrap_err().to_string();
        assert_eq!(
            e,
            "x-idx3-ubyte: truncated: header promises 28 bytes, file has 20"
        );
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            parse_idx(&long, 3, p()),
            Err(DataError::TrailingBytes {
                expected: 28,
                found: 29,
                ..
            })
        ));
        assert!(matches!(
            parse_idx(&[0, 0], 3, p()),
            Err(DataError::Truncated { .. })
        ));
        assert!(matches!(
            parse_idx(&good[..10], 3, p()),
            Err(DataError::Truncated { expected: 16, .. })
        ));
    }

    #[test]
    fn huge_dimensions_do_not_overflow() {
        let bytes = encode_idx(&[u32::MAX as usize, u32::MAX as usize, u32::MAX as usize], &[]);
        assert!(matches!(
            parse_idx(&bytes, 3, p()),
            Err(DataError::Truncated { .. })
        ));
    }
}

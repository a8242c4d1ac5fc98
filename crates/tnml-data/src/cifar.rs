//! The CIFAR-10 binary format (`data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`).
//!
//! Each record is 3073 bytes: one label byte (0..10), then a 32x32 image as three 1024-byte
//! planes (red, green, blue), each row-major. Images are kept in this channel-major order.

use std::path::Path;

use crate::error::{io_err, DataError, Result};

/// Bytes per record.
pub const RECORD: usize = 1 + 3 * 32 * 32;

/// Parses one CIFAR-10 binary batch into `(images, labels)`; images are `n x 3 x 32 x 32`.
///
/// # Errors
/// A length that is not a whole number of records, or a label outside 0..10.
pub fn parse_cifar_batch(bytes: &[u8], file: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(DataError::CifarRecordLength {
            file: file.into(),
            len: bytes.len(),
            record: RECORD,
        });
    }
    let n = bytes.len() / RECORD;
    let mut images = Vec::with_capacity(n * (RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for (index, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] >= 10 {
            return Err(DataError::LabelOutOfRange {
                file: file.into(),
                index,
                label: rec[0],
                classes: 10,
            });
        }
        labels.push(rec[0]);
        images.extend_from_slice(&rec[1..]);
    }
    Ok((images, labels))
}

/// Reads one batch file.
///
/// # Errors
/// As [`parse_cifar_batch`], plus I/O errors.
pub fn read_cifar_batch(path: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    parse_cifar_batch(&std::fs::read(path).map_err(io_err(path))?, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_rejects_bad_ones() {
        let mut bytes = vec![0u8; 2 * RECORD];
        bytes[0] = 3;
        bytes[RECORD] = 9;
        bytes[RECORD + 1] = 200; // first red pixel of image 1
        let (images, labels) = parse_cifar_batch(&bytes, Path::new("b.bin")).unwrap();
        assert_eq!(labels, vec![3, 9]);
        assert_eq!(images.len(), 2 * 3072);
        assert_eq!(images[3072], 200);
        let e = parse_cifar_batch(&bytes[..RECORD + 5], Path::new("b.bin"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "b.bin: 3078 bytes is not a whole number of 3073-byte CIFAR-10 records (1 records + 5 bytes)"
        );
        bytes[RECORD] = 10;
        let e = parse_cifar_batch(&bytes, Path::new("b.bin"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "b.bin: label 10 at index 1 is outside 0..10");
    }
}

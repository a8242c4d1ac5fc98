//! Fuzzes the IDX parser (raw bytes, and the same bytes behind the gzip detection, with the
//! bounded decompression) and the CIFAR-10 record parser: any input must give Ok or a typed
//! error, never a panic, and an Ok result must be consistent with its header.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tnml_data::cifar::parse_cifar_batch;
use tnml_data::idx::{parse_idx, parse_maybe_gz};

fuzz_target!(|data: &[u8]| {
    for dims in [1, 3] {
        for parsed in [
            parse_idx(data, dims, Path::new("fuzz")),
            parse_maybe_gz(data, dims, Path::new("fuzz")),
        ] {
            if let Ok(idx) = parsed {
                assert_eq!(idx.dims.len(), dims);
                assert_eq!(idx.data.len(), idx.dims.iter().product::<usize>());
            }
        }
    }
    if let Ok((images, labels)) = parse_cifar_batch(data, Path::new("fuzz")) {
        assert_eq!(images.len(), labels.len() * 3072);
        assert!(labels.iter().all(|&l| l < 10));
    }
});

//! Fuzzes the dense-matrix reader of `tnml entangle FILE` and `tnml mpo compress --input`: any
//! bytes give a matrix whose size the file's data justifies, or an error; never a panic or a
//! spin (a [0, 10^18] tensor spun before).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tnml_nn::weights::matrix_from_safetensors;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, m)) = matrix_from_safetensors(data, None, "fuzz") {
        assert!(m.nrows() > 0 && m.ncols() > 0);
        assert!(m.nrows() * m.ncols() * 4 <= data.len());
    }
});

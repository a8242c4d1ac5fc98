//! Fuzzes a net checkpoint: `checkpoint.json` (the first bytes up to a NUL) and `model.bpk`
//! (the rest). The header must parse through the same validation as a config built in code;
//! for the small models the weights are loaded into the model the header describes. Ok or a
//! typed error, never a panic or an abort.
#![no_main]

use std::path::Path;

use burn::tensor::Device;
use libfuzzer_sys::fuzz_target;
use tnml_nn::checkpoint::{load_model, parse_header};
use tnml_nn::Arch;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (json, model) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    if let Ok(header) = parse_header(json, Path::new("fuzz")) {
        let small = matches!(header.net.arch, Arch::Fc2 | Arch::Lenet5)
            && header.net.mpo.iter().flatten().all(|s| s.num_params() < 1 << 20);
        if small {
            let _ = load_model(&header, model.to_vec(), Path::new("fuzz"), &Device::flex());
        }
    }
});

//! Fuzzes the MPS classifier's model file (safetensors + metadata): Ok or a typed error, never
//! a panic or an allocation the file does not justify; a model that loads saves and loads back
//! to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tnml_mps::MpsClassifier;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = MpsClassifier::from_safetensors(data, "fuzz") {
        let bytes = model.to_safetensors().expect("a loaded model saves");
        let back = MpsClassifier::from_safetensors(&bytes, "fuzz").expect("a saved model loads");
        assert_eq!(back, model);
    }
});

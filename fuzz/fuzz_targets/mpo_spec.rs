//! Fuzzes the MPO spec grammar (`--mpo`: Gao's `M^{..}_{..}(D)`, `IN->OUT:D`, `;`-lists, `gao`)
//! and a spec as stored in a checkpoint (JSON): Ok or an error, never a panic or an overflow; an
//! Ok spec has consistent sizes and prints to text that parses back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tnml_nn::{MpoLayers, MpoSpec};

fn check(spec: &MpoSpec) {
    assert_eq!(spec.in_modes.len(), spec.out_modes.len());
    assert_eq!(spec.bond_dims.len() + 1, spec.in_modes.len());
    let _ = (
        spec.in_features(),
        spec.out_features(),
        spec.num_params(),
        spec.best_plan(100),
    );
    let back = MpoSpec::parse(&spec.to_string()).expect("a printed spec parses");
    assert_eq!(
        (&back.in_modes, &back.out_modes, &back.bond_dims),
        (&spec.in_modes, &spec.out_modes, &spec.bond_dims)
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(spec) = MpoSpec::parse(text) {
            check(&spec);
        }
        if let Ok(MpoLayers::Specs(specs)) = text.parse::<MpoLayers>() {
            specs.iter().for_each(check);
        }
    }
    if let Ok(spec) = serde_json::from_slice::<MpoSpec>(data) {
        check(&spec);
    }
});

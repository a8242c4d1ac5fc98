//! Fuzzes an experiment variant: TOML read into the CLI's `NetTrainArgs` (its source compiled
//! in here) and validated into the model and training configurations, as `tnml experiment`
//! does before training anything. Ok or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/tnml-cli/src/args.rs"]
mod args;
#[allow(dead_code)]
#[path = "../../crates/tnml-cli/src/net/config.rs"]
mod config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return;
    };
    if let Ok(args) = config::NetTrainArgs::from_table(table) {
        let _ = args.net_config();
        let _ = args.train_config();
    }
});

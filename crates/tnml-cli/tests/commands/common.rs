//! What every command test needs: the `tnml` binary built for this test run.

use assert_cmd::Command;

/// A command running the `tnml` binary of this build.
pub fn tnml() -> Command {
    Command::cargo_bin("tnml").unwrap()
}

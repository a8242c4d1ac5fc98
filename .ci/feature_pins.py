"""Fails when `cargo test --release --workspace` would rebuild what `cargo run --release -p
tnml-cli` built: a crate both builds use whose features differ (a dev-dependency turning on a
feature of a crate under burn rebuilds burn). The fix is a feature pin in crates/tnml-cli's
[dependencies]. Run from the repository root.
"""
import re
import subprocess
import sys


def features(*args):
    out = subprocess.run(
        ["cargo", "tree", "--locked", *args, "--prefix", "none", "--format", "{p} [{f}]"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"(\S+) (v\S+)(?: \(.*?\))?(?: \[(.*)\])?", line.strip())
        if m:
            found.setdefault((m.group(1), m.group(2)), set()).update(filter(None, (m.group(3) or "").split(",")))
    return found


run = features("-p", "tnml-cli", "-e", "normal")
test = features("--workspace", "-e", "normal,dev")
differ = [(k, sorted(test[k] - run[k]), sorted(run[k] - test[k])) for k in sorted(set(run) & set(test)) if run[k] != test[k]]
for (name, version), extra, missing in differ:
    print(f"{name} {version}: the tests add {extra}, the binary alone has {missing}: pin them in crates/tnml-cli/Cargo.toml")
print(f"crates built with other features by the two README commands: {len(differ)}")
sys.exit(1 if differ else 0)

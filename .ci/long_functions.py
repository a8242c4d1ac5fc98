"""Fails when a function in crates/*/src is longer than a limit (default 120 lines).

A function runs from its `fn` line to the brace that closes its body (strings, character
literals and line comments left out of the count of braces). Long functions are split into
named steps; run from the repository root.
"""
import os, re, sys
LIMIT = int(sys.argv[1]) if len(sys.argv) > 1 else 120
FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?(?:extern\s+\"C\"\s+)?fn\s+(\w+)")
found = []
for root in sorted(os.listdir("crates")):
    src = os.path.join("crates", root, "src")
    for d, _, fs in os.walk(src):
        for name in fs:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(d, name)
            lines = open(path).read().split("\n")
            i = 0
            while i < len(lines):
                m = FN.match(lines[i])
                if not m:
                    i += 1
                    continue
                depth, started, j = 0, False, i
                while j < len(lines):
                    code = re.sub(r"//.*", "", lines[j])
                    code = re.sub(r"'(?:\\.|[^'\\])'", "", code)
                    code = re.sub(r'"(?:\\.|[^"\\])*"', "", code)
                    if not started and ";" in code and "{" not in code:
                        break
                    depth += code.count("{") - code.count("}")
                    if "{" in code:
                        started = True
                    if started and depth <= 0:
                        break
                    j += 1
                n = j - i + 1
                if started and n > LIMIT:
                    found.append((n, path, i + 1, m.group(1)))
                i += 1
for n, path, line, fn in sorted(found, reverse=True):
    print(f"{n:5} {path}:{line} {fn}")
print(f"{len(found)} functions over {LIMIT} lines")
sys.exit(1 if found else 0)

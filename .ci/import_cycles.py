"""Fails when files of one crate import each other in a circle.

An edge a -> b is a `crate::`/`super::` path in a that names b's module (tests' `mod tests` blocks
and comments left out), or a `mod.rs` using a child module it declares. A strongly connected
component of more than one file is a circle. Run from the repository root.
"""
import os
import re
import sys

sys.setrecursionlimit(10000)


def module_path(src, path):
    parts = os.path.relpath(path, src)[:-3].split(os.sep)
    return parts[:-1] if parts[-1] in ("mod", "lib", "main") else parts


def module_file(src, module):
    base = os.path.join(src, *module) if module else src
    for candidate in (base + ".rs", os.path.join(base, "mod.rs")):
        if os.path.isfile(candidate):
            return candidate
    if not module:
        for root in ("lib.rs", "main.rs"):
            if os.path.isfile(os.path.join(src, root)):
                return os.path.join(src, root)
    return None


def edges(src, path):
    me = module_path(src, path)
    text = open(path).read()
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
    text = "\n".join(l for l in text.split("\n") if not l.strip().startswith("//"))
    out = set()
    for m in re.finditer(r"\b(crate|super)((?:::\w+)+)", text):
        tail = m.group(2).split("::")[1:]
        if m.group(1) == "crate":
            base = []
        else:
            base = me[:-1]
            while tail and tail[0] == "super":
                base, tail = base[:-1], tail[1:]
        for k in range(len(tail), -1, -1):
            target = module_file(src, base + tail[:k])
            if target:
                if target != path:
                    out.add(target)
                break
    if os.path.basename(path) == "mod.rs":
        for child in re.findall(r"^\s*(?:pub(?:\([a-z]+\))? )?mod (\w+);", text, flags=re.M):
            if re.search(r"(?<![:\w])" + child + r"::", text):
                target = module_file(src, me + [child])
                if target:
                    out.add(target)
    return out


def circles(graph):
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


total = 0
for crate in sorted(os.listdir("crates")):
    src = os.path.join("crates", crate, "src")
    if not os.path.isdir(src):
        continue
    files = [os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs if f.endswith(".rs")]
    graph = {f: edges(src, f) for f in files}
    for component in circles(graph):
        print(f"{crate}: import circle: {' <-> '.join(component)}")
        total += 1
print(f"import circles: {total}")
sys.exit(1 if total else 0)

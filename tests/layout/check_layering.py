#!/usr/bin/env python3
"""Checks that parafine's source groups form a chain without cycles.

The library is split into folders, each a layer of the architecture, ordered from the bottom
up (README: Layout). A file in group G may include headers of G and of groups below it, never
of a group above it; the command-line code (src/cli) may include every group; the library
never includes src/cli. Also checks that every header and source lives in a known group with
its header and source folders mirrored, and that each file opens with a comment.

Usage: check_layering.py REPO_ROOT   (exit 1 and one line per violation when it fails)
"""
import pathlib
import re
import sys

CHAIN = ["core", "layers", "model", "io", "dist", "data", "cache", "train"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def group_of_include(path):
    m = re.match(r"parafine/([a-z_]+)/", path)
    if m:
        return m.group(1)
    if path.startswith("cli/"):
        return "cli"
    return None


def main():
    root = pathlib.Path(sys.argv[1])
    problems = []
    checked = 0
    files = sorted((root / "include" / "parafine").rglob("*.hpp")) + sorted((root / "src").rglob("*.[ch]pp"))
    for f in files:
        rel = f.relative_to(root)
        parts = rel.parts
        group = parts[2] if parts[0] == "include" else parts[1]
        if len(parts) != (4 if parts[0] == "include" else 3):
            problems.append(f"{rel}: not in a group folder (expected include/parafine/<group>/ or src/<group>/)")
            continue
        if group not in CHAIN and group != "cli":
            problems.append(f"{rel}: unknown group '{group}' (known: {', '.join(CHAIN)}, cli)")
            continue
        if group == "cli" and parts[0] == "include":
            problems.append(f"{rel}: the command-line code is not library API; its header belongs in src/cli/")
        text = f.read_text()
        if not text.lstrip().startswith("//"):
            problems.append(f"{rel}: does not begin with a comment saying what the file is for")
        level = len(CHAIN) if group == "cli" else CHAIN.index(group)
        for inc in INCLUDE.findall(text):
            target = group_of_include(inc)
            if target is None:
                continue
            checked += 1
            if target == "cli" and group != "cli":
                problems.append(f"{rel}: includes {inc}: the library must not include the command-line code")
            elif target != "cli":
                if target not in CHAIN:
                    problems.append(f"{rel}: includes {inc} from unknown group '{target}'")
                elif CHAIN.index(target) > level:
                    problems.append(f"{rel}: group '{group}' includes {inc} from higher group '{target}'")
    # Mirroring: every source group that has headers has the same folder name in include/.
    for g in CHAIN:
        if (root / "src" / g).is_dir() != (root / "include" / "parafine" / g).is_dir():
            problems.append(f"group '{g}': src/{g}/ and include/parafine/{g}/ must both exist")
    for p in problems:
        print("LAYERING:", p)
    print(f"checked {len(files)} files, {checked} parafine includes: {len(problems)} violation(s)")
    return 1 if problems or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())

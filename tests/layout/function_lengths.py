#!/usr/bin/env python3
"""Lists the longest function bodies in parafine's C++ sources, and fails when one is too long.

STYLE.md: no function over ~100 lines; a long one is a list of named steps waiting to be
written. A function here is a brace block opened at the end of a line that looks like a
definition (a parameter list's closing parenthesis before the brace, not a control statement
or a lambda), counted from its first line to its closing brace; comments and blank lines count.

Usage: function_lengths.py [--max N] [--top K] FILE_OR_DIR...
"""
import argparse
import pathlib
import re
import sys

CONTROL = re.compile(r"^\s*(\}\s*)?(if|for|while|switch|catch|else|do|try)\b")
DEFINITION_END = re.compile(r"\)\s*(const)?\s*(noexcept)?\s*(override)?\s*(->\s*[\w:<>,\s*&]+)?\s*(:.*)?\{\s*$")


def strip_strings_and_comments(line):
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])*'", "''", line)
    return line.split("//")[0]


def functions(path):
    lines = path.read_text().splitlines()
    depth = 0
    open_fn = None  # (name line index, depth before the brace)
    in_block_comment = False
    for i, raw in enumerate(lines):
        line = raw
        if in_block_comment:
            if "*/" not in line:
                continue
            line = line.split("*/", 1)[1]
            in_block_comment = False
        if "/*" in line and "*/" not in line:
            in_block_comment = True
            line = line.split("/*", 1)[0]
        code = strip_strings_and_comments(line)
        if open_fn is None and DEFINITION_END.search(code) and not CONTROL.match(code) \
                and "[" not in code.split("(")[0] and not code.lstrip().startswith(("namespace", "struct", "class", "enum")):
            # Walk back to the line that starts the declaration (continuation lines of a signature).
            start = i
            while start > 0 and lines[start - 1].strip() and not lines[start - 1].rstrip().endswith((";", "}", "{")) \
                    and not lines[start - 1].lstrip().startswith(("//", "#", "template")):
                start -= 1
            open_fn = (start, depth)
        depth += code.count("{") - code.count("}")
        if open_fn is not None and depth <= open_fn[1]:
            start = open_fn[0]
            name = re.sub(r"\s+", " ", " ".join(l.strip() for l in lines[start:i + 1][:3]))[:90]
            yield (i - start + 1, start + 1, name)
            open_fn = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max", type=int, default=0, help="fail when a function is longer than this")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args()
    found = []
    for p in a.paths:
        p = pathlib.Path(p)
        for f in sorted(p.rglob("*.cpp")) + sorted(p.rglob("*.hpp")) if p.is_dir() else [p]:
            found += [(n, f"{f}:{line}", name) for n, line, name in functions(f)]
    found.sort(reverse=True)
    for n, where, name in found[: a.top]:
        print(f"{n:5d}  {where}  {name}")
    too_long = [f for f in found if a.max and f[0] > a.max]
    print(f"{len(found)} functions; longest {found[0][0] if found else 0} lines"
          + (f"; {len(too_long)} over {a.max}" if a.max else ""))
    return 1 if too_long or not found else 0


if __name__ == "__main__":
    sys.exit(main())

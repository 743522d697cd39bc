"""What the page's wasm is made of, by crate: reads `twiggy top --format csv` of the wasm that
wasm-bindgen writes (names still in it) and prints markdown tables of the bytes per crate and
the largest functions. Used by scripts/wasm-size.

    python3 bench/wasm_crates.py TOP.csv [ROWS]
"""

import csv
import re
import sys
from collections import defaultdict


def crate(name):
    """The crate a function belongs to: the first path segment of its name, looking through
    `<impl X as Y>` (X's crate: where the code was written) and drop_in_place<T> (T's)."""
    if name.startswith("data segment"):
        return "(data: strings, tables, constants)"
    if "::" not in name:
        return "(no path: C runtime, math, wasm-bindgen glue, tables)"
    for prefix in ("core::ptr::drop_in_place<", "<"):
        while name.startswith(prefix):
            name = name[len(prefix):]
    name = name.lstrip("&*(").removeprefix("mut ").removeprefix("dyn ")
    first = re.split(r"::|<| ", name)[0]
    # `<T as Trait>::method`: a generic impl, whose crate the name does not say.
    return "(generic impls)" if re.fullmatch(r"[A-Z]\w{0,2}", first) else first or "(other)"


# What each crate is there for, to add up the page's parts.
PARTS = [
    ("WebGPU: Burn's cubecl backend, its kernels and their compiler, wgpu",
     r"^(cubecl|cubek|burn_cubecl|pliron|wgpu|naga|combine|rustc_apfloat|"
     r"float_ord|tracy)"),
    ("CPU: Burn's flex backend, matrix products, SIMD, threads",
     r"^(burn_flex|gemm|macerator|rayon|pulp|seq_macro|matrixmultiply)"),
    ("Burn's tensor API, autodiff, optimisers, modules, weight files",
     r"^(burn|bytemuck|half|num_traits|ciborium|serde)"),
    ("photo decoding", r"^(image|zune|png|fdeflate|image_webp|gif|weezl|miniz|crc32|bmp)"),
    ("the page: Leptos", r"^(leptos|tachys|reactive|any_spawner|or_poisoned|throw_error|"
     r"send_wrapper|hydration|oco|server_fn|catdog_web|web_sys|js_sys|wasm_bindgen)"),
    ("the model crate", r"^catdog_model"),
    ("Rust's standard library, hashing, formatting", r"^(core|alloc|std|hashbrown|compiler_builtins|"
     r"dlmalloc|foldhash|ahash)"),
]


def part(crate_name):
    for name, pattern in PARTS:
        if re.match(pattern, crate_name):
            return name
    return "other (data, generic impls, glue, the rest)"


def main(path, top):
    # The names themselves ("function names" and the other name subsections) are not shipped:
    # wasm-opt drops them.
    rows = [r for r in csv.DictReader(open(path)) if 'names" subsection' not in r["Name"]]
    total = sum(int(r["ShallowSize"]) for r in rows)
    sizes = defaultdict(int)
    for row in rows:
        sizes[crate(row["Name"])] += int(row["ShallowSize"])
    parts = defaultdict(int)
    for name, size in sizes.items():
        parts[part(name)] += size
    print("\n| part of the page | bytes | share |\n|---|---:|---:|")
    for name, size in sorted(parts.items(), key=lambda item: -item[1]):
        print(f"| {name} | {size:,} | {100 * size / total:.1f} % |")

    ranked = sorted(sizes.items(), key=lambda item: -item[1])
    print("\n| crate | bytes | share |\n|---|---:|---:|")
    for name, size in ranked[:top]:
        print(f"| {name} | {size:,} | {100 * size / total:.1f} % |")
    rest = sum(size for _, size in ranked[top:])
    print(f"| {len(ranked[top:])} other crates | {rest:,} | {100 * rest / total:.1f} % |")
    print(f"| **all** (before wasm-opt, without the name section) | **{total:,}** | |")

    print("\n| largest functions | bytes |\n|---|---:|")
    for row in sorted(rows, key=lambda r: -int(r["ShallowSize"]))[:15]:
        name = re.sub(r"::h[0-9a-f]{16}$", "", row["Name"])
        name = name if len(name) < 110 else name[:107] + "..."
        print(f"| `{name}` | {int(row['ShallowSize']):,} |")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25)

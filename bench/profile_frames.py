"""The top frames of a py-spy raw (collapsed-stack) profile: each line is
`frame;frame;...;leaf COUNT`; a frame's share is the samples in which it is the leaf.

Native frames of stripped libraries (libgomp's barrier, oneDNN's JIT) come as bare
addresses: with the process's /proc/self/maps they are named by the library they lie in,
and counted together per library.
"""

from __future__ import annotations

from collections import Counter
from pathlib import PurePath


def _ranges(maps: str) -> list[tuple[int, int, str]]:
    out = []
    for line in maps.splitlines():
        parts = line.split()
        if len(parts) >= 6:
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi, PurePath(parts[5]).name))
    return out


def _leaf(stack: str, ranges) -> str:
    leaf = stack.rsplit(";", 1)[-1].split(" (")[0]  # "func (file:line)": any line of func
    if leaf.startswith("0x"):
        address = int(leaf, 16)
        lib = next((name for lo, hi, name in ranges if lo <= address < hi), "anonymous (JIT)")
        return f"[{lib}]"
    return leaf


def top_frames(raw: str, n: int, maps: str = "") -> list[tuple[str, float]]:
    ranges = _ranges(maps)
    own: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            own[_leaf(stack, ranges)] += int(count)
    total = sum(own.values()) or 1
    return [(frame, c / total) for frame, c in own.most_common(n)]

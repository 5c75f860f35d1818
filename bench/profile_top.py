"""Top functions of a py-spy raw profile (collapsed stacks).

    python -m bench.run --only relay --profile /tmp/prof   # writes relay-ours_c0.txt, ...
    python -m bench.profile_top /tmp/prof/relay-ours_c0.txt [...] [--top 25]

Prints, per function (``name (file)``), the share of busy samples where it
is the leaf (self) and where it is anywhere on the stack (total; the entry
frames shared by every stack of a thread are left out). py-spy records only
busy samples; time in uvloop's C code shows as ``Runner.run``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

LINE = re.compile(r"\s*\((.*?):\d+\)$")


def frame_name(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (to/file.py)``."""
    m = LINE.search(frame)
    if not m:
        return frame.strip()
    path = "/".join(m.group(1).split("/")[-2:])
    return f"{frame[: m.start()].strip()} ({path})"


def top(path: Path, count: int) -> str:
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        weight = int(n)
        samples += weight
        names = [frame_name(f) for f in frames]
        self_time[names[-1]] += weight
        for name in set(names):
            total_time[name] += weight
    if not samples:
        return f"{path}: no samples"
    out = [f"{path}: {samples} busy samples", "", "self %  function"]
    out += [f"{100 * n / samples:6.1f}  {name}" for name, n in self_time.most_common(count)]
    out += ["", "total % function"]
    # the entry chain (typer, uvicorn, asyncio.run) is on every stack of the main thread
    chain = {name for name, n in total_time.items() if n >= 0.98 * max(total_time.values())}
    ranked = [(name, n) for name, n in total_time.most_common() if name not in chain]
    out += [f"{100 * n / samples:6.1f}  {name}" for name, n in ranked[:count]]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.profile:
        print(top(path, args.top))
        print()


if __name__ == "__main__":
    main()

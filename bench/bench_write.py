"""The command's write of GPT-2 XL in this process, each of its parts switched off in turn.

    .venv/bin/python bench/bench_write.py [--layers 12] [--repeats 2] [--dir /tmp]

Each row is ``save_entries`` of GPT-2 XL's plan (--layers blocks) to a fresh .safetensors file under
--dir, fsynced and deleted, with the table's statistics (``measure``), as the command writes it:

- now: pieces drawn with their moments in one pass into reused buffers, one batch ahead of the writer;
- not ahead: the same, each piece drawn only once the one before it is written;
- kernel on one thread: ahead, with numba's kernels on one thread (the writer has the other core);
- before: drawn into fresh memory, measured by a second pass, not ahead (the former write).

The variants run in turn, --repeats times, after one untimed run that loads the kernels; the table
gives the best and every time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numba
from bench_tree import gpt2_xl
from machine import cpu_model

from initreg import io, tree, write
from initreg.moments import Moments

NOW_AHEAD, NOW_FILLED = io.one_batch_ahead, write._filled_distribution


def in_order(items: Iterable[Any], nbytes: Callable[[Any], int]) -> Iterator[Any]:
    """The items, each made only when it is asked for (no worker thread)."""
    return iter(items)


VARIANTS = {  # name: (ahead, filled, numba threads)
    "now": (NOW_AHEAD, NOW_FILLED, 2),
    "not ahead": (in_order, NOW_FILLED, 2),
    "kernel on one thread": (NOW_AHEAD, NOW_FILLED, 1),
    "before": (in_order, lambda entry, backend: None, 2),
}


def timed_write(entries: list[Any], folder: Path, variant: tuple[Any, Any, int]) -> float:
    """Seconds to write `entries` with `variant`'s parts (see VARIANTS)."""
    io.one_batch_ahead, write._filled_distribution = variant[0], variant[1]
    numba.set_num_threads(min(variant[2], numba.config.NUMBA_NUM_THREADS))
    moments = {entry.path: Moments() for entry in entries}
    start = time.perf_counter()
    written = tree.save_entries(
        entries, 0, folder / "tree.safetensors", quiet=True, measure=lambda e, found: moments[e.path].merge(*found)
    )
    seconds = time.perf_counter() - start
    written.unlink()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=12, help="blocks of GPT-2 XL (48: the real model)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the file is written (and deleted)")
    args = parser.parse_args()
    spec, rules = gpt2_xl(args.layers)
    entries = tree.plan(spec, rules)
    print(f"machine: {cpu_model()}; numba threads: {numba.config.NUMBA_NUM_THREADS}")
    print(
        f"GPT-2 XL with {args.layers} blocks: {sum(e.nbytes for e in entries) / 1e9:.2f} GB in {len(entries)} tensors"
    )
    print()
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        timed_write(entries, Path(folder), VARIANTS["now"])  # loads the kernels
        for _ in range(args.repeats):
            for name, variant in VARIANTS.items():
                times[name].append(timed_write(entries, Path(folder), variant))
    print("| write | best s | runs (s) | vs now |")
    print("|---|---:|---|---:|")
    now = min(times["now"])
    for name, seconds in times.items():
        print(f"| {name} | {min(seconds):.2f} | {' '.join(f'{s:.2f}' for s in seconds)} | {min(seconds) / now:.2f}x |")


if __name__ == "__main__":
    main()

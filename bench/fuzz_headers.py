"""A seeded fuzzer of the header readers: mutated .npz and .safetensors files, read back by initreg.

    .venv/bin/python bench/fuzz_headers.py [--seed 0] [--library 42000] [--command 2000] [--many 0]

Small valid files are written by ``initreg.io.save`` (a few small tensors of several dtypes, so that
most of each file is header). Each mutation is one of: a bit flipped, a byte set to an interesting
value (0, 0xff, 0x7f, 0x80, or a character of JSON or of a Python literal), the file truncated, or 1
to 8 bytes inserted; its position is drawn uniformly over the file. Every mutated file is read by
``io.read_header`` (--library mutations) and by the command ``initreg model=file model.path=...``
(--command mutations, one process each, with dry_run=true: the header is read, the rules planned and
the table printed, nothing drawn). A reader may give tensors ("ok") or refuse the file with one
InitregError ("error"; in the command: exit 2 and one ``initreg: error:`` line, no traceback);
anything else is counted under the exception's name (or "command: ..." for the command) and the
first few are printed. With --many N, it also times ``io.read_header`` of a file of N empty float32
tensors of each kind (written by ``io.save``), and checks that N + 1 are refused by name when N is
io.MAX_TENSORS. The table gives the counts per outcome and per file kind; the exit status is 1
if any mutation got another outcome.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import numpy as np

from initreg import io
from initreg.errors import InitregError

KINDS = (".npz", ".safetensors")
INTERESTING = (0x00, 0xFF, 0x7F, 0x80, *b"\"'{}[](),:\\ \n0119-eE.")
ARRAYS = {
    "dense.kernel": np.arange(6, dtype=np.float32).reshape(2, 3),
    "dense.bias": np.zeros(3, np.float16),
    "ids": np.arange(2, dtype=np.int64),
    "empty": np.zeros((0, 2), np.float64),
}


def seed_files(folder: Path) -> dict[str, bytes]:
    """The valid files mutations start from, by suffix: each of ARRAYS's tensors, written by initreg."""
    return {kind: io.save(ARRAYS, folder / f"seed{kind}").read_bytes() for kind in KINDS}


def mutate(data: bytes, rng: random.Random) -> bytes:
    """`data` with one mutation: a bit flip, an interesting byte, a truncation or an insertion (see above)."""
    position = rng.randrange(len(data))
    how = rng.randrange(4)
    if how == 0:
        return data[:position] + bytes([data[position] ^ (1 << rng.randrange(8))]) + data[position + 1 :]
    if how == 1:
        return data[:position] + bytes([rng.choice(INTERESTING)]) + data[position + 1 :]
    if how == 2:
        return data[:position]
    inserted = bytes(
        rng.choice(INTERESTING) if rng.random() < 0.5 else rng.randrange(256) for _ in range(rng.randint(1, 8))
    )
    return data[:position] + inserted + data[position:]


def mutate_member(data: bytes, rng: random.Random) -> bytes:
    """The .npz archive `data` with one member's .npy bytes mutated, stored again with a matching CRC."""
    with zipfile.ZipFile(BytesIO(data)) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    chosen = rng.choice(sorted(members))
    members[chosen] = mutate(members[chosen], rng)
    rebuilt = BytesIO()
    with zipfile.ZipFile(rebuilt, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, member in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=io.ZIP_EPOCH), member)
    return rebuilt.getvalue()


def mutations(seeds: dict[str, bytes], count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """`count` (kind, mutated bytes) pairs, the kinds taking turns, drawn from `random.Random(seed)`.

    Half of the .npz mutations change one member and store it again with its CRC, as a deliberately
    crafted file would: the others mostly end at the archive's CRC check.
    """
    rng = random.Random(seed)
    for number in range(count):
        kind = KINDS[number % len(KINDS)]
        if kind == ".npz" and rng.random() < 0.5:
            yield kind, mutate_member(seeds[kind], rng)
        else:
            yield kind, mutate(seeds[kind], rng)


def library_outcome(path: Path) -> str:
    """'ok' for a list of TensorInfo, 'error' for an InitregError naming the file, else the exception's name."""
    try:
        tensors = io.read_header(path)
    except InitregError as error:
        return "error" if repr(str(path)) in str(error) else "error not naming the file"
    except Exception as error:  # the fuzzer's purpose: any other exception is counted, not raised
        return type(error).__name__
    return "ok" if all(isinstance(tensor, io.TensorInfo) for tensor in tensors) else "not TensorInfo"


def command_outcome(path: Path) -> str:
    """'ok' (exit 0), 'error' (exit 2, one `initreg: error:` line, no traceback), else what happened."""
    command = [str(Path(sys.executable).with_name("initreg")), "model=file", f"model.path={path}", "dry_run=true"]
    environment = {name: value for name, value in os.environ.items() if name != "HYDRA_FULL_ERROR"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)
    lines = done.stderr.splitlines()
    if "Traceback" in done.stderr:
        return "command: traceback"
    if done.returncode == 0:
        return "ok"
    if done.returncode == 2 and sum(line.startswith("initreg: error:") for line in lines) == 1:
        return "error"
    return f"command: exit {done.returncode}"


def fuzz_library(folder: Path, seeds: dict[str, bytes], count: int, seed: int) -> Counter[tuple[str, str]]:
    """Counts of (kind, outcome) of `count` mutations read by `io.read_header`."""
    counts: Counter[tuple[str, str]] = Counter()
    for kind, data in mutations(seeds, count, seed):
        path = folder / f"mutated{kind}"
        path.write_bytes(data)
        counts[kind, library_outcome(path)] += 1
    return counts


def fuzz_command(folder: Path, seeds: dict[str, bytes], count: int, seed: int) -> Counter[tuple[str, str]]:
    """Counts of (kind, outcome) of `count` mutations read by the command (one process each)."""
    counts: Counter[tuple[str, str]] = Counter()
    for kind, data in mutations(seeds, count, seed):
        path = folder / f"mutated{kind}"
        path.write_bytes(data)
        counts[kind, command_outcome(path)] += 1
    return counts


def time_many(folder: Path, count: int) -> str:
    """Seconds `io.read_header` takes for files of `count` empty tensors, per kind; and the refusal of one more."""
    lines = [f"\nio.read_header of {count:,} empty tensors"]
    for kind in KINDS:
        arrays = {f"t{number}": np.zeros(0, np.float32) for number in range(count)}
        path = io.save(arrays, folder / f"many{kind}")
        start = time.perf_counter()
        read = len(io.read_header(path))
        lines.append(f"{kind:<14}{time.perf_counter() - start:8.2f} s  {read:,} tensors read")
        if count == io.MAX_TENSORS:
            io.save({**arrays, "one.more": np.zeros(0, np.float32)}, path)
            try:
                io.read_header(path)
                lines.append(f"{kind:<14}{count + 1:,} tensors were read: the cap did not hold")
            except InitregError as error:
                lines.append(f"{kind:<14}{count + 1:,} tensors: {error}")
        path.unlink()
    return "\n".join(lines)


def table(title: str, counts: Counter[tuple[str, str]]) -> str:
    """Counts per outcome (rows) and file kind (columns), with totals."""
    outcomes = sorted({outcome for _, outcome in counts}, key=lambda o: (o not in ("ok", "error"), o))
    lines = [title, f"{'outcome':<28}" + "".join(f"{kind:>14}" for kind in KINDS) + f"{'all':>10}"]
    for outcome in outcomes:
        cells = [counts[kind, outcome] for kind in KINDS]
        lines.append(f"{outcome:<28}" + "".join(f"{cell:>14,}" for cell in cells) + f"{sum(cells):>10,}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--library", type=int, default=42_000, help="mutations read by io.read_header")
    parser.add_argument("--command", type=int, default=2_000, help="mutations read by the initreg command")
    parser.add_argument("--many", type=int, default=0, help="also time reading a file of this many empty tensors")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        seeds = seed_files(folder)
        library = fuzz_library(folder, seeds, arguments.library, arguments.seed)
        print(table(f"io.read_header, {arguments.library:,} mutations, seed {arguments.seed}", library))
        command = fuzz_command(folder, seeds, arguments.command, arguments.seed)
        print(table(f"\ninitreg model=file, {arguments.command:,} mutations, seed {arguments.seed}", command))
        if arguments.many:
            print(time_many(folder, arguments.many))
    other = sum(n for (_, outcome), n in (library + command).items() if outcome not in ("ok", "error"))
    return 1 if other else 0


if __name__ == "__main__":
    sys.exit(main())

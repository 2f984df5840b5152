"""Time `import initreg` in fresh interpreters, beside `import numpy` (which it needs), and print a table.

Run: python bench/bench_import.py [repeats]
"""

from __future__ import annotations

import statistics
import subprocess
import sys

TARGET_MS = 150.0


def import_ms(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1e3)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    rows = {m: [import_ms(m) for _ in range(repeats)] for m in ("numpy", "initreg")}
    numpy_ms = statistics.median(rows["numpy"])
    print(
        f"{'module':<10} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'vs numpy':>9}   (target < {TARGET_MS:.0f} ms)"
    )
    for module, times in rows.items():
        median = statistics.median(times)
        print(f"{module:<10} {median:>10.1f} {min(times):>8.1f} {max(times):>8.1f} {median / numpy_ms:>8.2f}x")


if __name__ == "__main__":
    main()

"""How long does each cell of each notebook take in the real run (what a lecturer waits for)?

Executes every notebook of ``solutions/`` top to bottom in a fresh kernel with
``LVMLIB_SMOKE=0`` (the real run, not the test suite's smoke mode) and times each code cell
by the wall clock, and the kernel process's CPU time (all its threads, from /proc) beside it:
on a machine shared with other work the wall time grows with the load, the CPU time much less.

The budget in front of a room: no cell over 10 s, except a training cell (tagged
``training`` in ``solutions/``), which shows a progress bar and offers a fast path.
Reported: every cell over 1 s, each notebook's total, and the cells over the budget.
Written to results/notebook_cells.{md,json} with the machine and its load average.

The real run trains every model: ``LVMLIB_RUN_CACHE`` (the training cells' fast path) is
unset for the notebooks, unless ``--run-cache DIR`` asks for it; then a second run with the
same folder times the fast path (the training cells load their finished runs).

    nice -n 5 python benchmarks/bench_notebook_cells.py            # every notebook
    python benchmarks/bench_notebook_cells.py 04_the_elbo.ipynb    # some of them
    python benchmarks/bench_notebook_cells.py --run-cache /tmp/runs --out /tmp/fast 07_beyond_the_standard_vae.ipynb
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

RUN_CACHE_ENV = "LVMLIB_RUN_CACHE"
BUDGET_S = 10.0
REPORT_OVER_S = 1.0


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of a process so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_notebook(path: Path, timeout: int, run_cache: Path | None = None) -> dict:
    """Run a notebook cell by cell in a fresh kernel; wall time and the kernel's CPU time per cell.

    The kernel runs with ``LVMLIB_SMOKE=0`` and, unless ``run_cache`` names a folder, without
    ``LVMLIB_RUN_CACHE``: every training cell trains.
    """
    nb = nbformat.read(str(path), as_version=4)
    env_before = {name: os.environ.get(name) for name in ("LVMLIB_SMOKE", RUN_CACHE_ENV)}
    os.environ["LVMLIB_SMOKE"] = "0"
    if run_cache is None:
        os.environ.pop(RUN_CACHE_ENV, None)
    else:
        os.environ[RUN_CACHE_ENV] = str(run_cache)
    os.environ.setdefault("MPLBACKEND", "Agg")
    cells = []
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        t_start = time.perf_counter()
        with client.setup_kernel():
            pid = client.km.provisioner.pid
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                c0, t0 = _cpu_seconds(pid), time.perf_counter()
                client.execute_cell(cell, index)
                seconds, cpu = time.perf_counter() - t0, _cpu_seconds(pid) - c0
                cells.append({"index": index, "id": cell.get("id"), "seconds": seconds, "cpu_seconds": cpu,
                              "training": "training" in cell.metadata.get("tags", []),
                              "first_line": cell.source.splitlines()[0][:70] if cell.source else ""})
        wall = time.perf_counter() - t_start
    finally:
        for name, value in env_before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return {"notebook": path.name, "wall_s": wall, "cells": cells}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="file names in solutions/ (default: all)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed for one cell")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "notebook_cells")
    parser.add_argument("--run-cache", type=Path, default=None, metavar="DIR",
                        help="run the training cells with LVMLIB_RUN_CACHE=DIR (their fast path once DIR holds the runs)")
    args = parser.parse_args(argv)
    paths = [ROOT / "solutions" / n for n in args.notebooks] or sorted((ROOT / "solutions").glob("*.ipynb"))

    load_before = os.getloadavg()
    results = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        res = time_notebook(path, args.timeout, args.run_cache)
        results.append(res)
        slow = [c for c in res["cells"] if (c["seconds"] or 0) > REPORT_OVER_S]
        print(f"  {res['wall_s']:.1f} s in all; cells over {REPORT_OVER_S:.0f} s: "
              + ", ".join(f"[{c['index']}] {c['seconds']:.1f} s" for c in slow), flush=True)
    load_after = os.getloadavg()

    import torch

    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
               "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
               "load_average_before": [round(x, 2) for x in load_before],
               "load_average_after": [round(x, 2) for x in load_after],
               "run_cache": str(args.run_cache) if args.run_cache else None,
               "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    over = [(r["notebook"], c) for r in results for c in r["cells"]
            if (c["seconds"] or 0) > BUDGET_S and not c["training"]]
    over_cpu = [(r["notebook"], c) for r in results for c in r["cells"]
                if c["cpu_seconds"] > BUDGET_S and not c["training"]]
    lines = ["# Time per notebook cell, real run (LVMLIB_SMOKE=0)", "",
             f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']} "
             f"({machine['torch_threads']} threads), Python {machine['python']}; {machine['date']}.",
             f"Load average (1, 5, 15 min) before: {machine['load_average_before']}, "
             f"after: {machine['load_average_after']} (a shared machine: other work ran alongside).",
             ("Training cells trained (LVMLIB_RUN_CACHE unset)." if args.run_cache is None else
              f"LVMLIB_RUN_CACHE={args.run_cache}: training cells whose run is in that folder loaded it (the fast path)."),
             f"Budget: {BUDGET_S:.0f} s per cell, except training cells (tagged `training`: progress bar, fast path).",
             f"Listed: every cell over {REPORT_OVER_S:.0f} s (index = position in the notebook, id = cell id).",
             "Wall time grows with the machine's load; the kernel's CPU time (all its threads) much less. "
             "A cell that neither waits nor runs more than one thread at a time takes about its CPU time "
             "on a quiet machine, and a cell on two threads about half of it: so a CPU time under the budget "
             "is a load-independent sign that the cell fits it.", "",
             "| notebook | cell | id | first line | wall (s) | kernel CPU (s) | training cell |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        for c in r["cells"]:
            if (c["seconds"] or 0) > REPORT_OVER_S:
                first = c["first_line"].replace("|", "\\|")
                lines.append(f"| {r['notebook']} | {c['index']} | {c['id']} | `{first}` | {c['seconds']:.1f} | {c['cpu_seconds']:.1f} | "
                             f"{'yes' if c['training'] else ''} |")
    lines += ["", "| notebook | total wall (s) | slowest non-training cell: wall (s) | its kernel CPU (s) |",
              "|---|---|---|---|"]
    for r in results:
        rest = [c for c in r["cells"] if not c["training"]]
        slowest = max(rest, key=lambda c: c["seconds"] or 0)
        lines.append(f"| {r['notebook']} | {r['wall_s']:.1f} | {slowest['seconds']:.1f} | {slowest['cpu_seconds']:.1f} |")
    describe = lambda cells: ", ".join(f"{n} [{c['index']}] {c['seconds']:.1f} s wall, {c['cpu_seconds']:.1f} s CPU"  # noqa: E731
                                       for n, c in cells) or "none"
    lines += ["", f"Non-training cells over {BUDGET_S:.0f} s of wall time: {describe(over)}.",
              f"Non-training cells over {BUDGET_S:.0f} s of kernel CPU time: {describe(over_cpu)}."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"machine": machine, "budget_s": BUDGET_S,
                                                         "results": results}, indent=1) + "\n")
    print("\n".join(lines))
    return 1 if over_cpu else 0


if __name__ == "__main__":
    sys.exit(main())

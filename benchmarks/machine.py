"""What a benchmark ran on: recorded beside its numbers."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), or what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_results(out: Path | None, stem: str, rec: dict, markdown: str) -> None:
    """Write ``rec`` to OUT/STEM.json and the report to OUT/STEM.md (nothing when ``out`` is None)."""
    if out is None:
        return
    import json

    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(rec, indent=1))
    (out / f"{stem}.md").write_text(markdown)
    print(f"wrote {out / (stem + '.md')}")

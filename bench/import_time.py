"""Cold-start import time of ``functions/main.py`` against the clients it cannot avoid.

Each sample is a fresh interpreter (the project venv's, bytecode caches warm, as on a deployed
instance) that times its imports in-process with ``time.process_time``: the CPU time the
imports cost, so that another process on a shared machine does not show up as import time
(interpreter start-up, the same for every variant, is left out). Variants run interleaved,
``--runs`` times each; the report gives medians and ratios.

What the comparison means. ``main.py`` imports functions-framework, ``requests`` and the error
types of ``google.auth`` / ``google.api_core`` / ``google.rpc`` at start, but creates (and so
imports) ``google.cloud.tasks_v2``, ``google.cloud.pubsub_v1`` and ``google.cloud.firestore``
(the ledger's) only on first use. So there are two honest comparisons, not one:

- **at start**: ``import main`` against ``functions_framework`` + ``google.auth`` (with its
  requests transport) + ``requests`` -- what any handler must import before it can serve, if it
  too defers the Google Cloud clients;
- **by the first check and the first publish**: ``import main`` followed by the three lazy
  client imports, against that baseline plus the same three clients -- everything an instance
  has paid once it scheduled a check, recorded it and published a result.

``python -X importtime`` then lists the modules ``main`` imports at start that the baseline does
not, with their own (self) time: that is where any excess comes from.

    python -m bench.import_time [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.stats import median, ratio, verdict

FUNCTIONS = Path(__file__).resolve().parents[1] / "functions"
RESULTS = Path(__file__).parent / "results" / "import_time.md"
TARGET_RATIO = 1.1

BASELINE_START = (
    "import functions_framework",
    "import google.auth",
    "import google.auth.transport.requests",
    "import requests",
)
LAZY_CLIENTS = (
    "from google.cloud import tasks_v2",
    "from google.cloud import pubsub_v1",
    "from google.cloud import firestore",
)

VARIANTS: Mapping[str, tuple[str, ...]] = {
    "baseline at start": BASELINE_START,
    "import main": ("import main",),
    "baseline + tasks_v2 + pubsub_v1 + firestore": BASELINE_START + LAZY_CLIENTS,
    "import main + its lazy clients": ("import main", *LAZY_CLIENTS),
}

# What main.py needs to start; the values only have to be well formed.
ENV = {
    "RESULTS_TOPIC": "projects/bench-project/topics/opwatch-results",
    "TASKS_QUEUE": "projects/bench-project/locations/us-central1/queues/opwatch-checks",
    "CHECK_URL": "https://us-central1-bench-project.cloudfunctions.net/on_check",
    "LOG_LEVEL": "WARNING",
    "LEDGER_DATABASE": "projects/bench-project/databases/opwatch-ledger",
}

TIMED = (
    "import time, sys\n"
    "t = time.process_time()\n"
    "{imports}\n"
    "sys.stdout.write(repr(time.process_time() - t))\n"
)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.pop("OPERATIONS_API_ENDPOINT", None)
    return env | ENV


def timed_import(statements: tuple[str, ...]) -> float:
    code = TIMED.format(imports="\n".join(statements))
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=FUNCTIONS,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return float(done.stdout)


@dataclass(frozen=True)
class ImportLine:
    self_us: int
    cumulative_us: int
    depth: int


def parse_importtime(stderr: str) -> dict[str, ImportLine]:
    """``-X importtime`` output as ``{module: ImportLine}`` (the first import of each module)."""
    found: dict[str, ImportLine] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # the header line
        name = parts[2].rstrip()
        stripped = name.lstrip()
        depth = (len(name) - len(stripped) - 1) // 2
        found.setdefault(stripped, ImportLine(int(parts[0]), int(parts[1]), depth))
    return found


def importtime(statements: tuple[str, ...]) -> dict[str, ImportLine]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "\n".join(statements)],
        cwd=FUNCTIONS,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return parse_importtime(done.stderr)


def extra_modules(
    ours: Mapping[str, ImportLine], reference: Mapping[str, ImportLine]
) -> list[tuple[str, int]]:
    """Modules imported by ``ours`` but not ``reference``, by self time (µs), largest first."""
    extra = [(name, line.self_us) for name, line in ours.items() if name not in reference]
    return sorted(extra, key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    argv_text = " ".join(sys.argv[1:] if argv is None else argv)

    for statements in VARIANTS.values():  # warm the bytecode and page caches; not counted
        timed_import(statements)
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for run in range(args.runs):
        names = list(VARIANTS) if run % 2 == 0 else list(reversed(VARIANTS))
        for name in names:
            samples[name].append(timed_import(VARIANTS[name]))
        print(
            f"run {run + 1}: " + ", ".join(f"{n} {samples[n][-1] * 1000:.0f} ms" for n in VARIANTS),
            flush=True,
        )
    medians = {name: median(values) for name, values in samples.items()}
    at_start = ratio(medians["import main"], medians["baseline at start"])
    by_first = ratio(
        medians["import main + its lazy clients"],
        medians["baseline + tasks_v2 + pubsub_v1 + firestore"],
    )

    extra_runs = [
        extra_modules(importtime(("import main",)), importtime(BASELINE_START)) for _ in range(3)
    ]
    # The median run by total extra self time, to show one consistent list.
    extra_runs.sort(key=lambda run: sum(us for _, us in run))
    extra = extra_runs[len(extra_runs) // 2]
    extra_total = sum(us for _, us in extra)

    lines = [
        "# Cold-start import time",
        "",
        f"`python -m bench.import_time {argv_text}`".replace(" `", "`"),
        "",
        f"Fresh interpreter per sample ({sys.executable.replace(str(Path.home()), '~')}, "
        f"Python {sys.version.split()[0]}), imports timed in-process as CPU time, warm bytecode "
        "caches, "
        f"{args.runs} interleaved runs per variant. `main.py` creates (and imports) the Cloud "
        "Tasks, Pub/Sub and Firestore clients only on first use, hence two comparisons (see the "
        "module docstring of bench/import_time.py).",
        "",
        "| variant | imports | "
        + " | ".join(f"run {i + 1}" for i in range(args.runs))
        + " | median |",
        "|---|---|" + "---|" * (args.runs + 1),
    ]
    for name, statements in VARIANTS.items():
        lines.append(
            f"| {name} | `{'; '.join(statements)}` | "
            + " | ".join(f"{v * 1000:.0f}" for v in samples[name])
            + f" | **{medians[name] * 1000:.0f} ms** |"
        )
    lines += [
        "",
        f"- At start, `import main` ÷ baseline: **{at_start:.2f}x** "
        f"(target ≤ {TARGET_RATIO}x: {verdict(at_start <= TARGET_RATIO)}).",
        f"- By the first check and publish, main + lazy clients ÷ baseline with the same clients: "
        f"**{by_first:.2f}x** (target ≤ {TARGET_RATIO}x: {verdict(by_first <= TARGET_RATIO)}).",
        "",
        "## What `import main` imports beyond the start baseline (`-X importtime`, self time)",
        "",
        f"{len(extra)} modules, {extra_total / 1000:.0f} ms of self time in total (median of 3 "
        "runs; `-X importtime` itself adds overhead, so compare shares, not the timings above).",
        "",
        "| module | self |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {us / 1000:.1f} ms |" for name, us in extra[:15]]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

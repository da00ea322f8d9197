"""Mutation testing of opwatch's core and service: ``./run mutants [module ...]``.

mutmut 3 names a mutated module by its path under ``mutants/`` with a leading ``src.`` removed,
so ``functions/opwatch/core.py`` would be ``functions.opwatch.core`` while the tests import
``opwatch.core``. Each module is therefore mutated in a stage of its own,
``.opwatch/mutants/<module>/``: ``src/opwatch`` is a copy of ``functions/opwatch``, and the files
the tests read (``functions``, ``client``, ``bench``, ...) are links that mutmut copies. The
settings (which tests, their arguments) are ``[tool.mutmut]`` in ``pyproject.toml``; only
``source_paths`` is set here, to the one module.

Only the fast tests run (never the e2e ones): mutmut first runs them once to learn which tests
reach which function, then runs, for each mutant, the tests that reach it. The score printed is
(killed + timeouts) / mutants: a mutant no test reaches, or one not checked, counts as a survivor.

    python tests/mutants.py core policy      # print the score and survivors of two modules
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ROOT / ".opwatch" / "mutants"
PURE = ("core", "policy", "checks", "contracts", "notification", "status", "audit")
# The service: the handlers and each use case they hand an input to, the step rules, and the
# registry (the chains as the queue holds them: how a cancel and the fast path find them).
SERVICE = (
    "handlers",
    "watching",
    "recording",
    "parking",
    "rejecting",
    "cancelling",
    "discovery",
    "steps",
    "registry",
)
MODULES = (*PURE, *SERVICE)
# What the tests read relative to the repository root (linked, then copied by mutmut).
LINKED = ("functions", "client", "bench", "devtools", "examples", "README.md", "docs", "infra")
# mutmut's exit codes (mutmut/stats.py): what counts as detected.
KILLED = {1, 3, 37}  # failed tests, pytest internal error, caught by the type check
TIMEOUT = {36, 24, -24, 152, 255}  # the tests did not end in time: detected, shown apart


def _toml_value(value: object) -> str:
    return json.dumps(value)  # TOML strings, lists of strings, numbers and booleans read alike


def stage(module: str) -> Path:
    """A fresh stage for ``module``: its own ``src/opwatch`` copy and pyproject."""
    where = STAGES / module
    shutil.rmtree(where, ignore_errors=True)
    (where / "src").mkdir(parents=True)
    shutil.copytree(
        ROOT / "functions" / "opwatch",
        where / "src" / "opwatch",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in (*LINKED, "tests"):
        (where / name).symlink_to(ROOT / name)
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mutmut = dict(config["tool"]["mutmut"])
    mutmut["source_paths"] = ["src/opwatch"]
    mutmut["only_mutate"] = [f"src/opwatch/{module}.py"]
    mutmut["also_copy"] = [*mutmut.get("also_copy", []), *LINKED]
    pytest_options = config["tool"]["pytest"]["ini_options"]
    lines = ["[tool.mutmut]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in mutmut.items()]
    lines += ["", "[tool.pytest.ini_options]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in pytest_options.items()]
    (where / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return where


def results(where: Path, module: str) -> dict[str, int | None]:
    meta = where / "mutants" / "src" / "opwatch" / f"{module}.py.meta"
    data = json.loads(meta.read_text())
    exit_codes: dict[str, int | None] = data["exit_code_by_key"]
    return exit_codes


def show(where: Path, name: str) -> list[str]:
    """The mutant's changed lines."""
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("mutmut")), "show", name],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return [line for line in shown.stdout.splitlines() if line[:2] in ("- ", "+ ")]


def run(module: str, timeout: float, max_children: int) -> tuple[int, int, int, list[str]]:
    where = stage(module)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    mutmut = [str(Path(sys.executable).with_name("mutmut"))]
    subprocess.run(
        [*mutmut, "run", "--max-children", str(max_children)],
        cwd=where,
        env=env,
        timeout=timeout,
        check=False,
        stdout=subprocess.DEVNULL,
    )
    codes = results(where, module)
    if codes and all(code is None for code in codes.values()):
        # mutmut checks nothing when the fast tests fail unmutated in the stage (a file the
        # tests read and the stage lacks): say so rather than print a score of 0.
        raise SystemExit(f"{module}: mutmut ran no mutant; run the fast tests in {where}")
    killed = sum(code in KILLED for code in codes.values())
    timeouts = sum(code in TIMEOUT for code in codes.values())
    survivors = []
    for name, code in sorted(codes.items()):
        if code not in KILLED | TIMEOUT:
            survivors.append(f"{name} (exit {code}): " + " / ".join(show(where, name)))
    return killed, timeouts, len(codes), survivors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"some of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per module")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutants")
    args = parser.parse_args(argv)
    if unknown := set(args.modules) - set(MODULES):
        parser.error(f"not a mutated module: {', '.join(sorted(unknown))}")
    modules = args.modules or list(MODULES)
    failed = False
    print("| module | mutants | killed | timeouts | survived | score |")
    print("|---|---|---|---|---|---|")
    report = []
    for module in modules:
        killed, timeouts, total, survivors = run(module, args.timeout, args.max_children)
        score = (killed + timeouts) / total if total else 1.0
        failed |= score < 0.9
        row = f"| {module} | {total} | {killed} | {timeouts} | {len(survivors)} | {score:.1%} |"
        print(row, flush=True)
        report.append((module, survivors))
    for _module, survivors in report:
        for name in survivors:
            print(f"survived: {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

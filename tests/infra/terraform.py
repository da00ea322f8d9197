"""The deployment's Terraform read offline: the module's blocks parsed, and plans of its checks."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]


INFRA = ROOT / "infra"


EXAMPLE = INFRA / "examples" / "minimal"


TWO_INSTANCES = INFRA / "examples" / "two_instances"


# Examples outside the module (examples/<name>/), held to the same static checks.
EXAMPLES = ROOT / "examples"


CHAT_EXAMPLE = EXAMPLES / "chat_notifier"


CLOUDBUILD = ROOT / "cloudbuild.yaml"


Body = dict[str, Any]


class Config:
    """The blocks of one Terraform module, merged over its .tf files."""

    def __init__(self, directory: Path) -> None:
        self.files = sorted(directory.glob("*.tf"))
        # Code only: comments may name what the code must not contain.
        self.text = re.sub(r"(?m)^\s*(#|//).*$", "", "\n".join(p.read_text() for p in self.files))
        self.resources: dict[tuple[str, str], Body] = {}
        self.data: dict[tuple[str, str], Body] = {}
        self.variables: dict[str, Body] = {}
        self.outputs: dict[str, Body] = {}
        self.locals: dict[str, Any] = {}
        self.modules: dict[str, Body] = {}
        self.terraform: list[Body] = []
        self.providers: list[Body] = []
        for path in self.files:
            self._add(_parse(path))

    def _add(self, doc: Body) -> None:
        for kind, into in (("resource", self.resources), ("data", self.data)):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        into[(rtype, name)] = body
        for key, into in (
            ("variable", self.variables),
            ("output", self.outputs),
            ("module", self.modules),
        ):
            for block in doc.get(key, []):
                into.update(block)
        for block in doc.get("locals", []):
            self.locals.update(block)
        self.terraform.extend(doc.get("terraform", []))
        self.providers.extend(doc.get("provider", []))

    def of_type(self, rtype: str) -> dict[str, Body]:
        return {name: body for (t, name), body in self.resources.items() if t == rtype}

    def resource(self, rtype: str, name: str) -> Body:
        assert (rtype, name) in self.resources, f"infra/ has no {rtype}.{name}"
        return self.resources[(rtype, name)]


def _parse(path: Path) -> Body:
    options = hcl2.SerializationOptions(
        strip_string_quotes=True, with_comments=False, explicit_blocks=False
    )
    result: Body = hcl2.loads(path.read_text(), serialization_options=options)
    return result


@cache
def module() -> Config:
    return Config(INFRA)


def expr(value: Any) -> str:
    """An HCL expression as text: ``"${a.b}"`` becomes ``a.b``; literals stay as they are."""
    text = str(value)
    if text.startswith("${") and text.endswith("}") and text.count("${") == 1:
        return text[2:-1]
    return text


def block(body: Body, name: str) -> Body:
    """The single nested block ``name`` of a resource body."""
    blocks = body.get(name)
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected one {name} block"
    inner: Body = blocks[0]
    return inner


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a parsed body, however deeply nested."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key, inner
            yield from walk(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from walk(inner)


def members_of(tf: Config) -> list[tuple[str, str, Body]]:
    """(resource type, name, body) of every IAM member/binding resource."""
    return [
        (rtype, name, body)
        for (rtype, name), body in tf.resources.items()
        if re.search(r"_iam_(member|binding|policy)$", rtype)
    ]


def tool_env(tmp_path: Path) -> dict[str, str]:
    """Offline, quiet tools: no version check, no user CLI config."""
    config = tmp_path / "empty.tfrc"
    config.touch()
    return {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": str(config)}


FUNCTIONS = {
    "check": "on_check",
    "watch": "on_watch_request",
    "audit": "on_audit_entry",
    "sweep": "on_sweep",
}


def function_env(tf: Config) -> dict[str, str]:
    return {key: expr(value) for key, value in tf.locals["function_environment"].items()}


# checks.tf reads variables only, so variables.tf and checks.tf alone are a root module that
# Terraform plans offline (terraform_data is built into Terraform: no provider to download). Its
# plan evaluates every validation of variables.tf and every precondition of checks.tf, so these
# tests say what the real terraform refuses, not what this file thinks an expression means.
CHECKED_FILES = ("variables.tf", "checks.tf")


REQUIRED = {"project_id": "my-project"}


class Planner:
    """terraform plan and console on variables.tf and checks.tf, in a directory of their own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = tool_env(root)
        self.runs = 0
        for name in CHECKED_FILES:
            shutil.copy(INFRA / name, root / name)
        self._terraform("init", "-input=false", "-no-color")

    def _terraform(self, *args: str, values: Body | None = None, stdin: str = "") -> str:
        terraform = shutil.which("terraform")
        assert terraform, "terraform is not on PATH"
        extra: list[str] = []
        if values is not None:
            self.runs += 1
            var_file = self.root / f"values-{self.runs}.tfvars.json"
            var_file.write_text(json.dumps({**REQUIRED, **values}))
            extra = [f"-var-file={var_file}"]
        result = subprocess.run(
            [terraform, *args, *extra],
            cwd=self.root,
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            return "ERROR " + " ".join((result.stderr + result.stdout).split())
        return result.stdout

    def refusal(self, **values: Any) -> str:
        """What a plan with these variables fails with, on one line ("" when it passes)."""
        out = self._terraform("plan", "-input=false", "-no-color", "-lock=false", values=values)
        return out if out.startswith("ERROR ") else ""

    def value(self, expression: str, **values: Any) -> Any:
        """An expression over these variables' values, as terraform console evaluates it."""
        out = self._terraform("console", values=values, stdin=f"jsonencode({expression})\n")
        assert not out.startswith("ERROR "), out
        return json.loads(json.loads(out.strip()))

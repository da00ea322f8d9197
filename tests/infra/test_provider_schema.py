"""Every resource and data block of infra/ checked against the providers' real schemas, offline.

``terraform validate`` needs the providers, which cannot be downloaded where these tests run. Their
schemas can: the CDK for Terraform publishes each provider as a PyPI wheel that carries the whole
schema as a jsii assembly (``_jsii/provider-<name>@<version>.jsii.tgz``, member ``package/.jsii``),
and so does CDK Terrain for later provider releases (``cdktn-provider-*`` wheels, member
``cdktn_provider_<name>/_jsii/provider-<name>@<version>.jsii.tgz``; base classes ``cdktn.*``).
Each provider is checked at both ends of the range versions.tf allows: the oldest release and
the newest one a wheel carries. ``./run setup`` downloads the wheels into
``.cache/terraform-providers/`` (git-ignored); they are read here as zip files, never installed.

How the assembly maps to Terraform (the jsii names are camelCase, so the Terraform name of every
resource and argument is taken from its Terraform Registry doc link instead):

- a class whose base is ``cdktf.TerraformResource`` / ``cdktf.TerraformDataSource`` (or their
  ``cdktn.*`` namesakes) is a resource / data source; its summary links
  ``.../docs/resources/<name> google_<name>``;
- its initializer's ``config`` interface lists the settable arguments and blocks; a property
  without ``optional`` is required;
- a property typed with another datatype interface is a nested block of at most one; a union of
  ``cdktf.IResolvable`` and an array of such an interface is a repeatable block; every other type
  (string, number, boolean, lists and maps of them) is an argument.

Computed-only attributes are not in the config interfaces, so setting one is reported as unknown,
as Terraform would. What this does not check: expression types and values (Terraform's job at
plan time) and provider-side rules such as ``ExactlyOneOf``.
"""

from __future__ import annotations

import copy
import io
import json
import re
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MODULE_DIRS = {
    "infra": INFRA,
    "example": INFRA / "examples" / "minimal",
    "two_instances": INFRA / "examples" / "two_instances",
    "chat_notifier": ROOT / "examples" / "chat_notifier",
}
WHEELS = ROOT / ".cache" / "terraform-providers"

# provider local name -> the releases checked, oldest first: (wheel, provider version whose schema
# the wheel carries). The range in versions.tf runs from the oldest's minor version to before the
# major version after the newest's. Keep in step with the `pip download` line in ./run.
PROVIDERS = {
    "google": (
        ("cdktf_cdktf_provider_google-16.12.1-py3-none-any.whl", "6.50.0"),
        ("cdktn_provider_google-21.1.0-py3-none-any.whl", "8.7.0"),
    ),
    "google-beta": (
        ("cdktf_cdktf_provider_google_beta-16.12.1-py3-none-any.whl", "6.50.0"),
        ("cdktn_provider_google_beta-21.1.0-py3-none-any.whl", "8.7.0"),
    ),
    "archive": (
        ("cdktf_cdktf_provider_archive-11.0.1-py3-none-any.whl", "2.7.1"),
        ("cdktn_provider_archive-14.0.1-py3-none-any.whl", "2.8.1"),
    ),
    "time": (
        ("cdktf_cdktf_provider_time-11.0.1-py3-none-any.whl", "0.13.1"),
        ("cdktn_provider_time-14.0.2-py3-none-any.whl", "0.14.2"),
    ),
}
# Which end of every provider's range a check reads: 0 the oldest release, -1 the newest.
ENDS = {"oldest": 0, "newest": -1}

# Resource types built into Terraform (the terraform.io/builtin/terraform provider, no schema
# wheel): their arguments, from the language docs ("The terraform_data Managed Resource Type").
BUILTIN = {"terraform_data": {"input", "triggers_replace"}}

# Terraform's own meta-arguments (language docs, "Meta-Arguments"); lifecycle's content is core's.
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider"}
META_BLOCKS = {"resource": {"lifecycle", "provisioner", "connection"}, "data": {"lifecycle"}}

Body = dict[str, Any]


# --- schema -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nested:
    fqn: str
    required: bool
    single: bool  # at most one (max_items = 1)


@dataclass(frozen=True)
class BlockSchema:
    arguments: dict[str, bool]  # name -> required
    blocks: dict[str, Nested]


_DOC_LINK = re.compile(
    r"registry\.terraform\.io/providers/hashicorp/[\w-]+/[0-9.]+/docs[^#\s}]*#(\w+)"
)
_TYPE_LINK = re.compile(
    r"registry\.terraform\.io/providers/hashicorp/[\w-]+/([0-9.]+)"
    r"/docs/(resources|data-sources)/\w+ (\w+)\}"
)


class ProviderSchema:
    """Resource, data source and provider schemas of one provider, from its jsii assembly."""

    def __init__(self, assembly: Body) -> None:
        self.types: dict[str, Body] = assembly["types"]
        self.version = ""
        # (kind, terraform type) -> fqn of its config interface; kind "provider" for the provider.
        self.configs: dict[tuple[str, str], str] = {}
        for cls in self.types.values():
            base = str(cls.get("base", "")).replace("cdktn.", "cdktf.", 1)
            if base == "cdktf.TerraformProvider":
                self.configs[("provider", "")] = cls["initializer"]["parameters"][-1]["type"]["fqn"]
                continue
            if base not in ("cdktf.TerraformResource", "cdktf.TerraformDataSource"):
                continue
            found = _TYPE_LINK.search(cls["docs"]["summary"])
            assert found, f"no registry link in {cls['fqn']}"
            version, section, name = found.groups()
            self.version = version
            kind = "resource" if section == "resources" else "data"
            self.configs[(kind, name)] = cls["initializer"]["parameters"][-1]["type"]["fqn"]

    @cache  # noqa: B019 - one schema object per wheel for the whole run
    def block(self, fqn: str) -> BlockSchema:
        arguments: dict[str, bool] = {}
        blocks: dict[str, Nested] = {}
        for prop in self.types[fqn].get("properties", []):
            found = _DOC_LINK.search(json.dumps(prop["docs"]))
            assert found, f"no registry link for {fqn}.{prop['name']}"
            name = found.group(1)
            required = not prop.get("optional", False)
            nested = self._nested(prop["type"])
            if nested is None:
                arguments[name] = required
            else:
                target, single = nested
                blocks[name] = Nested(target, required, single)
        return BlockSchema(arguments, blocks)

    def _nested(self, typeref: Body) -> tuple[str, bool] | None:
        if "fqn" in typeref and self._is_datatype(typeref["fqn"]):
            return typeref["fqn"], True
        for member in typeref.get("union", {}).get("types", []):
            element = member.get("collection", {}).get("elementtype", {})
            if "fqn" in element and self._is_datatype(element["fqn"]):
                return element["fqn"], False
        return None

    def _is_datatype(self, fqn: str) -> bool:
        return bool(self.types.get(fqn, {}).get("datatype"))


def read_assembly(wheel: Path) -> Body:
    with zipfile.ZipFile(wheel) as archive:
        (member,) = [n for n in archive.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(archive.read(member))) as tgz:
            handle = tgz.extractfile("package/.jsii")
            assert handle is not None
            assembly: Body = json.load(handle)
            return assembly


@cache
def provider_schema(provider: str, end: int = 0) -> ProviderSchema:
    wheel_name, version = PROVIDERS[provider][end]
    wheel = WHEELS / wheel_name
    if not wheel.is_file():
        pytest.fail(f"{wheel} is missing: run ./run setup (it downloads the provider schemas)")
    schema = ProviderSchema(read_assembly(wheel))
    assert schema.version == version, f"{wheel_name} carries {provider} {schema.version}"
    return schema


# --- checker ----------------------------------------------------------------------------------


def _is_block(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
    )


def _is_dynamic(value: Any) -> bool:
    """``dynamic "x" { ... }`` blocks: a list of ``{label: body}``. python-hcl2 marks the label's
    body as the block (``[{"x": {..., "__is_block__": True}}]``); a mark on the outer mapping
    is taken too."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(v, dict)
            and (
                bool(v.get("__is_block__"))
                or all(isinstance(b, dict) and b.get("__is_block__") for _, b in _keys(v))
            )
            for v in value
        )
    )


def _keys(body: Body) -> Iterator[tuple[str, Any]]:
    for key, value in body.items():
        if not key.startswith("__"):
            yield key, value


def check_body(
    schema: ProviderSchema, fqn: str, body: Body, where: str, meta: set[str] | None = None
) -> list[str]:
    """Problems of one block body against its schema; ``meta`` = meta-blocks allowed here."""
    spec = schema.block(fqn)
    problems: list[str] = []
    present: set[str] = set()
    for key, value in _keys(body):
        at = f"{where}.{key}"
        if meta is not None and key in META_ARGUMENTS:
            if _is_block(value):
                problems.append(f"{at}: meta-argument {key} written as a block")
            continue
        if meta is not None and key in meta:
            if not _is_block(value):
                problems.append(f"{at}: {key} must be a block")
            continue
        if key == "dynamic" and _is_dynamic(value):
            for generator in value:
                for label, dyn in _keys(generator):
                    present.add(label)
                    problems += _check_dynamic(schema, spec, label, dyn, f"{where}.dynamic.{label}")
            continue
        present.add(key)
        if key in spec.arguments:
            if _is_block(value):
                problems.append(f"{at}: argument {key} written as a block (use {key} = ...)")
        elif key in spec.blocks:
            nested = spec.blocks[key]
            if not _is_block(value):
                problems.append(f"{at}: block {key} given as an argument (write {key} {{ ... }})")
                continue
            if nested.single and len(value) > 1:
                problems.append(f"{at}: at most one {key} block is allowed, found {len(value)}")
            for index, inner in enumerate(value):
                suffix = "" if len(value) == 1 else f"[{index}]"
                problems += check_body(schema, nested.fqn, inner, f"{at}{suffix}")
        else:
            problems.append(f"{at}: unsupported argument or block {key!r}")
    for name, required in spec.arguments.items():
        if required and name not in present:
            problems.append(f"{where}: required argument {name!r} is missing")
    for name, nested in spec.blocks.items():
        if nested.required and name not in present:
            problems.append(f"{where}: required block {name!r} is missing")
    return problems


def _check_dynamic(
    schema: ProviderSchema, spec: BlockSchema, label: str, dyn: Any, where: str
) -> list[str]:
    if label not in spec.blocks:
        return [f"{where}: dynamic block of unsupported block type {label!r}"]
    if not isinstance(dyn, dict) or "for_each" not in dyn:
        return [f"{where}: dynamic block needs for_each"]
    problems = [
        f"{where}.{key}: unsupported in a dynamic block"
        for key, _ in _keys(dyn)
        if key not in ("for_each", "iterator", "labels", "content")
    ]
    content = dyn.get("content")
    if not _is_block(content) or len(content) != 1:
        return [*problems, f"{where}: dynamic block needs exactly one content block"]
    return problems + check_body(schema, spec.blocks[label].fqn, content[0], f"{where}.content")


def provider_of(rtype: str, body: Body | None = None) -> str:
    """The provider a block is checked against: its ``provider`` meta-argument (without an alias,
    ``google-beta.other`` -> ``google-beta``), else the type's prefix, as Terraform picks it."""
    chosen = str((body or {}).get("provider", "")).removeprefix("${").removesuffix("}")
    if chosen:
        return chosen.split(".", 1)[0]
    return rtype.split("_", 1)[0]


def check_document(doc: Body, source: str, end: int = 0) -> list[str]:
    """Problems of every resource, data and provider block in one parsed .tf file, against each
    provider's oldest (``end`` 0) or newest (-1) checked release."""
    problems: list[str] = []
    for kind in ("resource", "data"):
        for group in doc.get(kind, []):
            for rtype, named in _keys(group):
                for name, body in _keys(named):
                    where = f"{source}: {'data.' if kind == 'data' else ''}{rtype}.{name}"
                    if kind == "resource" and rtype in BUILTIN:
                        problems += [
                            f"{where}.{key}: unsupported argument or block {key!r}"
                            for key, _ in _keys(body)
                            if key not in BUILTIN[rtype] | META_ARGUMENTS | META_BLOCKS[kind]
                        ]
                        continue
                    provider = provider_of(rtype, body)
                    if provider not in PROVIDERS:
                        problems.append(f"{where}: no schema for provider {provider!r}")
                        continue
                    schema = provider_schema(provider, end)
                    fqn = schema.configs.get((kind, rtype))
                    if fqn is None:
                        problems.append(f"{where}: {provider} has no {kind} type {rtype!r}")
                        continue
                    problems += check_body(schema, fqn, body, where, META_BLOCKS[kind])
    for group in doc.get("provider", []):
        for pname, body in _keys(group):
            if pname in PROVIDERS:
                schema = provider_schema(pname, end)
                fqn = schema.configs[("provider", "")]
                problems += check_body(schema, fqn, body, f"{source}: provider.{pname}", set())
            else:
                problems.append(f"{source}: provider.{pname}: no schema for this provider")
    return problems


def parse(text: str) -> Body:
    # explicit_blocks marks every block with __is_block__, so `x { }` and `x = { }` differ.
    options = hcl2.SerializationOptions(
        strip_string_quotes=True, with_comments=False, explicit_blocks=True
    )
    doc: Body = hcl2.loads(text, serialization_options=options)
    return doc


def tf_files() -> list[Path]:
    return [p for d in MODULE_DIRS.values() for p in sorted(d.glob("*.tf"))]


# --- the real configuration -------------------------------------------------------------------


@pytest.mark.parametrize("end", ENDS.values(), ids=ENDS.keys())
@pytest.mark.parametrize("path", tf_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_blocks_match_the_provider_schema(path: Path, end: int) -> None:
    problems = check_document(parse(path.read_text()), str(path.relative_to(ROOT)), end)
    assert not problems, "\n".join(problems)


def real_blocks() -> list[tuple[str, str, str, Body]]:
    """(kind, type, name, body) of every resource and data block in infra/."""
    found = []
    for path in tf_files():
        doc = parse(path.read_text())
        for kind in ("resource", "data"):
            for group in doc.get(kind, []):
                for rtype, named in _keys(group):
                    for name, body in _keys(named):
                        found.append((kind, rtype, name, body))
    return found


def test_every_block_was_checked() -> None:
    blocks = real_blocks()
    # The check is only as good as its coverage: every provider in use has a schema here.
    assert len(blocks) >= 25
    used = {provider_of(rtype, body) for _, rtype, _, body in blocks if rtype not in BUILTIN}
    assert used <= set(PROVIDERS)


def test_builtin_terraform_data_is_checked_too() -> None:
    body = _real("terraform_data", "queue_identity")
    assert _check("terraform_data", body) == []
    body["triggers"] = "x"
    assert _check("terraform_data", body) == [
        "mutant: terraform_data.x.triggers: unsupported argument or block 'triggers'"
    ]


def test_the_beta_resource_is_checked_against_google_beta() -> None:
    """google_project_service_identity is in google-beta only: not in the GA schemas of 6.50.0
    (checked here) and 8.7.0 (cdktn-provider-google 21.1.0), so it must say provider =
    google-beta, and the checker must read that meta-argument."""
    body = _real("google_project_service_identity", "pubsub")
    assert str(body["provider"]).strip("${}") == "google-beta"
    for end in ENDS.values():
        ga = provider_schema("google", end).configs
        assert ("resource", "google_project_service_identity") not in ga
    assert _check("google_project_service_identity", body) == []
    del body["provider"]
    (problem,) = _check("google_project_service_identity", body)
    assert "google has no resource type 'google_project_service_identity'" in problem


def test_time_sleep_is_checked_against_the_time_provider() -> None:
    body = _real("time_sleep", "log_metrics_visible")
    assert _check("time_sleep", body) == []
    body["duration"] = "600s"
    (problem,) = _check("time_sleep", body)
    assert "time_sleep.x.duration: unsupported" in problem


def _constraint(directory: Path, provider: str) -> str | None:
    for path in sorted(directory.glob("*.tf")):
        for settings in parse(path.read_text()).get("terraform", []):
            for required in settings.get("required_providers", []):
                if provider in required:
                    version: str = required[provider]["version"]
                    return version
    return None


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("module_dir", MODULE_DIRS.values(), ids=MODULE_DIRS.keys())
def test_version_range_is_what_the_schema_check_covers(provider: str, module_dir: Path) -> None:
    # The range starts at the oldest checked release's minor version and ends before the major
    # version after the newest checked release: within a major version the providers only add
    # arguments (HashiCorp's provider versioning), so later minors accept what the checked
    # schema accepts; a new major may remove some, so each major in the range has a release
    # checked here (see test_every_major_in_the_range_is_checked).
    (_, oldest), *_, (_, newest) = PROVIDERS[provider]
    low_major, low_minor, _ = (int(part) for part in oldest.split("."))
    high_major = int(newest.split(".")[0])
    constraint = _constraint(module_dir, provider)
    if constraint is None:
        assert module_dir != INFRA, f"infra/versions.tf does not constrain {provider}"
        return
    assert constraint == f">= {low_major}.{low_minor}, < {high_major + 1}", (
        f"{module_dir.name}: {provider} {constraint!r} is not what the schema check "
        f"({provider} {oldest} to {newest}) covers"
    )


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_release_checked_is_the_one_its_wheel_carries(provider: str) -> None:
    """Both ends load, each from its own wheel, the newest later than the oldest."""
    versions = [provider_schema(provider, end).version for end in ENDS.values()]
    assert versions == [PROVIDERS[provider][0][1], PROVIDERS[provider][-1][1]]
    assert tuple(map(int, versions[0].split("."))) < tuple(map(int, versions[1].split(".")))


def test_the_majors_inside_the_range_change_nothing_the_module_relies_on() -> None:
    """google 7.0.0 and 8.0.0 lie inside the range. Their upgrade guides
    (hashicorp/terraform-provider-google, website/docs/guides/version_7_upgrade.html.markdown and
    version_8_upgrade.html.markdown) touch this module in two places: service_config.service of
    google_cloudfunctions2_function became an attribute only (infra/ only reads it; the 8.7.0
    schema check above would reject setting it), and google_project_service's
    disable_on_destroy default became false, which infra/ sets explicitly, so both majors
    behave alike."""
    enabled = next(
        body for _, t, n, body in real_blocks() if (t, n) == ("google_project_service", "enabled")
    )
    assert enabled["disable_on_destroy"] is False
    newest = provider_schema("google", ENDS["newest"])
    config = newest.block(newest.configs[("resource", "google_cloudfunctions2_function")])
    service_config = newest.block(config.blocks["service_config"].fqn)
    assert "service" not in service_config.arguments


# --- the checker can fail ---------------------------------------------------------------------


def _real(rtype: str, name: str) -> Body:
    for _, t, n, body in real_blocks():
        if (t, n) == (rtype, name):
            return copy.deepcopy(body)
    raise AssertionError(f"infra/ has no {rtype}.{name}")


def _check(rtype: str, body: Body, kind: str = "resource") -> list[str]:
    return check_document({kind: [{rtype: {"x": body}}]}, "mutant")


SUB = ("google_pubsub_subscription", "watch_push")


def test_real_blocks_pass_before_mutation() -> None:
    assert _check(*SUB[:1], _real(*SUB)) == []


def test_reports_an_unknown_top_level_argument() -> None:
    body = _real(*SUB)
    body["ack_deadline"] = 60
    assert _check(SUB[0], body) == [
        "mutant: google_pubsub_subscription.x.ack_deadline: "
        "unsupported argument or block 'ack_deadline'"
    ]


def test_reports_an_unknown_argument_two_blocks_deep() -> None:
    body = _real(*SUB)
    body["push_config"][0]["oidc_token"][0]["audiences"] = "x"
    (problem,) = _check(SUB[0], body)
    assert "push_config.oidc_token.audiences: unsupported" in problem


def test_reports_an_unknown_nested_block() -> None:
    body = _real(*SUB)
    body["push_config"][0]["nowrapper"] = [{"write_metadata": True, "__is_block__": True}]
    (problem,) = _check(SUB[0], body)
    assert "push_config.nowrapper: unsupported" in problem


def test_reports_a_block_given_as_an_argument() -> None:
    body = _real(*SUB)
    (policy,) = body["expiration_policy"]
    body["expiration_policy"] = {k: v for k, v in policy.items() if k != "__is_block__"}
    (problem,) = _check(SUB[0], body)
    assert "block expiration_policy given as an argument" in problem


def test_reports_a_block_given_as_an_argument_in_the_source_text() -> None:
    # End to end through the parser: `x = { }` must not pass for `x { }`.
    text = (INFRA / "pubsub.tf").read_text()
    assert "  expiration_policy {\n" in text
    problems = check_document(
        parse(text.replace("  expiration_policy {\n", "  expiration_policy = {\n")), "m"
    )
    assert problems and all("given as an argument" in p for p in problems)


def test_reports_an_argument_written_as_a_block() -> None:
    body = _real(*SUB)
    body["labels"] = [{"app": "opwatch", "__is_block__": True}]
    (problem,) = _check(SUB[0], body)
    assert "argument labels written as a block" in problem


def test_reports_a_missing_required_argument() -> None:
    body = _real(*SUB)
    del body["topic"]
    assert _check(SUB[0], body) == [
        "mutant: google_pubsub_subscription.x: required argument 'topic' is missing"
    ]


def test_reports_a_missing_required_nested_argument() -> None:
    body = _real(*SUB)
    del body["push_config"][0]["push_endpoint"]
    (problem,) = _check(SUB[0], body)
    assert "push_config: required argument 'push_endpoint' is missing" in problem


def test_reports_a_missing_required_block() -> None:
    body = _real("google_storage_bucket", "source")
    del body["lifecycle_rule"][0]["action"]
    (problem,) = _check("google_storage_bucket", body)
    assert "lifecycle_rule: required block 'action' is missing" in problem


def test_reports_two_of_a_single_block() -> None:
    body = _real(*SUB)
    body["retry_policy"] = body["retry_policy"] * 2
    (problem,) = _check(SUB[0], body)
    assert "at most one retry_policy block" in problem


def test_reports_unknown_types_and_providers() -> None:
    assert (
        "has no resource type 'google_pubsub_subscriptions'"
        in _check("google_pubsub_subscriptions", _real(*SUB))[0]
    )
    assert "has no data type 'google_projects_x'" in _check("google_projects_x", {}, "data")[0]
    assert "no schema for provider 'aws'" in _check("aws_s3_bucket", {})[0]


def test_meta_arguments_are_accepted_and_checked() -> None:
    service = _real("google_cloud_run_v2_service", "check")
    assert "lifecycle" in service
    assert _check("google_cloud_run_v2_service", service, "data") == []
    body = _real("google_cloudfunctions2_function", "check")
    assert "depends_on" in body
    body["lifecycle"] = service["lifecycle"]
    body["count"] = 1
    body["provider"] = "${google.other}"
    assert _check("google_cloudfunctions2_function", body) == []
    body["depends_on"] = [{"__is_block__": True}]
    body["lifecycle"] = {"prevent_destroy": True}
    problems = _check("google_cloudfunctions2_function", body)
    assert any("meta-argument depends_on written as a block" in p for p in problems)
    assert any("lifecycle must be a block" in p for p in problems)
    # Data sources have no provisioners.
    project = _real("google_project", "this")
    project["provisioner"] = [{"__is_block__": True}]
    assert (
        "unsupported argument or block 'provisioner'"
        in _check("google_project", project, "data")[0]
    )


def test_dynamic_blocks_are_checked_like_static_ones() -> None:
    body = _real(*SUB)
    (retry,) = body.pop("retry_policy")
    generator = {"for_each": "${var.x}", "content": [retry], "__is_block__": True}
    body["dynamic"] = [{"retry_policy": generator, "__is_block__": True}]
    assert _check(SUB[0], body) == []
    retry["maximum_backof"] = "600s"
    (problem,) = _check(SUB[0], body)
    assert "dynamic.retry_policy.content.maximum_backof: unsupported" in problem
    del retry["maximum_backof"]
    body["dynamic"][0]["retry_policies"] = body["dynamic"][0].pop("retry_policy")
    (problem,) = _check(SUB[0], body)
    assert "dynamic block of unsupported block type 'retry_policies'" in problem


def test_a_dynamic_block_is_checked_as_the_parser_reads_it() -> None:
    """End to end through the parser: python-hcl2 marks a dynamic block's labelled body, not the
    mapping around it; the real source bucket's encryption block is checked, and a misspelt
    argument in its content is reported."""
    text = (INFRA / "functions.tf").read_text()
    assert '  dynamic "encryption" {\n' in text and "default_kms_key_name" in text
    assert check_document(parse(text), "m") == []
    problems = check_document(parse(text.replace("default_kms_key_name", "kms_key_name")), "m")
    assert any("dynamic.encryption.content.kms_key_name: unsupported" in p for p in problems)
    assert any("required argument 'default_kms_key_name' is missing" in p for p in problems)
    (problem,) = check_document(
        parse(text.replace('dynamic "encryption"', 'dynamic "encrypt"')), "m"
    )
    assert "dynamic block of unsupported block type 'encrypt'" in problem


def test_a_dynamic_block_counts_as_the_required_block() -> None:
    body = _real("google_storage_bucket", "source")
    (rule,) = body["lifecycle_rule"]
    generator = {"for_each": "${var.x}", "content": rule.pop("action"), "__is_block__": True}
    rule["dynamic"] = [{"action": generator, "__is_block__": True}]
    assert _check("google_storage_bucket", body) == []


def test_archive_file_is_checked_against_the_archive_provider() -> None:
    body = _real("archive_file", "source")
    assert _check("archive_file", body, "data") == []
    body["exclude"] = body.pop("excludes")
    problems = _check("archive_file", body, "data")
    assert problems == [
        "mutant: data.archive_file.x.exclude: unsupported argument or block 'exclude'"
    ]


def test_computed_only_attributes_cannot_be_set() -> None:
    body = _real("google_cloudfunctions2_function", "check")
    body["url"] = "https://example.com"
    (problem,) = _check("google_cloudfunctions2_function", body)
    assert "x.url: unsupported" in problem

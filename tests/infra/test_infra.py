"""Static checks of the deployment: infra/ (Terraform) and cloudbuild.yaml.

No Terraform provider can be downloaded where these tests run, so ``terraform init``,
``validate`` and ``plan`` are left to Cloud Build. What can be checked offline is checked here:
formatting (``terraform fmt``), security policy (checkov, run from its own venv because it ships
a module that shadows python-hcl2), and the wiring that matters, read from the parsed HCL:
who may invoke the functions, which environment variables they get, where watch requests are
delivered, dead-lettering, IAM, and the pipeline's steps.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import docs
from tests.infra import logquery
from tests.infra.terraform import (
    CHAT_EXAMPLE,
    CLOUDBUILD,
    EXAMPLE,
    EXAMPLES,
    FUNCTIONS,
    INFRA,
    ROOT,
    TWO_INSTANCES,
    Body,
    Config,
    Planner,
    _parse,
    block,
    expr,
    function_env,
    members_of,
    module,
    tool_env,
    walk,
)

pytestmark = pytest.mark.infra


# The configuration contract of the functions (docs/configuration.md).
PRODUCTION_ENV = {
    "RESULTS_TOPIC",
    "TASKS_QUEUE",
    "CHECK_URL",
    "TASKS_INVOKER_SA",
    "ALLOWED_APIS",
    "ALLOWED_NOTIFY_TOPICS",
    "FETCH_TIMEOUT",
    "LOG_LEVEL",
    "PARKED_TOPIC",
    "TASKS_MAX_ATTEMPTS",
    "DISPATCH_DEADLINE",
    "DISCOVERY_INCLUDE_CALLER",
    "EVENT_DRIVEN_APIS",
    "LEDGER_DATABASE",
    "LEDGER_RETENTION_DAYS",
    "LEARN_MIN_SAMPLES",
    "WARN_OVERDUE",
}
LOCAL_ONLY_ENV = (
    "OPERATIONS_API_ENDPOINT",
    "PUBSUB_EMULATOR_HOST",
    "CLOUD_TASKS_EMULATOR_HOST",
    "FIRESTORE_EMULATOR_HOST",
)


# --- the module, parsed once by tests/infra/terraform.py ------------------------------------


@pytest.fixture(scope="module")
def tf() -> Config:
    return module()


# --- tools ------------------------------------------------------------------------------------


def test_terraform_files_are_formatted(tmp_path: Path) -> None:
    terraform = shutil.which("terraform")
    assert terraform, "terraform is not on PATH; install Terraform >= 1.5 to run the infra checks"
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(INFRA), str(EXAMPLES)],
        capture_output=True,
        text=True,
        env=tool_env(tmp_path),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"


def checkov_path() -> Path:
    path = Path(os.environ.get("OPWATCH_CHECKOV", ROOT / ".venv-checkov" / "bin" / "checkov"))
    if not path.is_file():
        pytest.fail(f"checkov not found at {path}: run ./run setup (or set OPWATCH_CHECKOV)")
    return path


def skip_comments() -> list[tuple[str, str]]:
    """(check id, reason) of every ``#checkov:skip=`` in infra/."""
    found = []
    for path in sorted(INFRA.rglob("*.tf")):
        found += re.findall(r"#\s*checkov:skip=(CKV2?_[A-Z]+_\d+):?(.*)", path.read_text())
    return found


def test_checkov_finds_no_failed_checks(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(checkov_path()),
            "-d",
            str(INFRA),
            "--framework",
            "terraform",
            "--skip-download",
            "--compact",
            # Not --quiet: the skipped checks are read below.
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        env=tool_env(tmp_path),
        timeout=120,
        check=False,
    )
    assert result.stdout.strip(), f"checkov printed nothing:\n{result.stderr}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    summary = reports[0]["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= 20, "checkov did not see the module's resources"
    # Every suppression is used (none is stale) and none hides more than it says. checkov sees
    # the module through each module call of the examples (two_instances expands it twice), so
    # a suppression counts once per resource, whichever instance reported it.
    skipped = {
        (c["check_id"], re.sub(r"^(module\.\w+(\[[^\]]*\])?\.)+", "", c["resource"]))
        for r in reports
        for c in r.get("results", {}).get("skipped_checks", [])
    }
    assert len(skipped) == len(skip_comments()), sorted(skipped)
    assert result.returncode == 0


def test_checkov_finds_no_failed_checks_in_the_chat_example(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *(str(checkov_path()), "-d", str(CHAT_EXAMPLE), "--framework", "terraform"),
            *("--skip-download", "--compact", "--quiet", "-o", "json"),
        ],
        capture_output=True,
        text=True,
        env=tool_env(tmp_path),
        timeout=120,
        check=False,
    )
    assert result.stdout.strip(), f"checkov printed nothing:\n{result.stderr}"
    report = json.loads(result.stdout)
    (only,) = report if isinstance(report, list) else [report]
    failed = [c["check_id"] for c in only.get("results", {}).get("failed_checks", [])]
    assert not failed, f"checkov failed checks in {CHAT_EXAMPLE}: {failed}"
    assert only["summary"]["parsing_errors"] == 0
    assert only["summary"]["resource_count"] >= 8
    skips = re.findall(
        r"#\s*checkov:skip=(CKV2?_[A-Z]+_\d+):?(.*)", (CHAT_EXAMPLE / "main.tf").read_text()
    )
    assert only["summary"]["skipped"] == len(skips)
    assert all(len(reason.strip()) >= 30 for _, reason in skips)
    assert result.returncode == 0


def test_every_checkov_skip_says_why() -> None:
    skips = skip_comments()
    assert skips, "expected the justified skips documented in the module"
    for check_id, reason in skips:
        assert len(reason.strip()) >= 30, f"skip of {check_id} needs a real justification"


# --- layout and variables ---------------------------------------------------------------------


def test_module_layout() -> None:
    for name in (
        "versions.tf",
        "variables.tf",
        "outputs.tf",
        "main.tf",
        "pubsub.tf",
        "tasks.tf",
        "functions.tf",
        "iam.tf",
        "monitoring.tf",
        "terraform.tfvars.example",
    ):
        assert (INFRA / name).is_file(), f"infra/{name} is missing"


def test_versions_are_pinned_as_ranges(tf: Config) -> None:
    (settings,) = tf.terraform
    assert settings["required_version"] == ">= 1.5"
    providers = block(settings, "required_providers")
    assert providers["google"]["source"] == "hashicorp/google"
    # The ranges themselves are tied to the schema check in test_provider_schema.py.
    assert providers["archive"]["source"] == "hashicorp/archive"


def test_module_configures_no_provider_or_backend(tf: Config) -> None:
    # A reusable module leaves credentials and state to the caller (examples/, cloudbuild.yaml).
    assert tf.providers == []
    assert all("backend" not in t for t in tf.terraform)


@pytest.mark.parametrize(
    "directory",
    [INFRA, EXAMPLE, TWO_INSTANCES, CHAT_EXAMPLE],
    ids=["infra", "example", "two_instances", "chat_notifier"],
)
def test_every_variable_has_type_and_description(directory: Path) -> None:
    variables = Config(directory).variables
    assert variables
    for name, body in variables.items():
        assert body.get("type"), f"variable {name} has no type"
        assert len(str(body.get("description", ""))) >= 10, f"variable {name} is not described"


# Variables that carry no constraint worth stating (free-form by nature).
UNCONSTRAINED = {
    "labels",
    "enable_apis",
    "operators_may_cancel_operations",
    "replace_queue",
    "ledger_deletion_protection",
    "replace_ledger",
}


def test_every_constrained_variable_is_validated(tf: Config) -> None:
    for name, body in tf.variables.items():
        if name in UNCONSTRAINED:
            continue
        validations = body.get("validation", [])
        assert validations, f"variable {name} has no validation block"
        for rule in validations:
            assert f"var.{name}" in str(rule["condition"]), f"{name}: validation ignores it"
            assert len(str(rule["error_message"])) >= 20


def test_tfvars_example_sets_declared_variables_only(tf: Config) -> None:
    values = _parse(INFRA / "terraform.tfvars.example")
    assert "project_id" in values
    unknown = set(values) - set(tf.variables)
    assert not unknown, f"terraform.tfvars.example sets undeclared variables: {unknown}"


def test_example_uses_the_module_with_all_required_inputs(tf: Config) -> None:
    example = Config(EXAMPLE)
    assert example.providers, "the example root must configure the google provider"
    (call,) = example.modules.values()
    assert call["source"] == "../.."
    required = {name for name, body in tf.variables.items() if "default" not in body}
    assert required == {"project_id"}
    assert required <= set(call), f"example does not pass {required - set(call)}"


# --- APIs and ordering ------------------------------------------------------------------------

# The API each kind of resource (by type prefix) is created through.
APIS_BY_TYPE = {
    "google_pubsub_": {"pubsub"},
    "google_cloud_tasks_": {"cloudtasks"},
    "google_cloud_scheduler_": {"cloudscheduler"},
    "google_cloudfunctions2_": {"cloudfunctions", "run", "cloudbuild", "artifactregistry"},
    "google_cloud_run_": {"run"},
    "google_storage_": {"storage"},
    "google_service_account": {"iam"},
    "google_project_iam_": {"iam", "cloudresourcemanager"},
    "google_project": {"cloudresourcemanager"},
    "google_logging_": {"logging"},
    "google_monitoring_": {"monitoring"},
    "google_firestore_": {"firestore"},
    # generateServiceIdentity is a Service Usage call, which enabling the APIs needs already;
    # the identity is the Pub/Sub API's.
    "google_project_service_identity": {"pubsub"},
    # Local to Terraform: no API.
    "time_": set(),
    "terraform_data": set(),
}
REFERENCE = re.compile(
    r"\b(data\.)?((?:google|archive|time)_[a-z0-9_]+|terraform_data)\.([a-z0-9_]+)"
)


def apis_needed(rtype: str) -> set[str]:
    prefixes = [p for p in APIS_BY_TYPE if rtype.startswith(p)]
    assert prefixes, f"{rtype}: add the API it needs to APIS_BY_TYPE"
    return APIS_BY_TYPE[max(prefixes, key=len)]


def test_every_api_the_module_uses_is_enabled(tf: Config) -> None:
    module_services = set(tf.locals["module_services"])
    used = [t for (t, _) in tf.resources if t != "google_project_service"]
    used += [t for (t, _) in tf.data if t != "archive_file"]
    needed = {f"{api}.googleapis.com" for rtype in used for api in apis_needed(rtype)}
    # Exactly what the resources need: Eventarc is not used (the watch function is fed by our
    # own push subscription), so it is not switched on.
    assert module_services == needed
    # The watched APIs must be on for their operations to exist at all; the list is an output
    # for callers who enable APIs themselves.
    assert expr(tf.locals["services"]) == (
        "sort(distinct(concat(local.module_services, keys(var.watched_apis))))"
    )
    assert expr(tf.outputs["apis_to_enable"]["value"]) == "local.services"
    enabled = tf.resource("google_project_service", "enabled")
    assert "local.services" in expr(enabled["for_each"])
    # Tearing opwatch down must not switch off APIs other workloads use.
    assert enabled["disable_on_destroy"] is False


def references(tf: Config, value: Any, seen: frozenset[str] = frozenset()) -> set[str]:
    """``type.name`` / ``data.type.name`` referenced by a value, through locals too."""
    text = json.dumps(value)
    found = {f"{d or ''}{t}.{n}" for d, t, n in REFERENCE.findall(text)}
    for name in set(re.findall(r"\blocal\.([a-z0-9_]+)", text)) - seen:
        found |= references(tf, tf.locals[name], seen | {name})
    return found


def test_every_resource_waits_for_the_apis(tf: Config) -> None:
    # Directly or through what it refers to, every Google resource and data source is created
    # or read after google_project_service.enabled: otherwise a first apply races the APIs.
    graph: dict[str, set[str]] = {}
    for (rtype, name), body in tf.resources.items():
        graph[f"{rtype}.{name}"] = references(tf, body)
    for (rtype, name), body in tf.data.items():
        graph[f"data.{rtype}.{name}"] = references(tf, body)

    def waits(node: str, path: frozenset[str] = frozenset()) -> bool:
        deps = graph.get(node, set())
        if "google_project_service.enabled" in deps:
            return True
        return any(waits(d, path | {node}) for d in deps - path if d != node)

    for node in graph:
        if node.startswith(("google_project_service.", "data.archive_file.", "terraform_data.")):
            continue
        assert waits(node), f"{node} does not wait for google_project_service.enabled"


# --- functions --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "entry_point"), FUNCTIONS.items())
def test_function_runs_an_entry_point_of_the_zipped_code(
    tf: Config, name: str, entry_point: str
) -> None:
    build = block(tf.resource("google_cloudfunctions2_function", name), "build_config")
    assert build["entry_point"] == entry_point
    assert re.search(rf"^def {entry_point}\(", (ROOT / "functions" / "main.py").read_text(), re.M)
    archive = tf.data[("archive_file", "source")]
    assert expr(archive["source_dir"]) == "local.source_dir"
    assert tf.locals["source_dir"] == '${coalesce(var.source_dir, "${path.module}/../functions")}'
    assert tf.variables["source_dir"]["default"] is None
    storage = block(block(build, "source"), "storage_source")
    assert expr(storage["object"]) == "google_storage_bucket_object.source.name"


def test_source_object_name_changes_with_the_code(tf: Config) -> None:
    # A new object name is what makes the functions redeploy when the code changes.
    archive = tf.data[("archive_file", "source")]
    assert any("__pycache__" in pattern for pattern in archive["excludes"])
    obj = tf.resource("google_storage_bucket_object", "source")
    assert "data.archive_file.source.output_md5" in obj["name"]
    assert expr(obj["source"]) == "data.archive_file.source.output_path"


def archive_path(tf: Config, project_id: str, name_prefix: str) -> str:
    template = tf.data[("archive_file", "source")]["output_path"]
    assert template.count("${") == 3, template
    return (
        template.replace("${path.root}", "ROOT")
        .replace("${var.project_id}", project_id)
        .replace("${var.name_prefix}", name_prefix)
    )


def test_each_instance_writes_its_own_archive(tf: Config) -> None:
    """Issue 20: a fixed .build/functions-source.zip is written by every instance during plan.
    The archive is named after (project_id, name_prefix), the pair that names the instance's
    bucket (globally unique), and lives in the root module's .terraform/ (git-ignored), not
    inside a fetched module's directory."""
    template = tf.data[("archive_file", "source")]["output_path"]
    assert template.startswith("${path.root}/.terraform/")
    assert "${var.project_id}" in template and "${var.name_prefix}" in template
    bucket = tf.resource("google_storage_bucket", "source")["name"]
    assert "${var.project_id}" in bucket and "${var.name_prefix}" in bucket
    example = Config(TWO_INSTANCES)
    (call,) = example.modules.values()
    assert expr(call["for_each"]) == "var.instances"
    assert expr(call["name_prefix"]) == "each.value.name_prefix"
    instances = example.variables["instances"]["default"]
    paths = {archive_path(tf, "p", i["name_prefix"]) for i in instances.values()}
    assert len(instances) == 2 and len(paths) == 2
    (rule,) = example.variables["instances"]["validation"]
    assert "distinct" in rule["condition"]


def test_a_caller_may_bring_the_build_account_and_cmek_keys(tf: Config) -> None:
    """Issue 20 §2, "bring your own": the functions' build account (new projects need one, see
    the README) and a customer-managed key for every topic, both optional."""
    for name in FUNCTIONS:
        build = block(tf.resource("google_cloudfunctions2_function", name), "build_config")
        assert expr(build["service_account"]) == "var.build_service_account", name
    assert tf.variables["build_service_account"]["default"] is None
    for name, topic in tf.of_type("google_pubsub_topic").items():
        assert expr(topic["kms_key_name"]) == "var.cmek.topics", name
    assert tf.variables["cmek"]["default"] == {}
    assert "gcp-sa-pubsub" in tf.variables["cmek"]["description"]


def test_a_caller_may_bring_a_cmek_key_for_the_source_bucket(tf: Config) -> None:
    """Issue 20 §2: the bucket of the source archives takes cmek.source_bucket as its default
    key (google_storage_bucket's encryption.default_kms_key_name), only when one is given. The
    module grants nothing on a key (it usually lives in a key project the deployer does not
    administer); the variable names the Cloud Storage service agent, which encrypts and
    decrypts with a bucket's default key and must hold cryptoKeyEncrypterDecrypter on it
    before the bucket is created (Cloud Storage, "Use customer-managed encryption keys";
    service-PROJECT_NUMBER@gs-project-accounts.iam.gserviceaccount.com, IAM "Service agents")."""
    bucket = tf.resource("google_storage_bucket", "source")
    (generator,) = [d["encryption"] for d in bucket["dynamic"] if "encryption" in d]
    assert expr(generator["for_each"]) == (
        "var.cmek.source_bucket == null ? [] : [var.cmek.source_bucket]"
    )
    (content,) = generator["content"]
    assert expr(content["default_kms_key_name"]) == "encryption.value"
    assert "encryption" not in bucket, "one encryption block, the dynamic one"
    assert "source_bucket = optional(string)" in tf.variables["cmek"]["type"]
    description = tf.variables["cmek"]["description"]
    assert "service-PROJECT_NUMBER@gs-project-accounts.iam.gserviceaccount.com" in description
    assert "roles/cloudkms.cryptoKeyEncrypterDecrypter" in description
    assert "cloudkms" not in " ".join(t for (t, _) in tf.resources), "the module grants nothing"


def test_source_bucket_is_private(tf: Config) -> None:
    bucket = tf.resource("google_storage_bucket", "source")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_gets_the_whole_configuration_contract(tf: Config, name: str) -> None:
    service = block(tf.resource("google_cloudfunctions2_function", name), "service_config")
    assert expr(service["environment_variables"]) == "local.function_environment"
    assert expr(service["service_account_email"]) == "local.runtime_email"
    assert set(function_env(tf)) == PRODUCTION_ENV


def readme_configuration() -> dict[str, str]:
    """variable -> "required" column of the README's Configuration table."""
    section = docs.section("Configuration")
    return dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+?) \|", section, re.M))


def test_configuration_contract_matches_the_readme(tf: Config) -> None:
    documented = readme_configuration()
    deployed = set(function_env(tf))
    local_only = {name for name, required in documented.items() if required == "local only"}
    assert local_only == set(LOCAL_ONLY_ENV)
    assert deployed == set(documented) - local_only, "README and infra/ disagree on the contract"


def test_local_only_settings_are_not_deployed(tf: Config) -> None:
    for name in LOCAL_ONLY_ENV:
        assert name not in tf.text


def test_no_setting_is_hard_coded(tf: Config) -> None:
    for key, value in function_env(tf).items():
        assert "projects/" not in value, f"{key} is hard-coded: {value}"


def test_dispatch_deadline_is_the_check_functions_timeout_within_cloud_tasks_limits(
    tf: Config,
) -> None:
    env = function_env(tf)
    service = block(tf.resource("google_cloudfunctions2_function", "check"), "service_config")
    assert f"({expr(service['timeout_seconds'])})" in env["DISPATCH_DEADLINE"]
    # Cloud Tasks: an HTTP task's dispatch_deadline is 15 s to 30 min (CreateTask reference).
    conditions = " ".join(str(v["condition"]) for v in tf.variables["check_function"]["validation"])
    assert "var.check_function.timeout_seconds >= 15" in conditions
    assert "var.check_function.timeout_seconds <= 1800" in conditions


def test_tasks_max_attempts_is_the_queues(tf: Config) -> None:
    retry = block(tf.resource("google_cloud_tasks_queue", "checks"), "retry_config")
    assert f"({expr(retry['max_attempts'])})" in function_env(tf)["TASKS_MAX_ATTEMPTS"]
    # Bounded, so a task that never succeeds stops (and the code can tell its last attempts).
    assert "var.tasks_retry.max_attempts <= 100" in str(tf.variables["tasks_retry"]["validation"])


# --- URLs and ingress -------------------------------------------------------------------------


def test_check_url_is_the_deterministic_run_app_url(tf: Config) -> None:
    # Cloud Run accepts as audience only its run.app URLs (or a configured custom audience) and
    # counts same-project Cloud Tasks as internal only on them; the cloudfunctions.net form is
    # neither documented as an audience nor as internal.
    assert tf.locals["check_url"] == (
        "https://${local.check_function_name}-${data.google_project.this.number}"
        ".${var.region}.run.app"
    )
    check = tf.resource("google_cloudfunctions2_function", "check")
    assert expr(check["name"]) == "local.check_function_name"
    assert expr(check["location"]) == "var.region"
    assert expr(check["project"]) == "var.project_id"
    assert function_env(tf)["CHECK_URL"] == "local.check_url"
    # Neither the cloudfunctions.net URL nor the function's `url` attribute (which holds it) is
    # wired anywhere: not in the functions' settings, not in a push subscription.
    wiring = json.dumps([tf.locals, tf.of_type("google_pubsub_subscription")])
    assert "cloudfunctions.net" not in wiring
    assert not re.search(r"google_cloudfunctions2_function\.\w+\.url\b", wiring)


def test_check_url_fits_a_dns_label(tf: Config) -> None:
    # The deterministic URL exists only while SERVICE-PROJECT_NUMBER is <= 63 characters.
    (rule,) = tf.variables["name_prefix"]["validation"]
    found = re.search(r"\{\d+,(\d+)\}", rule["condition"])
    assert found, "name_prefix's length is no longer bounded by its regex"
    high = int(found.group(1))
    longest_prefix = 1 + high + 1
    suffix = tf.locals["check_function_name"].removeprefix("${var.name_prefix}")
    assert longest_prefix + len(suffix) + len("-") + 12 <= 63


def test_the_check_service_is_read_by_its_short_name(tf: Config) -> None:
    """The data source reads projects/{{project}}/locations/{{location}}/services/{{name}}
    (hashicorp/terraform-provider-google,
    google/services/cloudrunv2/data_source_google_cloud_run_v2_service.go), and a gen2
    function's service_config[0].service is the full projects/P/locations/L/services/NAME path:
    given as it is, the read asks for .../services/projects/... and fails as not found."""
    service = tf.data[("google_cloud_run_v2_service", "check")]
    attribute = "google_cloudfunctions2_function.check.service_config[0].service"
    found = re.fullmatch(rf'regex\("(.+)", {re.escape(attribute)}\)', expr(service["name"]))
    assert found, f"name must be the short name taken from {attribute}: {service['name']}"
    pattern = found.group(1).replace("\\\\", "\\")
    full = "projects/p/locations/us-central1/services/opwatch-on-check"
    # Terraform's regex() with no capture group returns the whole match.
    match = re.search(pattern, full)
    assert match and match.group(0) == "opwatch-on-check"


def test_apply_fails_if_the_check_service_does_not_serve_check_url(tf: Config) -> None:
    service = tf.data[("google_cloud_run_v2_service", "check")]
    assert "google_cloudfunctions2_function.check.service_config[0].service" in expr(
        service["name"]
    )
    conditions = [
        expr(p["condition"]) for lc in service["lifecycle"] for p in lc.get("postcondition", [])
    ]
    assert conditions == ["contains(self.urls, local.check_url)"]
    # Nothing is delivered to the watch function (which creates tasks) before that check.
    for name, sub in push_subscriptions(tf).items():
        waits = [expr(d) for d in sub.get("depends_on", [])]
        assert "data.google_cloud_run_v2_service.check" in waits, name


def test_ingress_is_internal_by_default(tf: Config) -> None:
    # Safe because every caller is a same-project Pub/Sub push or Cloud Tasks dispatch to a
    # run.app URL (tested above and below), which Cloud Run counts as internal.
    assert tf.variables["ingress_settings"]["default"] == "ALLOW_INTERNAL_ONLY"
    for name in FUNCTIONS:
        service = block(tf.resource("google_cloudfunctions2_function", name), "service_config")
        assert expr(service["ingress_settings"]) == "var.ingress_settings"


# --- who may call what ------------------------------------------------------------------------


def push_subscriptions(tf: Config) -> dict[str, Body]:
    return {
        name: body
        for name, body in tf.of_type("google_pubsub_subscription").items()
        if "push_config" in body
    }


def test_nothing_is_public(tf: Config) -> None:
    assert "allUsers" not in tf.text
    assert "allAuthenticatedUsers" not in tf.text
    for rtype, name, body in members_of(tf):
        for key, value in walk(body):
            if key in ("member", "members"):
                assert "allUsers" not in str(value), f"{rtype}.{name} is public"


def invokers_of(tf: Config, function: str) -> set[str]:
    # Grants on the function resource or on a v2 Run service would bypass this view.
    for rtype, name, _ in members_of(tf):
        assert not rtype.startswith(
            ("google_cloudfunctions2_function_iam", "google_cloud_run_v2")
        ), f"{rtype}.{name}: grant invoker rights on service_config[0].service only"
    service = f"google_cloudfunctions2_function.{function}.service_config[0].service"
    return {
        expr(body["member"])
        for _, _, body in members_of(tf)
        if expr(body.get("service", "")) == service and body["role"] == "roles/run.invoker"
    }


def test_only_the_tasks_invoker_may_call_the_check_function(tf: Config) -> None:
    assert invokers_of(tf, "check") == {"serviceAccount:${local.tasks_invoker_email}"}
    # The tasks the functions create carry that account's token.
    assert function_env(tf)["TASKS_INVOKER_SA"] == "local.tasks_invoker_email"
    assert "event_trigger" not in tf.resource("google_cloudfunctions2_function", "check")


def test_every_push_reaches_its_function_with_an_accepted_token(tf: Config) -> None:
    pushes = push_subscriptions(tf)
    assert set(pushes) == {"watch_push", "parked_push", "audit_push"}
    for name, sub in pushes.items():
        push = block(sub, "push_config")
        found = re.match(
            r"^\$\{google_cloudfunctions2_function\.(\w+(?:\[0\])?)\.service_config\[0\]\.uri\}"
            r"/\$\{(.+)\}$",
            push["push_endpoint"],
        )
        assert found, f"{name}: push to a function's run.app URI (service_config[0].uri)"
        function, path = found.groups()
        # The topic path in the URL becomes the CloudEvent's source in functions-framework.
        assert path == f"{expr(sub['topic'])}", name
        token = block(push, "oidc_token")
        # The audience is the run.app URI itself, without the path.
        assert expr(token["audience"]) == (
            f"google_cloudfunctions2_function.{function}.service_config[0].uri"
        )
        identity = f"serviceAccount:${{{expr(token['service_account_email'])}}}"
        assert identity in invokers_of(tf, function), f"{name}: its identity may not invoke"
        resource = function.removesuffix("[0]")
        assert "event_trigger" not in tf.resource("google_cloudfunctions2_function", resource)


def test_the_watch_function_is_invoked_by_the_push_account_only(tf: Config) -> None:
    assert invokers_of(tf, "watch") == {"serviceAccount:${local.push_email}"}


# --- Pub/Sub: nothing is lost -----------------------------------------------------------------


def seconds(value: str) -> int:
    assert re.fullmatch(r"\d+s", value), value
    return int(value[:-1])


def resolved(tf: Config, value: Any) -> str:
    """A value with ``local.x`` and ``var.x`` (default) substituted when they are literal."""
    text = expr(value)
    if text.startswith("local."):
        return resolved(tf, tf.locals[text.removeprefix("local.")])
    if re.fullmatch(r"var\.\w+", text):
        return resolved(tf, tf.variables[text.removeprefix("var.")]["default"])
    return text


def topic_id(name: str, body: Body) -> str:
    """How the module refers to a topic's id (``[0]`` for one behind ``count``)."""
    return f"google_pubsub_topic.{name}{'[0]' if 'count' in body else ''}.id"


def test_every_topic_with_a_subscription_and_every_subscription_retains_messages(
    tf: Config,
) -> None:
    topics = {expr(s["topic"]) for s in tf.of_type("google_pubsub_subscription").values()}
    for name, body in tf.of_type("google_pubsub_topic").items():
        if topic_id(name, body) in topics:
            assert seconds(resolved(tf, body["message_retention_duration"])) >= 86400, name
    for name, body in tf.of_type("google_pubsub_subscription").items():
        assert seconds(resolved(tf, body["message_retention_duration"])) >= 86400, name
        # An idle subscription must not be deleted after 31 days of inactivity.
        assert block(body, "expiration_policy")["ttl"] == "", name


def test_every_topic_the_module_publishes_to_is_consumed(tf: Config) -> None:
    # Results are consumed by subscribers' own subscriptions; every other topic needs one here.
    consumed = {expr(s["topic"]) for s in tf.of_type("google_pubsub_subscription").values()}
    for name, body in tf.of_type("google_pubsub_topic").items():
        if name != "results":
            assert topic_id(name, body) in consumed, f"topic {name} has no reader"


def test_failed_watch_requests_are_retried_then_dead_lettered_where_someone_looks(
    tf: Config,
) -> None:
    sub = tf.resource("google_pubsub_subscription", "watch_push")
    assert "retry_policy" in sub
    dead = block(sub, "dead_letter_policy")
    topic = expr(dead["dead_letter_topic"])
    readers = [
        name
        for name, s in tf.of_type("google_pubsub_subscription").items()
        if expr(s["topic"]) == topic and "push_config" not in s
    ]
    assert readers == ["dead_letter"], "dead-lettered requests need a pull subscription"
    # The Pub/Sub service agent moves the message: publisher there, subscriber here.
    grants = {
        (body["role"], expr(body.get("topic") or body.get("subscription")))
        for _, _, body in members_of(tf)
        if expr(body["member"]) == "local.pubsub_service_agent"
    }
    assert ("roles/pubsub.publisher", topic.replace(".id", ".name")) in grants
    assert ("roles/pubsub.subscriber", "google_pubsub_subscription.watch_push.name") in grants


def test_a_parked_watch_survives_a_day_of_redeliveries(tf: Config) -> None:
    env = function_env(tf)
    assert env["PARKED_TOPIC"] == "google_pubsub_topic.parked.id"
    (name,) = [
        n for n, s in push_subscriptions(tf).items() if expr(s["topic"]) == env["PARKED_TOPIC"]
    ]
    sub = tf.resource("google_pubsub_subscription", name)
    # A dead-letter policy would drop it after at most 100 attempts: under 17 h at 600 s.
    assert "dead_letter_policy" not in sub
    retry = block(sub, "retry_policy")
    assert seconds(resolved(tf, retry["maximum_backoff"])) <= 600
    day = 24 * 3600
    assert seconds(resolved(tf, sub["message_retention_duration"])) > day
    topic = tf.resource("google_pubsub_topic", "parked")
    assert seconds(resolved(tf, topic["message_retention_duration"])) > day


# --- IAM --------------------------------------------------------------------------------------


def test_no_primitive_or_authoritative_roles(tf: Config) -> None:
    assert not re.search(r"roles/(owner|editor|viewer)\b", tf.text)
    for rtype, name, body in members_of(tf):
        # Authoritative bindings would remove grants that other teams made.
        assert rtype.endswith("_iam_member"), f"{rtype}.{name} is authoritative"
        assert str(body["role"]).startswith(("roles/", "${google_project_iam_custom_role."))


def grants_to(tf: Config, account: str) -> set[tuple[str, str, str]]:
    member = f"serviceAccount:${{local.{account}_email}}"
    found = set()
    for rtype, _, body in members_of(tf):
        if expr(body["member"]) != member:
            continue
        target = next(
            expr(body[k])
            for k in ("topic", "name", "service", "service_account_id", "project")
            if k in body
        )
        found.add((rtype, expr(body["role"]), target))
    return found


def test_runtime_may_do_what_its_configuration_asks_and_nothing_more(tf: Config) -> None:
    env = function_env(tf)
    topic = "google_pubsub_topic_iam_member", "roles/pubsub.publisher"
    expected = {
        # read operations (custom role: operations.get only)
        (
            "google_project_iam_member",
            "google_project_iam_custom_role.operations_reader.name",
            "var.project_id",
        ),
        # publish to RESULTS_TOPIC, PARKED_TOPIC and each of ALLOWED_NOTIFY_TOPICS
        (*topic, env["RESULTS_TOPIC"].replace(".id", ".name")),
        (*topic, env["PARKED_TOPIC"].replace(".id", ".name")),
        (*topic, "each.value"),
        # write and query LEDGER_DATABASE (a custom role on the project, with a condition
        # naming that database: tests/infra/test_ledger_infra.py)
        (
            "google_project_iam_member",
            "google_project_iam_custom_role.ledger_writer.name",
            "var.project_id",
        ),
        # create, read, list and delete tasks in TASKS_QUEUE and read the queue (a custom role
        # granted on that queue only), with TASKS_INVOKER_SA's token (actAs)
        (
            "google_cloud_tasks_queue_iam_member",
            "google_project_iam_custom_role.tasks_worker.name",
            env["TASKS_QUEUE"].replace(".id", ".name"),
        ),
        (
            "google_service_account_iam_member",
            "roles/iam.serviceAccountUser",
            env["TASKS_INVOKER_SA"].replace("_email", "_name"),
        ),
    }
    assert grants_to(tf, "runtime") == expected
    notify = tf.resource("google_pubsub_topic_iam_member", "runtime_publishes_notify")
    assert "var.allowed_notify_topics" in expr(notify["for_each"])
    assert env["ALLOWED_NOTIFY_TOPICS"] == 'join(",", values(var.allowed_notify_topics))'


def test_for_each_keys_are_names_the_caller_chooses(tf: Config) -> None:
    """for_each over toset(var.list) keys each instance on the values, which must be known at
    plan: a topic id or service account created in the same apply fails the plan ("Invalid
    for_each argument", Terraform language docs, "The for_each Meta-Argument"). Variables fed to
    for_each are maps keyed by names the caller chooses, as terraform-google-pubsub keys its
    subscriptions."""
    fed: set[str] = set()
    for (rtype, name), body in tf.resources.items():
        if "for_each" not in body:
            continue
        each = expr(body["for_each"])
        assert not re.search(r"toset\(var\.", each), f"{rtype}.{name}: for_each = {each}"
        fed |= set(re.findall(r"\bvar\.(\w+)", each))
    assert {"allowed_notify_topics", "operators"} <= fed
    for variable in fed:
        if tf.variables[variable]["type"] == "bool":
            continue  # a condition (enable_apis ? ... : ...), not the collection
        assert tf.variables[variable]["type"].startswith("${map("), variable
        assert tf.variables[variable]["default"] == {}, variable


# The Cloud Tasks methods the functions call on the check queue, each with the permissions its
# reference names (https://cloud.google.com/tasks/docs/reference-access-control; GetTask and
# ListTasks: "Authorization for FULL requires cloudtasks.tasks.fullView",
# https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks/get).
# RunTask (tasks.run) is not called: its quota is 60 a minute, "meant for manual debugging"
# (https://cloud.google.com/tasks/docs/quotas).
RUNTIME_TASKS_CALLS = {
    "CreateTask": {"cloudtasks.tasks.create"},
    "GetTask (FULL view)": {"cloudtasks.tasks.get", "cloudtasks.tasks.fullView"},
    "ListTasks (FULL view)": {"cloudtasks.tasks.list", "cloudtasks.tasks.fullView"},
    "DeleteTask": {"cloudtasks.tasks.delete"},
    "GetQueue": {"cloudtasks.queues.get"},
}


def test_the_runtime_holds_exactly_what_its_queue_calls_need_on_that_queue_only(
    tf: Config,
) -> None:
    """roles/cloudtasks.enqueuer is tasks.create + tasks.fullView only (Cloud Tasks roles,
    https://cloud.google.com/iam/docs/roles-permissions/cloudtasks): with it every GetTask,
    DeleteTask and ListTasks of the functions answers PERMISSION_DENIED on a real project."""
    role = tf.resource("google_project_iam_custom_role", "tasks_worker")
    needed = set().union(*RUNTIME_TASKS_CALLS.values())
    assert set(role["permissions"]) == needed
    assert len(role["permissions"]) == len(needed)
    grant = tf.resource("google_cloud_tasks_queue_iam_member", "runtime_works_queue")
    assert expr(grant["role"]) == "google_project_iam_custom_role.tasks_worker.name"
    assert expr(grant["name"]) == "google_cloud_tasks_queue.checks.name"
    assert expr(grant["location"]) == "google_cloud_tasks_queue.checks.location"
    assert expr(grant["member"]) == "serviceAccount:${local.runtime_email}"
    # No Cloud Tasks permission anywhere else: not project-wide, not a predefined role.
    assert "roles/cloudtasks." not in tf.text
    for rtype, name, body in members_of(tf):
        if "tasks_worker" in str(body["role"]):
            assert (rtype, name) == ("google_cloud_tasks_queue_iam_member", "runtime_works_queue")


def test_custom_role_reads_operations_only(tf: Config) -> None:
    role = tf.resource("google_project_iam_custom_role", "operations_reader")
    assert expr(role["permissions"]) == "local.operations_read_permissions"
    for field in ("api.operations_get_permission", "api.operations_list_permission"):
        assert field in tf.locals["operations_read_permissions"]
    default = tf.variables["watched_apis"]["default"]
    assert default["cloudaicompanion.googleapis.com"]["operations_get_permission"] == (
        "cloudaicompanion.operations.get"
    )
    rules = [str(r["condition"]) for r in tf.variables["watched_apis"]["validation"]]
    assert any("a.operations_get_permission" in r and 'perations\\\\.get$"' in r for r in rules)


# The variables that used to describe one watched API in four places, which had to agree.
SPLIT_API_VARIABLES = (
    "allowed_apis",
    "extra_operation_permissions",
    "operator_cancel_permissions",
)


def test_each_watched_api_is_described_in_one_place(tf: Config) -> None:
    """Issue 20: allowed_apis, extra_operation_permissions, discovery.event_driven_apis and
    operator_cancel_permissions had to agree, and a bad combination deployed, after which
    every function refused to start (EVENT_DRIVEN_APIS outside ALLOWED_APIS). Everything per
    API now derives from var.watched_apis, keyed by host, so EVENT_DRIVEN_APIS is a subset of
    ALLOWED_APIS by construction."""
    for name in SPLIT_API_VARIABLES:
        assert name not in tf.variables, name
    assert "event_driven_apis" not in tf.variables["discovery"]["type"]
    env = function_env(tf)
    assert env["ALLOWED_APIS"] == 'join(",", local.allowed_apis)'
    assert env["EVENT_DRIVEN_APIS"] == (
        'var.discovery.enabled ? join(",", local.event_driven_apis) : ""'
    )
    assert expr(tf.locals["allowed_apis"]) == "sort(keys(var.watched_apis))"
    event_driven = expr(tf.locals["event_driven_apis"])
    assert event_driven == "sort([for host, api in var.watched_apis : host if api.event_driven])"
    assert "var.watched_apis" in tf.locals["operations_cancel_permissions"]
    assert tf.variables["watched_apis"]["nullable"] is False
    assert "cloudaicompanion" not in str(tf.locals["module_services"])


def test_caller_accounts_can_only_invoke_their_function(tf: Config) -> None:
    assert grants_to(tf, "tasks_invoker") == {
        (
            "google_cloud_run_service_iam_member",
            "roles/run.invoker",
            "google_cloudfunctions2_function.check.service_config[0].service",
        )
    }
    assert grants_to(tf, "push") == {
        (
            "google_cloud_run_service_iam_member",
            "roles/run.invoker",
            f"google_cloudfunctions2_function.{function}.service_config[0].service",
        )
        for function in ("watch", "audit[0]")
    }


# --- queue, alerts and outputs ----------------------------------------------------------------


def test_a_change_that_replaces_the_queue_is_refused_unless_asked(tf: Config) -> None:
    """Issue 20: changing region or name_prefix replaces the queue (its name and location are
    immutable: google_cloud_tasks_queue forces a new resource on both) and drops every pending
    watch. A terraform_data remembers the values of the first apply (ignore_changes on input),
    and a precondition on the queue refuses a change unless replace_queue is set."""
    memory = tf.resource("terraform_data", "queue_identity")
    assert memory["input"] == {"region": "${var.region}", "name_prefix": "${var.name_prefix}"}
    assert memory["lifecycle"][0]["ignore_changes"] == ["input"]
    remembered = "{region = var.region, name_prefix = var.name_prefix}"
    assert expr(memory["triggers_replace"]) == f"var.replace_queue ? {remembered} : null"
    queue = tf.resource("google_cloud_tasks_queue", "checks")
    (lifecycle,) = queue["lifecycle"]
    (pre,) = lifecycle["precondition"]
    assert expr(pre["condition"]) == (
        f"var.replace_queue || terraform_data.queue_identity.output == {remembered}"
    )
    assert "drops every pending watch" in pre["error_message"]
    assert tf.variables["replace_queue"]["default"] is False
    for name in ("region", "name_prefix"):
        description = tf.variables[name]["description"]
        assert "Stateful" in description and "replace_queue" in description, name
    assert expr(queue["name"]).endswith('-checks"') or "var.name_prefix" in queue["name"]
    assert expr(queue["location"]) == "var.region"


def test_queue_is_rate_limited_by_variables(tf: Config) -> None:
    # The queue is what protects the operations API's read quota (docs/capacity.md); its rate
    # is the variable's within the watched APIs' read budgets (checks.tf, tests below).
    limits = block(tf.resource("google_cloud_tasks_queue", "checks"), "rate_limits")
    assert expr(limits["max_dispatches_per_second"]) == "local.tasks_max_dispatches_per_second"
    assert expr(limits["max_concurrent_dispatches"]) == "var.tasks_max_concurrent_dispatches"


def test_abandoned_watches_raise_an_alert(tf: Config) -> None:
    metric = tf.resource("google_logging_metric", "watch_abandoned")
    # What the filter selects is evaluated against captured log lines in test_monitoring.py.
    log_filter = str(metric["filter"])
    assert 'jsonPayload.event="watch.abandoned"' in log_filter
    assert log_filter.startswith("${local.opwatch_logs} AND ")
    assert 'resource.type="cloud_run_revision"' in tf.locals["opwatch_logs"]
    for name in ("watch_function_name", "check_function_name"):
        assert f"local.{name}" in tf.locals["opwatch_logs"]
    policy = tf.resource("google_monitoring_alert_policy", "watch_abandoned")
    condition = block(block(policy, "conditions"), "condition_threshold")
    assert (
        "logging.googleapis.com/user/${google_logging_metric.watch_abandoned.name}"
        in (condition["filter"])
    )
    assert condition["comparison"] == "COMPARISON_GT" and condition["threshold_value"] == 0
    for body in tf.of_type("google_monitoring_alert_policy").values():
        assert expr(body["notification_channels"]) == "var.alert_notification_channels"
    assert tf.variables["alert_notification_channels"]["default"] == []


def test_alert_policies_on_log_based_metrics_wait_for_the_metrics(tf: Config) -> None:
    """Creating an alert policy on a log-based metric made in the same apply answers 404
    "Cannot find metric(s) ... it could take up to 10 minutes to become available"
    (https://github.com/hashicorp/terraform-provider-google/issues/11102, open). Each such policy
    waits on a time_sleep that is re-created whenever one of its metrics is."""
    sleep = tf.resource("time_sleep", "log_metrics_visible")
    assert expr(sleep["create_duration"]) == "var.log_metric_wait"
    assert tf.variables["log_metric_wait"]["default"] == "600s"
    triggered = {expr(v) for v in sleep["triggers"].values()}
    for name, body in tf.of_type("google_monitoring_alert_policy").items():
        metrics = set(re.findall(r"google_logging_metric\.(\w+)\.name", json.dumps(body)))
        if not metrics:
            continue
        waits = [expr(d) for d in body.get("depends_on", [])]
        assert "time_sleep.log_metrics_visible" in waits, f"{name} does not wait"
        for metric in metrics:
            assert f"google_logging_metric.{metric}.id" in triggered, f"{name}: {metric}"


def test_grants_to_the_pubsub_service_agent_wait_for_it_to_exist(tf: Config) -> None:
    """Google: "If a service agent hasn't been created yet, then you can't grant roles to the
    service agent" (https://cloud.google.com/iam/docs/create-service-agents). The agent's
    member comes from google_project_service_identity (google-beta only: see
    test_provider_schema.py), so every grant to it is made after Service Usage created it."""
    identity = tf.resource("google_project_service_identity", "pubsub")
    assert identity["service"] == "pubsub.googleapis.com"
    assert str(identity["provider"]).strip("${}") == "google-beta"
    member = "${google_project_service_identity.pubsub.member}"
    assert tf.locals["pubsub_service_agent"] == member
    grants = [b for _, _, b in members_of(tf) if expr(b["member"]) == "local.pubsub_service_agent"]
    assert len(grants) >= 3


def test_a_non_empty_dead_letter_subscription_raises_an_alert(tf: Config) -> None:
    policy = tf.resource("google_monitoring_alert_policy", "dead_letter")
    condition = block(block(policy, "conditions"), "condition_threshold")
    assert "${google_pubsub_subscription.dead_letter.name}" in condition["filter"]
    assert "subscription/num_undelivered_messages" in condition["filter"]


def test_every_output_is_described(tf: Config) -> None:
    for name, body in tf.outputs.items():
        assert len(str(body.get("description", ""))) >= 10, name


def test_outputs_a_caller_chains_on_exist(tf: Config) -> None:
    """Issue 20 §3: function and Cloud Run service names, the audit function's URI, the roles,
    and the environment the CLI needs, whose names are the ones the CLI reads."""
    for name in (
        "function_names",
        "cloud_run_service_names",
        "audit_function_uri",
        "operator_role_id",
        "tasks_worker_role_id",
        "apis_to_enable",
        "cli_environment",
    ):
        assert name in tf.outputs, name
    entry_points = set(FUNCTIONS.values())
    assert set(tf.outputs["function_names"]["value"]) == entry_points
    assert set(tf.outputs["cloud_run_service_names"]["value"]) == entry_points
    for value in tf.outputs["cloud_run_service_names"]["value"].values():
        assert 'regex("[^/]+$"' in value, "the short name, as the logs label it"
    cli = "".join(p.read_text() for p in (ROOT / "devtools" / "opwatch_local" / "cli").glob("*.py"))
    environment = tf.outputs["cli_environment"]["value"]
    assert set(environment) == {
        "OPWATCH_WATCH_TOPIC",
        "OPWATCH_TASKS_QUEUE",
        "OPWATCH_CHECK_URL",
        "OPWATCH_TASKS_INVOKER_SA",
        "OPWATCH_LEDGER_DATABASE",
    }
    for name in environment:
        assert name in cli, f"the CLI does not read {name}"
    assert expr(environment["OPWATCH_CHECK_URL"]) == function_env(tf)["CHECK_URL"]
    assert expr(environment["OPWATCH_TASKS_QUEUE"]) == function_env(tf)["TASKS_QUEUE"]
    assert expr(environment["OPWATCH_LEDGER_DATABASE"]) == function_env(tf)["LEDGER_DATABASE"]


def test_outputs_the_readme_uses_exist(tf: Config) -> None:
    used = set(re.findall(r"terraform output -raw (\w+)", docs.documentation()))
    assert used, "the README's Deploy section uses terraform outputs"
    assert used <= set(tf.outputs), f"README uses missing outputs: {used - set(tf.outputs)}"
    example = Config(EXAMPLE)
    for name, body in example.outputs.items():
        assert expr(body["value"]).removeprefix("module.opwatch.") in tf.outputs, name


# The predefined role (title) that lets a deployer create each kind of resource, longest type
# prefix first. Titles and permissions from https://cloud.google.com/iam/docs/roles-permissions
# (e.g. Monitoring Dashboard Configuration Editor, roles/monitoring.dashboardEditor, holds
# monitoring.dashboards.create; Monitoring AlertPolicy Editor holds no dashboard permission).
DEPLOYER_ROLES = {
    "google_project_service_identity": "Service Usage Admin",
    "google_project_service": "Service Usage Admin",
    "google_project_iam_custom_role": "Role Administrator",
    "google_project_iam_": "Project IAM Admin",
    "google_pubsub_": "Pub/Sub Admin",
    "google_cloud_tasks_": "Cloud Tasks Admin",
    "google_cloud_scheduler_": "Cloud Scheduler Admin",
    "google_cloudfunctions2_": "Cloud Functions Admin",
    "google_cloud_run_": "Cloud Run Admin",
    "google_service_account_iam_": "Service Account Admin",
    "google_service_account": "Service Account Admin",
    "google_storage_": "Storage Admin",
    "google_logging_": "Logs Configuration Writer",
    "google_monitoring_alert_policy": "Monitoring AlertPolicy Editor",
    "google_monitoring_dashboard": "Monitoring Dashboard Configuration Editor",
    # The ledger's database, its indexes and its TTL policy (datastore.databases.create,
    # datastore.indexes.*; Firestore's Manage databases page names Owner or Datastore Owner).
    "google_firestore_": "Cloud Datastore Owner",
    "time_": "",
    "terraform_data": "",
}


def test_the_readme_names_a_role_for_every_resource_the_deployer_creates(tf: Config) -> None:
    section = docs.section("Prerequisites")
    section = " ".join(section.split())
    for rtype in {t for (t, _) in tf.resources}:
        prefixes = [p for p in DEPLOYER_ROLES if rtype.startswith(p)]
        assert prefixes, f"{rtype}: add the role that creates it to DEPLOYER_ROLES"
        role = DEPLOYER_ROLES[max(prefixes, key=len)]
        assert role in section, f"README Prerequisites: {rtype} needs {role}"
    assert "monitoring.dashboards.create" in section


# --- infra/README.md: the module's inputs and outputs ----------------------------------------

MODULE_README = INFRA / "README.md"
TABLES_BEGIN = (
    "<!-- BEGIN TABLES: rendered from variables.tf and outputs.tf by tests/infra/test_infra.py -->"
)
TABLES_END = "<!-- END TABLES -->"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _type_of(body: Body) -> str:
    text = expr(body["type"])
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= 40 else text.split("(", 1)[0] + "({...})"


def _default_of(body: Body) -> str:
    if "default" not in body:
        return "**required**"
    value = body["default"]
    if value is None:
        return "`null`"
    rendered = json.dumps(value) if not isinstance(value, str) else f'"{value}"'
    return f"`{rendered}`" if len(rendered) <= 40 else "see `variables.tf`"


def render_module_tables(tf: Config) -> str:
    """The inputs and outputs tables of infra/README.md, rendered from the module itself.

    To refresh them, print this and paste it between the markers:
    ``python -c "from tests.infra.test_infra import *; print(render_module_tables(module()))"``
    """
    lines = ["## Inputs", "", "| name | type | default | description |", "|---|---|---|---|"]
    for name, body in tf.variables.items():
        row = [f"`{name}`", f"`{_type_of(body)}`", _default_of(body), _cell(body["description"])]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Outputs", "", "| name | description |", "|---|---|"]
    for name, body in tf.outputs.items():
        lines.append(f"| `{name}` | {_cell(body['description'])} |")
    return "\n".join(lines)


def test_the_module_readme_tables_are_the_module(tf: Config) -> None:
    """Issue 20 §3: infra/README.md tables every input (type, default, description) and output,
    in the order of variables.tf and outputs.tf; a change to either file changes them."""
    text = MODULE_README.read_text()
    assert text.count(TABLES_BEGIN) == 1 and text.count(TABLES_END) == 1
    tables = text.split(TABLES_BEGIN)[1].split(TABLES_END)[0].strip()
    assert tables == render_module_tables(tf), (
        "infra/README.md is out of date; render it with render_module_tables (docstring)"
    )


def test_every_example_has_a_readme() -> None:
    for directory in (EXAMPLE, TWO_INSTANCES, CHAT_EXAMPLE):
        assert (directory / "README.md").is_file(), f"{directory} has no README.md"


# --- what the README says ---------------------------------------------------------------------


def readme_text() -> str:
    """The README with line breaks folded, so a phrase split across lines still reads whole."""
    return " ".join(docs.documentation().split())


def test_the_readme_names_every_function_and_its_kind() -> None:
    """functions/main.py decorates each entry point; "How it works" lists each with that kind."""
    source = (ROOT / "functions" / "main.py").read_text()
    decorated = re.findall(r"^@functions_framework\.(\w+)\ndef (\w+)\(", source, re.M)
    entry_points = {name: kind for kind, name in decorated}
    assert set(entry_points) == set(FUNCTIONS.values())
    text = readme_text()
    section = text.split("## How it works")[1].split("## ")[0]
    assert len(entry_points) == 4 and "Four functions" in section
    for name, kind in entry_points.items():
        label = {"http": "HTTP function", "cloud_event": "CloudEvent function"}[kind]
        assert re.search(rf"\*\*`{name}`\*\* \({label}\b", section), f"{name}: {label}"
    for stale in ("both functions", "two functions", "Neither function", "the two functions"):
        assert stale not in text, stale
        assert stale not in module().text, f"infra/: {stale}"


def test_the_readme_gives_the_documented_task_name_windows() -> None:
    """Cloud Tasks deduplicates a task name for about 1 hour (quotas page,
    https://cloud.google.com/tasks/docs/quotas; CreateTaskRequest reference: "another task with
    the same name can't be created for 1 hour after the original task was deleted or executed")
    and a deleted task's id can take up to 4 hours to be released (CreateTask reference). Not
    "up to 24 hours"."""
    text = readme_text()
    assert "24 hours after a task ran" not in text and "(at most a day)" not in text
    assert "about 1 hour" in text and "up to 4 hours" in text


def test_the_readme_quotes_the_documented_sink_latency() -> None:
    """Logging's Pub/Sub routing page: "99 % of log entries are available in less than 60
    seconds" (https://cloud.google.com/logging/docs/export/pubsub)."""
    text = readme_text()
    assert "99 % of log entries are available in less than 60 seconds" in text
    assert "latency is not documented" not in text


def test_the_abandoned_watch_runbook_and_the_alert_say_the_same() -> None:
    """The alert's documentation and the README's "Outages" step both resume an abandoned watch
    the one way the code recognises (opwatch.parking: a parked watch carries the attribute
    PARKED_ATTRIBUTE=PARKED_VALUE): its check_body, published unchanged to the parked topic."""
    from opwatch.envelope import PARKED_ATTRIBUTE, PARKED_VALUE

    attribute = f"--attribute={PARKED_ATTRIBUTE}={PARKED_VALUE}"
    policy = module().resource("google_monitoring_alert_policy", "watch_abandoned")
    doc = str(block(policy, "documentation")["content"])
    assert attribute in doc and "check_body" in doc
    assert "gcloud pubsub topics publish ${google_pubsub_topic.parked.id}" in doc
    assert not re.search(r"(?<!Do not )republish its request to the watch-requests topic", doc)
    outages = " ".join(docs.section("Outages: a watch waits them out").split())
    assert attribute in outages and "check_body" in outages
    assert 'topics publish "$(terraform output -raw parked_topic_id)"' in outages
    assert "parked_topic_id" in module().outputs


# --- cloudbuild.yaml --------------------------------------------------------------------------

BUILTIN_SUBSTITUTIONS = {
    "PROJECT_ID",
    "PROJECT_NUMBER",
    "BUILD_ID",
    "LOCATION",
    "TRIGGER_NAME",
    "COMMIT_SHA",
    "SHORT_SHA",
    "REVISION_ID",
    "BRANCH_NAME",
    "TAG_NAME",
    "REF_NAME",
    "REPO_NAME",
    "REPO_FULL_NAME",
    "SERVICE_ACCOUNT_EMAIL",
    "SERVICE_ACCOUNT",
}


@pytest.fixture(scope="module")
def build() -> Body:
    loaded: Body = yaml.safe_load(CLOUDBUILD.read_text())
    return loaded


def step(build: Body, step_id: str) -> Body:
    steps = {s.get("id"): s for s in build["steps"]}
    assert step_id in steps, f"cloudbuild.yaml has no step {step_id!r}"
    found: Body = steps[step_id]
    return found


def script(s: Body) -> str:
    return " ".join(str(a) for a in s.get("args", []))


def test_builder_images_are_pinned(build: Body) -> None:
    for s in build["steps"]:
        image = s["name"]
        assert "@sha256:" in image or re.search(r":[^/]*\d+\.\d+", image), f"{image} is unpinned"
        assert not image.endswith(":latest")


def test_pipeline_runs_the_test_suite_first(build: Body) -> None:
    test = step(build, "test")
    assert test["name"].startswith("python:3.11")
    assert "./run test" in script(test)
    # terraform must be on PATH there: the suite runs terraform fmt.
    assert "/tools/bin" in script(test)
    ids = [s.get("id") for s in build["steps"]]
    assert ids.index("test") < ids.index("init")
    assert "test" in step(build, "init")["waitFor"]


def test_pipeline_checks_format_then_inits_with_a_gcs_backend(build: Body) -> None:
    fmt = step(build, "fmt")
    assert fmt["name"].startswith("hashicorp/terraform:")
    assert {"fmt", "-check", "-recursive"} <= set(fmt["args"])
    init = script(step(build, "init"))
    assert 'backend "gcs"' in init
    assert "terraform init" in init
    assert '-backend-config="bucket=${_TF_STATE_BUCKET}"' in init
    assert '-backend-config="prefix=${_TF_STATE_PREFIX}"' in init
    assert "validate" in step(build, "validate")["args"]


def test_plan_is_saved_and_apply_is_gated(build: Body) -> None:
    plan = script(step(build, "plan"))
    assert "terraform plan" in plan and "-out=tfplan" in plan
    apply = script(step(build, "apply"))
    assert re.search(
        r'if \[ "\$\{_APPLY\}" = "true" \]; then\s+terraform apply [^\n]*tfplan', apply
    )
    assert build["substitutions"]["_APPLY"] == "false", "builds must plan only unless asked"
    ids = [s.get("id") for s in build["steps"]]
    assert ids[-1] == "apply"
    for s in build["steps"]:
        if s.get("id") != "apply":
            assert "terraform apply" not in script(s)


def test_apply_needs_cloud_builds_own_approval(build: Body) -> None:
    """Issue 20 §4: _APPLY is a substitution, which anyone who can submit a build sets. Cloud
    Build can hold a trigger's builds until an approver approves them ("Gate builds on
    approval", https://cloud.google.com/build/docs/securing-builds/gate-builds-on-approval);
    the approval step reads this build's approval.state (BuildApproval) and refuses to go on
    to apply unless it is APPROVED."""
    ids = [s.get("id") for s in build["steps"]]
    assert ids.index("plan") < ids.index("approval") < ids.index("apply")
    assert step(build, "apply")["waitFor"] == ["approval"]
    approval = step(build, "approval")
    assert approval["name"].startswith("gcr.io/google.com/cloudsdktool/google-cloud-cli:")
    text = script(approval)
    assert 'gcloud builds describe "$BUILD_ID"' in text and "approval.state" in text
    assert '[ "$$state" != "APPROVED" ]' in text and "exit 1" in text
    header = CLOUDBUILD.read_text().split("\nsubstitutions:")[0]
    assert "--require-approval" in header and "roles/cloudbuild.builds.approver" in header


def test_pull_request_plans_run_read_only(build: Body) -> None:
    """A pull request's code runs in its build: it plans as a plan-only account (documented on
    top) and takes no state lock, which would be a write to the state bucket."""
    plan = script(step(build, "plan"))
    assert re.search(r'if \[ "\$\{_APPLY\}" = "true" \]; then\s+set -- "\$\$@" -lock-timeout', plan)
    assert "-lock=false" in plan
    header = CLOUDBUILD.read_text().split("\nsubstitutions:")[0]
    for role in ("roles/viewer", "roles/iam.securityReviewer", "roles/storage.objectViewer"):
        assert role in header, role


def test_fmt_checks_every_terraform_root(build: Body) -> None:
    fmt = step(build, "fmt")
    checked = [ROOT / a for a in fmt["args"] if not a.startswith("-") and a != "fmt"]
    assert "-recursive" in fmt["args"]
    roots = {
        p.parent
        for p in ROOT.rglob("*.tf")
        if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
    }
    assert roots, "no Terraform roots found"
    for root in roots:
        assert any(root == c or c in root.parents for c in checked), f"fmt skips {root}"


def test_substitutions_are_declared_documented_and_escaped(build: Body) -> None:
    declared = set(build["substitutions"])
    assert {"_TF_STATE_BUCKET", "_TF_STATE_PREFIX", "_REGION", "_APPLY"} <= declared
    header = CLOUDBUILD.read_text().split("\nsubstitutions:")[0]
    for name in declared:
        assert re.search(rf"^#\s+{name}\b", header, re.M), f"{name} is not documented on top"
    # Cloud Build rejects a build that uses an unknown $NAME; shell variables must be $$NAME.
    for s in build["steps"]:
        text = script(s) + " ".join(s.get("env", []))
        for name in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text.replace("$$", "")):
            assert name in declared | BUILTIN_SUBSTITUTIONS, f"step {s.get('id')} uses ${name}"


def test_operators_get_exactly_what_the_cli_uses_and_only_if_named(tf: Config) -> None:
    """list/status page ListTasks and read GetTask with the FULL view, which needs
    cloudtasks.tasks.fullView besides tasks.list / tasks.get (ListTasks and GetTask references,
    https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks/list);
    cancel creates the next step's task (with the invoker's OIDC token: actAs on that account)
    and deletes the pending look; when no candidate task of a chain is there, GetQueue
    (cloudtasks.queues.get) tells a missing task from a missing queue. All of it on the check
    queue only: "access control can be configured at the project level and at the queue level"
    (https://cloud.google.com/tasks/docs/reference-access-control)."""
    role = tf.resource("google_project_iam_custom_role", "operator")
    assert "length(var.operators)" in expr(role["count"]) or "operators_enabled" in expr(
        role["count"]
    )
    assert set(role["permissions"]) == {
        "cloudtasks.tasks.list",
        "cloudtasks.tasks.get",
        "cloudtasks.tasks.fullView",
        "cloudtasks.tasks.create",
        "cloudtasks.tasks.delete",
        "cloudtasks.queues.get",
    }
    on_queue = tf.resource("google_cloud_tasks_queue_iam_member", "operators")
    assert expr(on_queue["role"]) == "google_project_iam_custom_role.operator[0].name"
    assert expr(on_queue["name"]) == "google_cloud_tasks_queue.checks.name"
    # The queue role is granted on the queue and nowhere else.
    for rtype, name, body in members_of(tf):
        if "custom_role.operator[0]" in str(body["role"]):
            assert (rtype, name) == ("google_cloud_tasks_queue_iam_member", "operators")
    # Cancelling operations themselves only when the variable grants it, and nothing else: a
    # role of its own on the project, where the watched API's operations live.
    cancels = tf.resource("google_project_iam_custom_role", "operator_cancels_operations")
    assert expr(cancels["permissions"]) == "local.operations_cancel_permissions"
    assert "operators_cancel_operations" in expr(cancels["count"])
    condition = tf.locals["operators_cancel_operations"]
    assert "local.operators_enabled" in condition
    assert "var.operators_may_cancel_operations" in condition
    assert "length(local.operations_cancel_permissions) > 0" in condition
    on_project = tf.resource("google_project_iam_member", "operators_cancel_operations")
    assert expr(on_project["role"]) == (
        "google_project_iam_custom_role.operator_cancels_operations[0].name"
    )
    rules = [str(r["condition"]) for r in tf.variables["watched_apis"]["validation"]]
    assert any("operations_cancel_permission" in r and "cancel$" in r for r in rules)
    assert tf.variables["operators_may_cancel_operations"]["default"] is False
    act_as = tf.resource("google_service_account_iam_member", "operators_act_as_invoker")
    assert "tasks_invoker" in expr(act_as["service_account_id"])
    assert expr(act_as["role"]).strip('"') == "roles/iam.serviceAccountUser"
    for rtype, name in (
        ("google_cloud_tasks_queue_iam_member", "operators"),
        ("google_project_iam_member", "operators_cancel_operations"),
        ("google_service_account_iam_member", "operators_act_as_invoker"),
        ("google_pubsub_topic_iam_member", "operators_publish_cancels"),
    ):
        assert "var.operators" in expr(tf.resource(rtype, name)["for_each"]), name


# --- discovery (opt-in) -----------------------------------------------------------------------

DISCOVERY = {
    ("google_pubsub_topic", "audit"),
    ("google_logging_project_sink", "audit"),
    ("google_pubsub_topic_iam_member", "sink_publishes_audit"),
    ("google_cloudfunctions2_function", "audit"),
    ("google_cloud_run_service_iam_member", "push_invokes_audit"),
    ("google_pubsub_subscription", "audit_push"),
    ("google_pubsub_subscription_iam_member", "audit_dead_letter_source_subscriber"),
}
INDEX_SERVICE = "google.cloud.cloudaicompanion.v1.CodeRepositoryIndexManagementService"


def test_discovery_is_off_unless_asked_and_all_of_it_follows_the_switch(tf: Config) -> None:
    variable = tf.variables["discovery"]
    assert "enabled = optional(bool, false)" in variable["type"]
    assert variable["default"] == {}
    assert tf.locals["discovery_count"] == "${var.discovery.enabled ? 1 : 0}"
    counted = {key for key, body in tf.resources.items() if "count" in body}
    assert counted >= DISCOVERY
    for key in DISCOVERY:
        assert expr(tf.resources[key]["count"]) == "local.discovery_count", key


def test_the_default_methods_are_the_gemini_index_and_repository_group_methods(
    tf: Config,
) -> None:
    found = re.search(
        r"methods\s*=\s*optional\(list\(string\), \[(.*?)\]\)",
        tf.variables["discovery"]["type"],
        re.S,
    )
    assert found, "discovery.methods has a default list"
    methods = set(re.findall(r'"([^"]+)"', found.group(1)))
    # Every long-running method on Gemini for Google Cloud's audit-logging page
    # (https://cloud.google.com/gemini/docs/audit-logging), TopicService's included (issue 18 §2).
    assert methods == {
        f"{INDEX_SERVICE}.{verb}{kind}"
        for verb in ("Create", "Update", "Delete")
        for kind in ("CodeRepositoryIndex", "RepositoryGroup")
    } | {
        f"google.cloud.cloudaicompanion.v1.TopicService.{verb}Topic"
        for verb in ("Create", "Update", "Delete")
    }


# DATA_WRITE methods among the defaults (audit-logging page, "Permission type"): logged only with
# Data Access audit logs on for the service.
DATA_WRITE_METHODS = {
    f"{INDEX_SERVICE}.{verb}RepositoryGroup" for verb in ("Create", "Update", "Delete")
} | {
    f"google.cloud.cloudaicompanion.v1.TopicService.{verb}Topic"
    for verb in ("Create", "Update", "Delete")
}


def test_data_write_audit_logs_are_an_opt_in_switch_for_what_needs_them(tf: Config) -> None:
    """Issue 18 §2: the repository-group and TopicService methods are DATA_WRITE, written only
    with Data Access audit logs on. discovery.data_write_audit_logs (off by default) turns on
    exactly DATA_WRITE for cloudaicompanion.googleapis.com; DATA_READ (every completion and
    chat) stays off. The README names the methods that need it and what it costs."""
    assert "data_write_audit_logs = optional(bool, false)" in tf.variables["discovery"]["type"]
    config = tf.resource("google_project_iam_audit_config", "cloudaicompanion_data_write")
    assert expr(config["count"]) == (
        "var.discovery.enabled && var.discovery.data_write_audit_logs ? 1 : 0"
    )
    assert config["service"] == "cloudaicompanion.googleapis.com"
    assert [c["log_type"] for c in config["audit_log_config"]] == ["DATA_WRITE"]
    assert "DATA_READ" not in json.dumps(config)
    discovery = " ".join(docs.section("Discovery: operations nobody registered (opt-in)").split())
    assert "data_write_audit_logs" in discovery and "Cloud Logging" in discovery
    for method in DATA_WRITE_METHODS:
        assert method.rsplit(".", 1)[1] in discovery, method


def test_the_sink_selects_first_and_last_entries_of_every_configured_method(tf: Config) -> None:
    sink = tf.resource("google_logging_project_sink", "audit")
    assert expr(sink["filter"]) == "local.discovery_filter"
    assert sink["unique_writer_identity"] is True
    assert expr(sink["destination"]) == "pubsub.googleapis.com/${google_pubsub_topic.audit[0].id}"
    log_filter = tf.locals["discovery_filter"]
    # Every configured method, by its full name, each quoted; both ends of an operation.
    # The method's name, without the API= a method may be written after (checks.tf).
    assert "for m in local.discovery_methods" in log_filter
    assert 'protoPayload.methodName=\\"${m.name}\\"' in log_filter
    assert "(operation.first=true OR operation.last=true)" in log_filter
    assert log_filter.startswith('${join(" AND ", [local.audit_logs, ')
    # A method name cannot break out of its quotes.
    (rule,) = tf.variables["discovery"]["validation"]
    assert "[A-Za-z_][A-Za-z0-9_]*" in rule["condition"] and '"' not in rule["condition"][30:80]


AUDIT_SAMPLES = sorted((ROOT / "tests" / "data").glob("audit-*.json"))
# The module's filter expression, rendered here for a list of methods (the test below checks the
# expression is exactly this, so the rendering cannot drift from it).
DISCOVERY_FILTER_EXPRESSION = (
    '${join(" AND ", [local.audit_logs, "(${join(" OR ", [for m in local.discovery_methods : '
    '"protoPayload.methodName=\\"${m.name}\\""])})", '
    '"(operation.first=true OR operation.last=true)"])}'
)


def rendered_discovery_filter(tf: Config, methods: list[str]) -> str:
    assert tf.locals["discovery_filter"] == DISCOVERY_FILTER_EXPRESSION
    names = " OR ".join(f'protoPayload.methodName="{m}"' for m in methods)
    return " AND ".join(
        [tf.locals["audit_logs"], f"({names})", "(operation.first=true OR operation.last=true)"]
    )


def forged(entry: Body, log_name: str) -> Body:
    return {**entry, "logName": log_name}


def test_the_sink_takes_entries_of_the_audit_logs_only(tf: Config) -> None:
    """In the Logging query language ``:`` is a substring ("has") match, so
    ``logName:"cloudaudit.googleapis.com"`` also matched logs anyone with
    logging.logEntries.create can write to, with an AuditLog-shaped payload
    (https://cloud.google.com/logging/docs/view/logging-query-language, "Comparisons");
    ``log_id()`` compares the whole log ID ("Functions" on the same page; the log ID is
    URL-encoded in logName, LogEntry reference
    https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry). The audit log IDs
    are cloudaudit.googleapis.com/activity and /data_access
    (https://cloud.google.com/logging/docs/audit#types)."""
    assert AUDIT_SAMPLES
    samples = [json.loads(path.read_text()) for path in AUDIT_SAMPLES]
    methods = sorted({s["protoPayload"]["methodName"] for s in samples})
    selects = logquery.compile_filter(rendered_discovery_filter(tf, methods))
    for path, entry in zip(AUDIT_SAMPLES, samples, strict=True):
        project = entry["logName"].split("/logs/")[0]
        assert selects(entry), f"{path.name}: a real audit entry must be routed"
        data_access = forged(entry, f"{project}/logs/cloudaudit.googleapis.com%2Fdata_access")
        assert selects(data_access), "DATA_WRITE methods log to data_access"
        for impostor in (
            "cloudaudit.googleapis.com-mine",
            "mine%2Fcloudaudit.googleapis.com%2Factivity",
            "cloudaudit.googleapis.com%2Factivity-copy",
            "cloudaudit.googleapis.com%2Fsystem_event",
        ):
            assert not selects(forged(entry, f"{project}/logs/{impostor}")), impostor
    # What the old filter did: the substring match took the impostors.
    old = logquery.compile_filter('logName:"cloudaudit.googleapis.com"')
    assert old(forged(samples[0], "projects/p/logs/cloudaudit.googleapis.com-mine"))
    assert not re.search(r"\blogName\s*:", json.dumps(tf.locals))


def test_the_sinks_writer_is_documented_as_the_shared_logging_agent(tf: Config) -> None:
    """unique_writer_identity = true gives the project's Logging service agent, used "for all
    sinks in a resource" (https://cloud.google.com/logging/docs/routing/user-managed-service-accounts),
    not an account of the sink's own: nothing may say otherwise."""
    text = "\n".join(p.read_text() for p in INFRA.glob("*.tf")) + docs.documentation()
    assert not re.search(r"(sink's own|its own writer identity|of this sink's own)", text)
    output = tf.outputs["audit_sink_writer_identity"]["description"]
    assert "Logging service agent" in output and "shared" in output


def test_the_sink_routes_nothing_before_its_subscription_exists(tf: Config) -> None:
    """Pub/Sub: "Only messages published to the topic after the subscription is created are
    available to subscriber clients" (subscription overview,
    https://cloud.google.com/pubsub/docs/subscription-overview): entries routed during the first
    apply, before the push subscription existed, were lost (issue 20 §3)."""
    sink = tf.resource("google_logging_project_sink", "audit")
    assert "google_pubsub_subscription.audit_push" in [expr(d) for d in sink["depends_on"]]


def test_the_sinks_writer_may_publish_to_the_audit_topic_only(tf: Config) -> None:
    writer = "google_logging_project_sink.audit[0].writer_identity"
    grants = [(rtype, body) for rtype, _, body in members_of(tf) if expr(body["member"]) == writer]
    assert grants == [
        (
            "google_pubsub_topic_iam_member",
            tf.resource("google_pubsub_topic_iam_member", "sink_publishes_audit"),
        )
    ]
    (_, grant) = grants[0]
    assert grant["role"] == "roles/pubsub.publisher"
    assert expr(grant["topic"]) == "google_pubsub_topic.audit[0].name"


def test_audit_entries_are_retried_then_dead_lettered_where_someone_looks(tf: Config) -> None:
    sub = tf.resource("google_pubsub_subscription", "audit_push")
    assert expr(sub["topic"]) == "google_pubsub_topic.audit[0].id"
    assert "retry_policy" in sub
    dead = block(sub, "dead_letter_policy")
    assert expr(dead["dead_letter_topic"]) == "google_pubsub_topic.dead_letter.id"
    grants = {
        (body["role"], expr(body.get("subscription", "")))
        for _, _, body in members_of(tf)
        if expr(body["member"]) == "local.pubsub_service_agent"
    }
    assert ("roles/pubsub.subscriber", "google_pubsub_subscription.audit_push[0].name") in grants
    waits = [expr(d) for d in sub["depends_on"]]
    assert "google_pubsub_topic_iam_member.dead_letter_publisher" in waits


def test_the_audit_function_is_the_shared_code_and_configuration(tf: Config) -> None:
    function = tf.resource("google_cloudfunctions2_function", "audit")
    assert block(function, "build_config")["entry_point"] == "on_audit_entry"
    assert function_env(tf)["DISCOVERY_INCLUDE_CALLER"] == "tostring(var.discovery.include_caller)"
    assert "include_caller = optional(bool, false)" in tf.variables["discovery"]["type"]


# --- rules across variables, as Terraform itself plans them ---------------------------------

GEMINI = "cloudaicompanion.googleapis.com"
FUNCTIONS_API = "cloudfunctions.googleapis.com"
FUNCTIONS_METHOD = "google.cloud.functions.v2.FunctionService.UpdateFunction"


@pytest.fixture(scope="module")
def planner(tmp_path_factory: pytest.TempPathFactory) -> Planner:
    return Planner(tmp_path_factory.mktemp("checks"))


def test_the_checks_read_variables_only_and_the_defaults_pass_them(
    tf: Config, planner: Planner
) -> None:
    """Every reference in checks.tf resolves with variables.tf alone (else the plan fails on an
    undeclared resource), and the module's defaults are a combination it accepts. The checks
    hold in every deployment: their resource has no count."""
    assert planner.refusal() == ""
    assert "count" not in tf.resource("terraform_data", "variable_checks")
    assert "precondition" in tf.resource("terraform_data", "variable_checks")["lifecycle"][0]


def discovery_on(*methods: str) -> Body:
    return {"discovery": {"enabled": True, "methods": list(methods)}}


def watched(*hosts: str, event_driven: bool = False) -> Body:
    return {
        "watched_apis": {
            host: {
                "operations_get_permission": f"{host.split('.')[0]}.operations.get",
                "operations_list_permission": f"{host.split('.')[0]}.operations.list",
                "event_driven": event_driven,
            }
            for host in hosts
        }
    }


def test_a_discovery_method_of_an_unwatched_api_is_refused(planner: Planner) -> None:
    """Issue 20 §2: a method whose API is not in ALLOWED_APIS deployed, and on_audit_entry then
    ignored every one of its entries. The plan now refuses it, naming the method."""
    refused = planner.refusal(**discovery_on(FUNCTIONS_METHOD, f"{INDEX_SERVICE}.X"))
    assert "Resource precondition failed" in refused
    assert f"not keys of watched_apis: {FUNCTIONS_METHOD} " in refused
    assert "from the method names: functions.googleapis.com)" in refused
    # Watching cloudfunctions.googleapis.com does not make the bare method its (the package
    # names functions.googleapis.com); written API=METHOD, with that API watched, it passes.
    prefixed = f"{FUNCTIONS_API}={FUNCTIONS_METHOD}"
    both = watched(GEMINI, FUNCTIONS_API)
    assert "precondition failed" in planner.refusal(**discovery_on(FUNCTIONS_METHOD), **both)
    assert planner.refusal(**discovery_on(prefixed, f"{INDEX_SERVICE}.X"), **both) == ""
    # Off, discovery checks nothing: its default methods need not be of a watched API.
    off = {"discovery": {"enabled": False}, **watched("spanner.googleapis.com")}
    assert planner.refusal(**off) == ""


def test_each_sample_entrys_api_is_read_from_its_method(planner: Planner) -> None:
    """The captured audit entries (tests/data/audit-*.json): the API checks.tf reads from each
    methodName is the entry's serviceName, except Cloud Functions', whose package
    (google.cloud.functions.v2) does not name its host; written API=METHOD, that one is too."""
    samples = [json.loads(path.read_text())["protoPayload"] for path in AUDIT_SAMPLES]
    services = {p["methodName"]: p["serviceName"] for p in samples}
    assert FUNCTIONS_API in services.values() and GEMINI in services.values()
    read = planner.value("local.discovery_methods", **discovery_on(*services))
    misread = {m["name"] for m in read if services[m["name"]] != m["api"]}
    assert misread == {FUNCTIONS_METHOD}
    written = [f"{services[m]}={m}" if m in misread else m for m in services]
    read = planner.value("local.discovery_methods", **discovery_on(*written))
    assert {m["name"]: m["api"] for m in read} == services


def test_the_sink_filters_on_the_method_name_without_its_api(planner: Planner) -> None:
    """The sink's filter takes m.name (test above): the prefix never reaches Logging."""
    read = planner.value(
        "local.discovery_methods", **discovery_on(f"{FUNCTIONS_API}={FUNCTIONS_METHOD}")
    )
    assert read == [{"name": FUNCTIONS_METHOD, "api": FUNCTIONS_API}]


def test_a_method_that_could_break_the_filter_is_refused(planner: Planner) -> None:
    for bad in (f'{FUNCTIONS_METHOD}" OR true', f"example.com={FUNCTIONS_METHOD}", "=x.y"):
        assert "Invalid value for variable" in planner.refusal(**discovery_on(bad)), bad


def test_an_event_driven_api_without_a_discovery_method_is_refused(planner: Planner) -> None:
    """EVENT_DRIVEN_APIS makes an API's watches poll as the safety net (up to 30 minutes
    between looks, opwatch.policy.SAFETY_NET): without a method of that API in the sink, no end
    entry ever brings a look forward."""
    apis = watched(GEMINI, FUNCTIONS_API, event_driven=True)
    refused = planner.refusal(**discovery_on(f"{INDEX_SERVICE}.X"), **apis)
    assert f"watched_apis marks {FUNCTIONS_API} event_driven" in refused
    both = discovery_on(f"{INDEX_SERVICE}.X", f"{FUNCTIONS_API}={FUNCTIONS_METHOD}")
    assert planner.refusal(**both, **apis) == ""


def test_a_sweep_parent_of_an_unwatched_or_unlistable_api_is_refused(planner: Planner) -> None:
    """on_sweep answers 400 to a parent of an API outside ALLOWED_APIS, and ListOperations
    needs the API's operations_list_permission in the runtime's role."""
    spanner = "spanner.googleapis.com=projects/p/locations/l"
    refused = planner.refusal(sweep={"parents": [spanner, "projects/p/locations/global"]})
    assert "sweep.parents names APIs that are not keys of watched_apis" in refused
    assert "spanner.googleapis.com" in refused and GEMINI not in refused.split("(a parent")[0]
    unlistable = {GEMINI: {"operations_get_permission": "cloudaicompanion.operations.get"}}
    refused = planner.refusal(
        sweep={"parents": ["projects/p/locations/global"]}, watched_apis=unlistable
    )
    assert f"operations_list_permission there: {GEMINI}" in refused
    with_spanner = watched(GEMINI, "spanner.googleapis.com")
    assert planner.refusal(sweep={"parents": [spanner]}, **with_spanner) == ""


def test_the_default_api_of_a_parent_is_the_functions(tf: Config) -> None:
    from opwatch.contracts import DEFAULT_API

    assert tf.locals["default_api"] == DEFAULT_API


def test_a_source_bucket_key_elsewhere_than_the_bucket_is_refused(planner: Planner) -> None:
    """Cloud Storage: "the key ring must be in the same location as the data you intend to
    encrypt" ("Use customer-managed encryption keys"); the bucket is in region."""
    key = "projects/kms/locations/{}/keyRings/r/cryptoKeys/k"
    refused = planner.refusal(cmek={"source_bucket": key.format("europe-west1")})
    assert "cmek.source_bucket is a key in europe-west1" in refused
    assert "the source bucket is in region (us-central1)" in refused
    assert planner.refusal(cmek={"source_bucket": key.format("us-central1")}) == ""
    assert (
        planner.refusal(region="europe-west1", cmek={"source_bucket": key.format("europe-west1")})
        == ""
    )
    assert "Invalid value for variable" in planner.refusal(cmek={"source_bucket": "k"})


def test_a_given_accounts_iam_name_is_in_its_own_project(tf: Config, planner: Planner) -> None:
    """service_account_id of a grant on a given account is projects/P/serviceAccounts/EMAIL,
    P the project in its email (the google provider requires a project there: its
    ServiceAccountLinkRegex refuses "-"), the deployment's for the Compute Engine default
    account, whose email names none. Evaluated by terraform console on iam.tf's expression."""
    for local, account in (("tasks_invoker_name", "tasks_invoker"), ("push_name", "push")):
        found = re.fullmatch(
            rf"\$\{{var\.service_accounts\.{account} != null \? (.+) : one\(.+\)\}}",
            tf.locals[local],
        )
        assert found, tf.locals[local]
        for email, project in (
            ("opwatch-x@shared-ids.iam.gserviceaccount.com", "shared-ids"),
            ("123456789012-compute@developer.gserviceaccount.com", "my-project"),
        ):
            name = planner.value(found.group(1), service_accounts={account: email})
            assert name == f"projects/{project}/serviceAccounts/{email}", local


def test_given_accounts_are_emails_each_in_one_role(planner: Planner) -> None:
    one = "ops@shared-ids.iam.gserviceaccount.com"
    assert (
        planner.refusal(
            service_accounts={"runtime": one, "push": "other@p1234.iam.gserviceaccount.com"}
        )
        == ""
    )
    refused = planner.refusal(service_accounts={"runtime": one, "tasks_invoker": one})
    assert "a different account for each identity" in refused
    assert "service account emails" in planner.refusal(
        service_accounts={"push": "user@example.com"}
    )


def test_the_module_s_own_accounts_keep_their_state(tf: Config) -> None:
    """The three accounts that had no count keep their state at index 0 (moved blocks): without
    them an upgrade would delete and recreate them, new accounts with new unique IDs, and
    every grant made to the old ones outside the module would be lost."""
    moved = [block for path in tf.files for block in _parse(path).get("moved", [])]
    pairs = {(expr(m["from"]), expr(m["to"])) for m in moved}
    assert pairs == {
        (f"google_service_account.{a}", f"google_service_account.{a}[0]")
        for a in ("runtime", "tasks_invoker", "push")
    }


# --- read budgets (issue 18 §5) ---------------------------------------------------------------


def rate(planner: Planner, **values: Any) -> float:
    found: float = planner.value("local.tasks_max_dispatches_per_second", **values)
    return found


def test_the_default_rate_never_exceeds_a_watched_apis_read_budget(
    tf: Config, planner: Planner
) -> None:
    """Gemini for Google Cloud: "Requests per second: 2", enforced for each user in a project
    (https://cloud.google.com/gemini/docs/quotas; whether operation GETs count is not
    documented). Every look is a GET by one user, the runtime account, and one queue carries
    the looks of every watched API, so the queue's default rate is the smallest budget."""
    default = tf.variables["watched_apis"]["default"][GEMINI]
    assert default["read_budget_per_second"] == 2
    assert tf.variables["tasks_max_dispatches_per_second"]["default"] is None
    assert rate(planner) == 2
    assert planner.value("local.read_budgets") == {GEMINI: 2}
    # A caller's own map that leaves the budget out still gets Google's figure for Gemini.
    own = {GEMINI: {"operations_get_permission": "cloudaicompanion.operations.get"}}
    assert rate(planner, watched_apis=own) == 2
    # An API without a budget of its own leaves the module's 5; the smallest budget caps all.
    assert rate(planner, **watched("spanner.googleapis.com")) == 5
    two = watched("spanner.googleapis.com", "run.googleapis.com")["watched_apis"]
    two["spanner.googleapis.com"]["read_budget_per_second"] = 3
    two["run.googleapis.com"]["read_budget_per_second"] = 0.5
    assert rate(planner, watched_apis=two) == 0.5
    # A raised budget (a quota increase) lets the rate up to the variable's.
    raised = {GEMINI: {**own[GEMINI], "read_budget_per_second": 20}}
    assert rate(planner, watched_apis=raised) == 5
    assert rate(planner, watched_apis=raised, tasks_max_dispatches_per_second=12) == 12


def test_a_rate_above_a_read_budget_is_refused(planner: Planner) -> None:
    refused = planner.refusal(tasks_max_dispatches_per_second=5)
    assert "tasks_max_dispatches_per_second = 5 is above the read budget of" in refused
    assert f"{GEMINI}, 2 per second" in refused
    assert planner.refusal(tasks_max_dispatches_per_second=2) == ""
    assert rate(planner, tasks_max_dispatches_per_second=1.5) == 1.5
    raised = {GEMINI: {"operations_get_permission": "cloudaicompanion.operations.get"}}
    raised[GEMINI]["read_budget_per_second"] = 10
    assert planner.refusal(tasks_max_dispatches_per_second=5, watched_apis=raised) == ""
    for bad in (0, 501):
        assert "Invalid value" in planner.refusal(tasks_max_dispatches_per_second=bad)
    zero = {GEMINI: {**raised[GEMINI], "read_budget_per_second": 0}}
    assert "read_budget_per_second must be null or" in planner.refusal(watched_apis=zero)


def test_the_tfvars_example_is_a_combination_the_plan_accepts(planner: Planner) -> None:
    values = _parse(INFRA / "terraform.tfvars.example")
    assert planner.refusal(**values) == ""
    assert rate(planner, **values) == 2


def test_the_capacity_section_says_what_a_budget_sustains() -> None:
    """Issue 18 §5: a mature watch looks once per its profile's max_delay (opwatch.policy), so a
    budget of B per second sustains about B x max_delay of them; the README's table is that
    product for each profile, and says the one shared queue is capped by the smallest budget."""
    from opwatch.policy import DEFAULT_PROFILE, PROFILES, SAFETY_NET

    section = docs.section("Each API's read budget")
    rows = re.findall(r"^\| (.+?) \| ([\d ]+) s \| \**([\d ]+)\** \| ([\d ]+) \|$", section, re.M)
    delays = {label: int(delay.replace(" ", "")) for label, delay, _, _ in rows}
    assert delays == {
        f"`{GEMINI}`": PROFILES[GEMINI].max_delay,
        "any other API (the default profile)": DEFAULT_PROFILE.max_delay,
        "an `event_driven` API with discovery on (safety net)": SAFETY_NET.max_delay,
    }
    for _, delay, at_two, at_five in rows:
        seconds = int(delay.replace(" ", ""))
        assert int(at_two.replace(" ", "")) == 2 * seconds
        assert int(at_five.replace(" ", "")) == 5 * seconds
    text = " ".join(section.split())
    assert "the smallest budget caps all of them" in text
    assert "A queue per API" in text and "read_budget_per_second" in text
    assert "https://cloud.google.com/gemini/docs/quotas" in text

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
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
EXAMPLE = INFRA / "examples" / "minimal"
CLOUDBUILD = ROOT / "cloudbuild.yaml"

# The configuration contract of the functions (README, "Configuration").
PRODUCTION_ENV = {
    "RESULTS_TOPIC",
    "TASKS_QUEUE",
    "CHECK_URL",
    "TASKS_INVOKER_SA",
    "ALLOWED_APIS",
    "ALLOWED_NOTIFY_TOPICS",
    "FETCH_TIMEOUT",
    "LOG_LEVEL",
}
LOCAL_ONLY_ENV = ("OPERATIONS_API_ENDPOINT", "PUBSUB_EMULATOR_HOST", "CLOUD_TASKS_EMULATOR_HOST")

Body = dict[str, Any]


# --- parsing --------------------------------------------------------------------------------


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


@pytest.fixture(scope="module")
def tf() -> Config:
    return module()


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


# --- tools ------------------------------------------------------------------------------------


def test_terraform_files_are_formatted(tmp_path: Path) -> None:
    terraform = shutil.which("terraform")
    assert terraform, "terraform is not on PATH; install Terraform >= 1.5 to run the infra checks"
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(INFRA)],
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
            "--quiet",
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
    # Every suppression is used (none is stale) and none hides more than it says.
    assert summary["skipped"] == len(skip_comments())
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


@pytest.mark.parametrize("directory", [INFRA, EXAMPLE], ids=["infra", "example"])
def test_every_variable_has_type_and_description(directory: Path) -> None:
    variables = Config(directory).variables
    assert variables
    for name, body in variables.items():
        assert body.get("type"), f"variable {name} has no type"
        assert len(str(body.get("description", ""))) >= 10, f"variable {name} is not described"


CONSTRAINED = (
    "project_id",
    "region",
    "name_prefix",
    "runtime",
    "ingress_settings",
    "watch_function",
    "check_function",
    "allowed_apis",
    "extra_operation_permissions",
    "allowed_notify_topics",
    "fetch_timeout_seconds",
    "log_level",
    "topic_message_retention_duration",
    "subscription_message_retention_duration",
    "watch_max_delivery_attempts",
    "watch_retry_backoff",
    "tasks_max_dispatches_per_second",
    "tasks_max_concurrent_dispatches",
    "tasks_retry",
    "tasks_logging_sampling_ratio",
    "source_archive_noncurrent_days",
)


@pytest.mark.parametrize("name", CONSTRAINED)
def test_constrained_variable_is_validated(tf: Config, name: str) -> None:
    assert name in tf.variables, f"variable {name} is missing"
    validations = tf.variables[name].get("validation", [])
    assert validations, f"variable {name} has no validation block"
    for rule in validations:
        assert f"var.{name}" in str(rule["condition"]), f"{name}: validation ignores the variable"
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


def test_required_apis_are_enabled(tf: Config) -> None:
    services = set(tf.locals["services"])
    for api in (
        "cloudfunctions",
        "run",
        "cloudbuild",
        "artifactregistry",
        "eventarc",
        "pubsub",
        "cloudtasks",
        "cloudaicompanion",
        "iam",
    ):
        assert f"{api}.googleapis.com" in services
    enabled = tf.resource("google_project_service", "enabled")
    assert "local.services" in expr(enabled["for_each"])
    assert enabled["disable_on_destroy"] is False


# --- functions --------------------------------------------------------------------------------

FUNCTIONS = {"check": "on_check", "watch": "on_watch_request"}


@pytest.mark.parametrize(("name", "entry_point"), FUNCTIONS.items())
def test_function_builds_the_functions_folder(tf: Config, name: str, entry_point: str) -> None:
    function = tf.resource("google_cloudfunctions2_function", name)
    build = block(function, "build_config")
    assert build["entry_point"] == entry_point
    assert expr(build["runtime"]) == "var.runtime"
    # The entry point must exist in the code that is zipped.
    assert re.search(rf"^def {entry_point}\(", (ROOT / "functions" / "main.py").read_text(), re.M)
    storage = block(block(build, "source"), "storage_source")
    assert expr(storage["object"]) == "google_storage_bucket_object.source.name"
    assert expr(storage["bucket"]) == "google_storage_bucket.source.name"


def test_source_archive_name_changes_with_the_code(tf: Config) -> None:
    archive = tf.data[("archive_file", "source")]
    assert archive["source_dir"] == "${path.module}/../functions"
    assert any("__pycache__" in pattern for pattern in archive["excludes"])
    obj = tf.resource("google_storage_bucket_object", "source")
    assert "data.archive_file.source.output_md5" in obj["name"]
    assert expr(obj["source"]) == "data.archive_file.source.output_path"


def test_source_bucket_is_private_and_versioned(tf: Config) -> None:
    bucket = tf.resource("google_storage_bucket", "source")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert block(bucket, "versioning")["enabled"] is True


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_gets_the_whole_configuration_contract(tf: Config, name: str) -> None:
    service = block(tf.resource("google_cloudfunctions2_function", name), "service_config")
    assert expr(service["environment_variables"]) == "local.function_environment"
    assert expr(service["service_account_email"]) == "google_service_account.runtime.email"
    env = tf.locals["function_environment"]
    assert set(env) == PRODUCTION_ENV


def test_environment_references_the_resources_it_names(tf: Config) -> None:
    env = {key: expr(value) for key, value in tf.locals["function_environment"].items()}
    assert env["RESULTS_TOPIC"] == "google_pubsub_topic.results.id"
    assert env["TASKS_QUEUE"] == "google_cloud_tasks_queue.checks.id"
    assert env["TASKS_INVOKER_SA"] == "google_service_account.tasks_invoker.email"
    assert env["CHECK_URL"] == "local.check_url"
    assert env["ALLOWED_APIS"] == 'join(",", var.allowed_apis)'
    assert env["ALLOWED_NOTIFY_TOPICS"] == 'join(",", var.allowed_notify_topics)'
    assert "var.fetch_timeout_seconds" in env["FETCH_TIMEOUT"]
    assert env["LOG_LEVEL"] == "var.log_level"
    for key, value in env.items():
        assert "projects/" not in value, f"{key} is hard-coded: {value}"


def test_local_only_settings_are_not_deployed(tf: Config) -> None:
    for name in LOCAL_ONLY_ENV:
        assert name not in tf.text


def test_check_url_is_the_check_functions_own_url(tf: Config) -> None:
    url = tf.locals["check_url"]
    assert url == (
        "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.check_function_name}"
    )
    check = tf.resource("google_cloudfunctions2_function", "check")
    assert expr(check["name"]) == "local.check_function_name"
    assert expr(check["location"]) == "var.region"
    assert expr(check["project"]) == "var.project_id"
    # Guard against the computed URL drifting from what Google assigns.
    conditions = [
        expr(p["condition"]) for lc in check["lifecycle"] for p in lc.get("postcondition", [])
    ]
    assert "self.url == local.check_url" in conditions


# --- who may call what ------------------------------------------------------------------------


def test_nothing_is_public(tf: Config) -> None:
    assert "allUsers" not in tf.text
    assert "allAuthenticatedUsers" not in tf.text
    for rtype, name, body in members_of(tf):
        for key, value in walk(body):
            if key in ("member", "members"):
                assert "allUsers" not in str(value), f"{rtype}.{name} is public"


def test_only_the_invoker_may_call_the_check_function(tf: Config) -> None:
    # Grants on the function resource or on a v2 Run service would bypass what is checked here.
    for rtype, name, _ in members_of(tf):
        assert not rtype.startswith(
            ("google_cloudfunctions2_function_iam", "google_cloud_run_v2")
        ), f"{rtype}.{name}: grant invoker rights on service_config[0].service only"
    on_check = [
        body
        for _, _, body in members_of(tf)
        if "google_cloudfunctions2_function.check." in str(body)
    ]
    assert len(on_check) == 1, "exactly one grant on on_check expected"
    (grant,) = on_check
    assert (
        expr(grant["service"]) == "google_cloudfunctions2_function.check.service_config[0].service"
    )
    assert grant["role"] == "roles/run.invoker"
    assert expr(grant["member"]) == "serviceAccount:${google_service_account.tasks_invoker.email}"
    check = tf.resource("google_cloudfunctions2_function", "check")
    assert "event_trigger" not in check


def test_watch_requests_are_pushed_to_the_watch_function(tf: Config) -> None:
    watch = tf.resource("google_cloudfunctions2_function", "watch")
    # One delivery path: an event_trigger as well would deliver every request twice.
    assert "event_trigger" not in watch
    pushes = [
        body for body in tf.of_type("google_pubsub_subscription").values() if "push_config" in body
    ]
    assert len(pushes) == 1
    (sub,) = pushes
    assert sub is tf.resource("google_pubsub_subscription", "watch_push")
    assert expr(sub["topic"]) == "google_pubsub_topic.watch_requests.id"
    push = block(sub, "push_config")
    uri = "google_cloudfunctions2_function.watch.service_config[0].uri"
    assert push["push_endpoint"].startswith(f"${{{uri}}}/")
    # The topic path in the URL is what functions-framework puts in the CloudEvent's source.
    assert push["push_endpoint"].endswith("${google_pubsub_topic.watch_requests.id}")
    token = block(push, "oidc_token")
    assert expr(token["service_account_email"]) == "google_service_account.push.email"
    assert expr(token["audience"]) == uri
    invoke = tf.resource("google_cloud_run_service_iam_member", "push_invokes_watch")
    assert (
        expr(invoke["service"]) == "google_cloudfunctions2_function.watch.service_config[0].service"
    )
    assert invoke["role"] == "roles/run.invoker"
    assert expr(invoke["member"]) == "serviceAccount:${google_service_account.push.email}"


def test_failed_watch_requests_are_retried_then_dead_lettered(tf: Config) -> None:
    sub = tf.resource("google_pubsub_subscription", "watch_push")
    retry = block(sub, "retry_policy")
    assert expr(retry["minimum_backoff"]) == "var.watch_retry_backoff.minimum"
    assert expr(retry["maximum_backoff"]) == "var.watch_retry_backoff.maximum"
    dead = block(sub, "dead_letter_policy")
    assert expr(dead["dead_letter_topic"]) == "google_pubsub_topic.dead_letter.id"
    assert expr(dead["max_delivery_attempts"]) == "var.watch_max_delivery_attempts"
    inspect = tf.resource("google_pubsub_subscription", "dead_letter")
    assert expr(inspect["topic"]) == "google_pubsub_topic.dead_letter.id"
    assert block(inspect, "expiration_policy")["ttl"] == ""


def test_pubsub_service_agent_can_dead_letter(tf: Config) -> None:
    agent = tf.locals["pubsub_service_agent"]
    assert agent == (
        "serviceAccount:service-${data.google_project.this.number}"
        "@gcp-sa-pubsub.iam.gserviceaccount.com"
    )
    grants = {
        (rtype, body["role"], expr(body.get("topic") or body.get("subscription")))
        for rtype, _, body in members_of(tf)
        if expr(body["member"]) == "local.pubsub_service_agent"
    }
    assert (
        "google_pubsub_topic_iam_member",
        "roles/pubsub.publisher",
        "google_pubsub_topic.dead_letter.name",
    ) in grants
    assert (
        "google_pubsub_subscription_iam_member",
        "roles/pubsub.subscriber",
        "google_pubsub_subscription.watch_push.name",
    ) in grants


def test_message_retention_is_set_deliberately(tf: Config) -> None:
    for rtype in ("google_pubsub_topic", "google_pubsub_subscription"):
        for name, body in tf.of_type(rtype).items():
            assert str(body.get("message_retention_duration", "")).startswith("${var."), (
                f"{rtype}.{name} keeps messages for an unstated time"
            )


# --- IAM --------------------------------------------------------------------------------------


def test_no_primitive_or_authoritative_roles(tf: Config) -> None:
    assert not re.search(r"roles/(owner|editor|viewer)\b", tf.text)
    for rtype, name, body in members_of(tf):
        # Authoritative bindings would remove grants that other teams made.
        assert rtype.endswith("_iam_member"), f"{rtype}.{name} is authoritative"
        assert str(body["role"]).startswith(("roles/", "${google_project_iam_custom_role."))


def grants_to(tf: Config, account: str) -> set[tuple[str, str, str]]:
    member = f"serviceAccount:${{google_service_account.{account}.email}}"
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


def test_runtime_account_has_exactly_its_grants(tf: Config) -> None:
    assert grants_to(tf, "runtime") == {
        (
            "google_project_iam_member",
            "google_project_iam_custom_role.operations_reader.name",
            "var.project_id",
        ),
        (
            "google_pubsub_topic_iam_member",
            "roles/pubsub.publisher",
            "google_pubsub_topic.results.name",
        ),
        ("google_pubsub_topic_iam_member", "roles/pubsub.publisher", "each.value"),
        (
            "google_cloud_tasks_queue_iam_member",
            "roles/cloudtasks.enqueuer",
            "google_cloud_tasks_queue.checks.name",
        ),
        (
            "google_service_account_iam_member",
            "roles/iam.serviceAccountUser",
            "google_service_account.tasks_invoker.name",
        ),
    }
    notify = tf.resource("google_pubsub_topic_iam_member", "runtime_publishes_notify")
    assert "var.allowed_notify_topics" in expr(notify["for_each"])


def test_custom_role_reads_operations_only(tf: Config) -> None:
    role = tf.resource("google_project_iam_custom_role", "operations_reader")
    permissions = expr(role["permissions"])
    assert '"cloudaicompanion.operations.get"' in permissions
    assert "var.extra_operation_permissions" in permissions
    assert not re.search(r"\.(create|update|delete|cancel|setIamPolicy)\b", permissions)


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
            "google_cloudfunctions2_function.watch.service_config[0].service",
        )
    }


# --- queue and outputs ------------------------------------------------------------------------


def test_queue_protects_the_operations_api(tf: Config) -> None:
    queue = tf.resource("google_cloud_tasks_queue", "checks")
    limits = block(queue, "rate_limits")
    assert expr(limits["max_dispatches_per_second"]) == "var.tasks_max_dispatches_per_second"
    assert expr(limits["max_concurrent_dispatches"]) == "var.tasks_max_concurrent_dispatches"
    retry = block(queue, "retry_config")
    for key in ("max_attempts", "min_backoff", "max_backoff", "max_doublings"):
        assert expr(retry[key]) == f"var.tasks_retry.{key}"
    logging = block(queue, "stackdriver_logging_config")
    assert expr(logging["sampling_ratio"]) == "var.tasks_logging_sampling_ratio"
    assert expr(queue["location"]) == "var.region"


OUTPUTS = {
    "watch_requests_topic_id": "google_pubsub_topic.watch_requests.id",
    "results_topic_id": "google_pubsub_topic.results.id",
    "dead_letter_topic_id": "google_pubsub_topic.dead_letter.id",
    "dead_letter_subscription_id": "google_pubsub_subscription.dead_letter.id",
    "watch_subscription_id": "google_pubsub_subscription.watch_push.id",
    "tasks_queue_id": "google_cloud_tasks_queue.checks.id",
    "check_function_url": "google_cloudfunctions2_function.check.url",
    "watch_function_url": "google_cloudfunctions2_function.watch.url",
    "runtime_service_account_email": "google_service_account.runtime.email",
    "tasks_invoker_service_account_email": "google_service_account.tasks_invoker.email",
    "push_service_account_email": "google_service_account.push.email",
}


@pytest.mark.parametrize(("name", "value"), OUTPUTS.items())
def test_wiring_points_are_outputs(tf: Config, name: str, value: str) -> None:
    assert name in tf.outputs, f"output {name} is missing"
    assert expr(tf.outputs[name]["value"]) == value
    assert len(str(tf.outputs[name].get("description", ""))) >= 10


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

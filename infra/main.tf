locals {
  labels = merge({ app = "opwatch" }, var.labels)

  # Everything per watched API comes from var.watched_apis, so the lists below cannot disagree
  # (a bad combination used to deploy and then make every function refuse to start).
  allowed_apis                  = sort(keys(var.watched_apis))
  operations_read_permissions   = sort(distinct(compact(flatten([for api in values(var.watched_apis) : [api.operations_get_permission, api.operations_list_permission]]))))
  event_driven_apis             = sort([for host, api in var.watched_apis : host if api.event_driven])
  operations_cancel_permissions = sort(distinct([for api in values(var.watched_apis) : api.operations_cancel_permission if api.operations_cancel_permission != null]))

  watch_function_name = "${var.name_prefix}-on-watch-request"
  check_function_name = "${var.name_prefix}-on-check"

  # CHECK_URL is the target of every re-check task and the audience of its OIDC token. Cloud Run
  # accepts as audience only the service's run.app URLs or a custom audience configured on it,
  # and counts same-project Cloud Tasks as internal traffic only on a run.app URL. on_check needs
  # the value too (it creates the next task) but cannot read its own outputs, so the URL is the
  # deterministic run.app URL Cloud Run documents, https://SERVICE-PROJECT_NUMBER.REGION.run.app
  # (a gen2 function's service has the function's name). It exists only while that DNS label
  # fits in 63 characters: name_prefix (<= 20) + "-on-check" + "-" + a 12-digit project number
  # is at most 42. data.google_cloud_run_v2_service.check in functions.tf fails the apply if the
  # service does not serve this URL, before any watch request is delivered.
  check_url = "https://${local.check_function_name}-${data.google_project.this.number}.${var.region}.run.app"

  # The configuration contract of the functions (README, "Configuration"). Local-only
  # variables (emulator hosts, OPERATIONS_API_ENDPOINT) are deliberately absent.
  function_environment = {
    RESULTS_TOPIC         = google_pubsub_topic.results.id
    TASKS_QUEUE           = google_cloud_tasks_queue.checks.id
    CHECK_URL             = local.check_url
    TASKS_INVOKER_SA      = local.tasks_invoker_email
    ALLOWED_APIS          = join(",", local.allowed_apis)
    ALLOWED_NOTIFY_TOPICS = join(",", values(var.allowed_notify_topics))
    FETCH_TIMEOUT         = tostring(var.fetch_timeout_seconds)
    LOG_LEVEL             = var.log_level
    # Where a watch goes when Cloud Tasks itself cannot take its next check (pubsub.tf).
    PARKED_TOPIC = google_pubsub_topic.parked.id
    # So a check knows when it runs on one of its task's last attempts (and re-enqueues itself
    # with a long delay instead of being dropped by Cloud Tasks).
    TASKS_MAX_ATTEMPTS = tostring(var.tasks_retry.max_attempts)
    # The dispatch deadline of the tasks the functions create: as long as on_check may run.
    DISPATCH_DEADLINE = tostring(var.check_function.timeout_seconds)
    # Whether a watch discovered in the audit logs is labelled with the caller's email.
    DISCOVERY_INCLUDE_CALLER = tostring(var.discovery.include_caller)
    EVENT_DRIVEN_APIS        = var.discovery.enabled ? join(",", local.event_driven_apis) : ""
    # The ledger (ledger.tf): projects/P/databases/D, and how long a finished record is kept.
    LEDGER_DATABASE       = google_firestore_database.ledger.id
    LEDGER_RETENTION_DAYS = tostring(var.ledger_retention)
    # Learned durations (README): how many finished operations of a kind before its watches
    # are scheduled from them, and whether watches are warned when overdue unless they say.
    LEARN_MIN_SAMPLES = tostring(var.learning.min_samples)
    WARN_OVERDUE      = tostring(var.learning.warn_overdue)
  }

  # The APIs the module's own resources are created through (tests/infra/test_infra.py derives the
  # list from the resource types). storage: the function source bucket. cloudresourcemanager:
  # data.google_project and the project IAM members. logging, monitoring: the log-based
  # metrics and the alert policies. firestore: the ledger's database, indexes and fields. No
  # Eventarc: nothing here uses it (see pubsub.tf).
  module_services = [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
  ]
  # Plus the watched APIs: their operations exist only while they are on.
  services = sort(distinct(concat(local.module_services, keys(var.watched_apis))))
}

data "google_project" "this" {
  project_id = var.project_id

  # Read once Resource Manager is enabled (on a first apply this defers the read to apply time).
  depends_on = [google_project_service.enabled]
}

resource "google_project_service" "enabled" {
  for_each = var.enable_apis ? toset(local.services) : toset([])

  project = var.project_id
  service = each.value

  # Other workloads may use these APIs: tearing opwatch down must not switch them off.
  disable_on_destroy         = false
  disable_dependent_services = false
}

locals {
  labels = merge({ app = "opwatch" }, var.labels)

  watch_function_name = "${var.name_prefix}-on-watch-request"
  check_function_name = "${var.name_prefix}-on-check"

  # CHECK_URL is needed by both functions, including on_check itself (it is the audience it
  # verifies and the target of the next task), so it cannot come from the function's own
  # outputs without a cycle. The gen2 cloudfunctions.net URL is a pure function of region,
  # project and name, so it is computed here; a postcondition on the check function fails
  # the apply if Google ever reports a different URL, instead of silently misrouting tasks.
  check_url = "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.check_function_name}"

  # The configuration contract of the functions (README, "Configuration"). Local-only
  # variables (emulator hosts, OPERATIONS_API_ENDPOINT) are deliberately absent.
  function_environment = {
    RESULTS_TOPIC         = google_pubsub_topic.results.id
    TASKS_QUEUE           = google_cloud_tasks_queue.checks.id
    CHECK_URL             = local.check_url
    TASKS_INVOKER_SA      = google_service_account.tasks_invoker.email
    ALLOWED_APIS          = join(",", var.allowed_apis)
    ALLOWED_NOTIFY_TOPICS = join(",", var.allowed_notify_topics)
    FETCH_TIMEOUT         = tostring(var.fetch_timeout_seconds)
    LOG_LEVEL             = var.log_level
  }

  # Eventarc is not used by this module (see pubsub.tf) but is listed by the deployment
  # issue; enabling it costs nothing and keeps an event_trigger variant possible.
  # storage: the function source bucket.
  services = [
    "artifactregistry.googleapis.com",
    "cloudaicompanion.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudtasks.googleapis.com",
    "eventarc.googleapis.com",
    "iam.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
  ]
}

data "google_project" "this" {
  project_id = var.project_id
}

resource "google_project_service" "enabled" {
  for_each = var.enable_apis ? toset(local.services) : toset([])

  project = var.project_id
  service = each.value

  # Other workloads may use these APIs: tearing opwatch down must not switch them off.
  disable_on_destroy         = false
  disable_dependent_services = false
}

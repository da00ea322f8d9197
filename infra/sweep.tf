# --- Sweep (opt-in, var.sweep): watch pending operations no audit entry announced ---
#
# Discovery needs one first audit entry per operation; an entry can be lost, some methods write
# none (Gemini's settings and setting-binding methods), and operations may predate discovery.
# A Cloud Scheduler job calls on_sweep every var.sweep.schedule with the parents to list
# (projects/P/locations/L, optionally API=...); on_sweep lists their operations
# (ListOperations, done=false, every page) and starts the discovered watch of each pending one
# that has none. It runs as the runtime account (operations.list is in its operations reader
# role). Nothing here exists unless var.sweep.parents names a parent.
locals {
  sweep_count         = length(var.sweep.parents) > 0 ? 1 : 0
  sweep_function_name = "${var.name_prefix}-on-sweep"
}

# The identity in the scheduler's OIDC tokens; may only invoke on_sweep. Not created when
# var.service_accounts.sweeper names one (local.sweeper_email, iam.tf).
resource "google_service_account" "sweeper" {
  count = local.sweep_count == 1 && var.service_accounts.sweeper == null ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-sweeper"
  display_name = "opwatch sweep scheduler"
  description  = "OIDC identity of the sweep's Cloud Scheduler job; may invoke on_sweep only."

  depends_on = [google_project_service.enabled]
}

# Same code and identity as the other functions. One sweep at a time is enough: a run lists a
# few pages per parent.
resource "google_cloudfunctions2_function" "sweep" {
  count = local.sweep_count

  project     = var.project_id
  location    = var.region
  name        = local.sweep_function_name
  description = "opwatch: watch the pending operations of the configured parents that no watch covers."
  labels      = local.labels

  build_config {
    runtime     = var.runtime
    entry_point = "on_sweep"
    # null: Cloud Build\'s default build account (README, Prerequisites).
    service_account = var.build_service_account

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory               = var.watch_function.available_memory
    timeout_seconds                = var.watch_function.timeout_seconds
    min_instance_count             = 0
    max_instance_count             = 1
    ingress_settings               = var.ingress_settings
    all_traffic_on_latest_revision = true
    service_account_email          = local.runtime_email
    environment_variables          = local.function_environment
  }

  depends_on = [
    google_project_service.enabled,
    google_cloud_run_service_iam_member.invoker_invokes_check,
  ]
}

resource "google_cloud_run_service_iam_member" "sweeper_invokes_sweep" {
  count = local.sweep_count

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.sweep[0].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${local.sweeper_email}"
}

# Cloud Scheduler HTTP target with an OIDC token (https://cloud.google.com/scheduler/docs/http-target-auth):
# the audience is the function's run.app URL, which Cloud Run accepts; a same-project Cloud
# Scheduler request to that URL counts as internal traffic for the ingress setting
# (https://cloud.google.com/run/docs/securing/ingress).
resource "google_cloud_scheduler_job" "sweep" {
  count = local.sweep_count

  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-sweep"
  description      = "opwatch: sweep the configured parents for pending operations nobody watches."
  schedule         = var.sweep.schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "${var.watch_function.timeout_seconds}s"

  # A failed sweep is retried by the next run; one retry covers a cold start.
  retry_config {
    retry_count = 1
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.sweep[0].service_config[0].uri
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode({ parents = var.sweep.parents }))

    oidc_token {
      service_account_email = local.sweeper_email
      audience              = google_cloudfunctions2_function.sweep[0].service_config[0].uri
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_cloud_run_service_iam_member.sweeper_invokes_sweep,
  ]
}

# What the queue was created with. ignore_changes keeps the first apply's values in output, so
# the precondition below sees a change of region or name_prefix, which would replace the queue
# (name and location are immutable) and with it every pending watch. With replace_queue = true
# the remembered values follow the variables (triggers_replace), and the change goes through.
resource "terraform_data" "queue_identity" {
  input            = { region = var.region, name_prefix = var.name_prefix }
  triggers_replace = var.replace_queue ? { region = var.region, name_prefix = var.name_prefix } : null

  lifecycle {
    ignore_changes = [input]
  }
}

# Re-checks of watched operations. Every dispatch is one GET on an operations API, so the
# rate limits here are what protects that API's read quota (and this project's share of it)
# when many watches are open at once; tasks beyond the rate simply wait in the queue. The rate
# is never above the smallest read budget of the watched APIs (checks.tf).
resource "google_cloud_tasks_queue" "checks" {
  project  = var.project_id
  location = var.region
  # Queue names cannot be reused for about 7 days after deletion (README, Deploy, "Tear down").
  name = "${var.name_prefix}-checks"

  rate_limits {
    max_dispatches_per_second = local.tasks_max_dispatches_per_second
    max_concurrent_dispatches = var.tasks_max_concurrent_dispatches
  }

  # Retries cover a failed dispatch (5xx, timeout, 429 from the function); the polling schedule
  # itself is new tasks created by on_check. Bounded so a poisoned task cannot loop forever.
  retry_config {
    max_attempts       = var.tasks_retry.max_attempts
    max_retry_duration = var.tasks_retry.max_retry_duration
    min_backoff        = var.tasks_retry.min_backoff
    max_backoff        = var.tasks_retry.max_backoff
    max_doublings      = var.tasks_retry.max_doublings
  }

  stackdriver_logging_config {
    sampling_ratio = var.tasks_logging_sampling_ratio
  }

  lifecycle {
    precondition {
      condition     = var.replace_queue || terraform_data.queue_identity.output == { region = var.region, name_prefix = var.name_prefix }
      error_message = "region or name_prefix changed: this replaces the check queue and drops every pending watch without a notification. Wait until no watch is in flight (opwatch list), or accept the loss, and apply with replace_queue = true; then set it back to false."
    }
  }

  depends_on = [google_project_service.enabled]
}

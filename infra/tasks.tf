# Re-checks of watched operations. Every dispatch is one GET on an operations API, so the
# rate limits here are what protects that API's read quota (and this project's share of it)
# when many watches are open at once; tasks beyond the rate simply wait in the queue.
resource "google_cloud_tasks_queue" "checks" {
  project  = var.project_id
  location = var.region
  # Queue names cannot be reused for about 7 days after deletion (README, Deploy, "Tear down").
  name = "${var.name_prefix}-checks"

  rate_limits {
    max_dispatches_per_second = var.tasks_max_dispatches_per_second
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

  depends_on = [google_project_service.enabled]
}

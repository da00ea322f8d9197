# Health from the functions' own log lines. Every line opwatch writes is a Cloud Logging
# structured entry whose jsonPayload.event is one of opwatch.logs.Event; the log-based metrics
# below select lines by that field (never by message wording) and take their labels from the
# fields each event carries (see opwatch/service.py). tests/infra/test_monitoring.py evaluates every
# filter against log lines captured from the real code, so a renamed event or field fails there.
#
# Metrics, the dashboard (dashboards/opwatch.json.tftpl) and three alerts, which open incidents
# in Cloud Monitoring and notify var.alert_notification_channels (none by default).

locals {
  # The entries the three functions write: gen2 functions run as Cloud Run services of their name.
  opwatch_logs = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=(\"${local.watch_function_name}\" OR \"${local.check_function_name}\" OR \"${local.audit_function_name}\" OR \"${local.sweep_function_name}\")"

  # Every look at an operation ends in exactly one of these lines: scheduled again (pending,
  # after a transient error, or found already scheduled) or finished.
  check_events = "jsonPayload.event=(\"check.pending\" OR \"check.transient_error\" OR \"check.duplicate\" OR \"watch.finished\")"

  # What the dashboard template is rendered with (tests/infra/test_monitoring.py renders it too).
  dashboard_vars = {
    name_prefix               = var.name_prefix
    watches_started           = google_logging_metric.watches_started.name
    watches_finished          = google_logging_metric.watches_finished.name
    checks                    = google_logging_metric.checks.name
    transient_errors          = google_logging_metric.transient_errors.name
    invalid_requests          = google_logging_metric.invalid_requests.name
    detection_lag             = google_logging_metric.detection_lag.name
    watch_abandoned           = google_logging_metric.watch_abandoned.name
    ledger_behind             = google_logging_metric.ledger_behind.name
    queue_id                  = google_cloud_tasks_queue.checks.name
    max_dispatches_per_second = local.tasks_max_dispatches_per_second
    dead_letter_subscription  = google_pubsub_subscription.dead_letter.name
  }
}

# --- log-based metrics ---------------------------------------------------------------------------

resource "google_logging_metric" "watches_started" {
  project     = var.project_id
  name        = "${var.name_prefix}-watches-started"
  description = "opwatch watches started: requested (watch.started) or discovered in the audit logs (watch.discovered)."
  filter      = "${local.opwatch_logs} AND jsonPayload.event=(\"watch.started\" OR \"watch.discovered\")"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "opwatch watches started"
  }

  depends_on = [google_project_service.enabled]
}

# One per notification of a watched operation. The outcome is a label taken from the line, not
# a list kept here: a new outcome shows up as a new label value without a change to this file.
# INVALID_REQUEST notifications are counted by invalid_requests (no operation was watched).
resource "google_logging_metric" "watches_finished" {
  project     = var.project_id
  name        = "${var.name_prefix}-watches-finished"
  description = "opwatch watches finished, by outcome (jsonPayload.event = \"watch.finished\")."
  filter      = "${local.opwatch_logs} AND jsonPayload.event=\"watch.finished\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "opwatch watches finished"

    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "The notification's outcome (SUCCEEDED, FAILED, ...)."
    }
  }

  label_extractors = {
    outcome = "EXTRACT(jsonPayload.outcome)"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "checks" {
  project     = var.project_id
  name        = "${var.name_prefix}-checks"
  description = "opwatch looks at operations (one GET each), by what came of them (the line's event)."
  filter      = "${local.opwatch_logs} AND ${local.check_events}"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "opwatch checks"

    labels {
      key         = "event"
      value_type  = "STRING"
      description = "check.pending, check.transient_error, check.duplicate or watch.finished."
    }
  }

  label_extractors = {
    event = "EXTRACT(jsonPayload.event)"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "transient_errors" {
  project     = var.project_id
  name        = "${var.name_prefix}-transient-errors"
  description = "opwatch fetches of an operation that failed and will be retried, by HTTP status (empty: no answer, e.g. a timeout)."
  filter      = "${local.opwatch_logs} AND jsonPayload.event=\"check.transient_error\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "opwatch transient fetch errors"

    labels {
      key         = "http_status"
      value_type  = "STRING"
      description = "HTTP status of the failed fetch; empty when there was no answer."
    }
  }

  label_extractors = {
    http_status = "EXTRACT(jsonPayload.http_status)"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "invalid_requests" {
  project     = var.project_id
  name        = "${var.name_prefix}-invalid-requests"
  description = "opwatch watch requests answered with INVALID_REQUEST, and pushes that were not Pub/Sub messages (jsonPayload.event = \"request.invalid\")."
  filter      = "${local.opwatch_logs} AND jsonPayload.event=\"request.invalid\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "opwatch invalid requests"
  }

  depends_on = [google_project_service.enabled]
}

# From the operation's own metadata.endTime to the moment opwatch saw it done: how late the
# notification is. Only operations whose metadata says endTime carry the field.
resource "google_logging_metric" "detection_lag" {
  project         = var.project_id
  name            = "${var.name_prefix}-detection-lag"
  description     = "Seconds from an operation's metadata.endTime to opwatch noticing it was done."
  filter          = "${local.opwatch_logs} AND jsonPayload.event=\"watch.finished\" AND jsonPayload.detection_lag_seconds:*"
  value_extractor = "EXTRACT(jsonPayload.detection_lag_seconds)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "s"
    display_name = "opwatch detection lag"

    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "The notification's outcome."
    }
  }

  label_extractors = {
    outcome = "EXTRACT(jsonPayload.outcome)"
  }

  # 1 s to about 18 h in doublings: the lag follows the polling delay, which grows to hours.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 16
      growth_factor      = 2
      scale              = 1
    }
  }

  depends_on = [google_project_service.enabled]
}

# The functions write one ERROR entry with jsonPayload.event = "watch.abandoned", holding the
# whole watch, when neither Cloud Tasks nor the parked topic would take it: that watch will
# never be notified unless someone publishes its check_body to the parked topic (README, "Outages").
resource "google_logging_metric" "watch_abandoned" {
  project     = var.project_id
  name        = "${var.name_prefix}-watch-abandoned"
  description = "opwatch watches abandoned because nothing could store them (Cloud Tasks and Pub/Sub both failing)."
  filter      = "${local.opwatch_logs} AND jsonPayload.event=\"watch.abandoned\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "opwatch abandoned watches"
  }

  depends_on = [google_project_service.enabled]
}

# The ledger is written on the side (README, "The ledger"): a write Firestore did not take
# (ledger.write_failed), a finish left to a record task or logged whole (ledger.behind), and an
# end entry that found no ledger to query (audit.ledger_unavailable). None of these delays or
# loses a watch; a steady count says the ledger, and what `opwatch list` shows, is behind.
resource "google_logging_metric" "ledger_behind" {
  project     = var.project_id
  name        = "${var.name_prefix}-ledger-behind"
  description = "opwatch ledger calls Firestore did not answer; watches went on without them."
  filter      = "${local.opwatch_logs} AND jsonPayload.event=(\"ledger.write_failed\" OR \"ledger.read_failed\" OR \"ledger.behind\" OR \"audit.ledger_unavailable\")"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "opwatch ledger behind"
  }

  depends_on = [google_project_service.enabled]
}

# --- dashboard -----------------------------------------------------------------------------------

# The definition is a JSON template in the repository (a Monitoring API Dashboard resource);
# tests/infra/test_monitoring.py renders it and checks it against the subset of that resource it uses.
resource "google_monitoring_dashboard" "opwatch" {
  project        = var.project_id
  dashboard_json = templatefile("${path.module}/dashboards/opwatch.json.tftpl", local.dashboard_vars)

  depends_on = [google_project_service.enabled]
}

# --- alerts --------------------------------------------------------------------------------------

# An alert policy on a log-based metric created in the same apply is refused with 404 "Cannot
# find metric(s) ... If a metric was created recently, it could take up to 10 minutes to become
# available" (google provider issue 11102, open). The policies on log-based metrics wait here.
# The wait runs when these metrics are created or replaced (triggers), not on other applies, and
# it overlaps the functions' builds, which take minutes themselves.
resource "time_sleep" "log_metrics_visible" {
  create_duration = var.log_metric_wait

  triggers = {
    watch_abandoned  = google_logging_metric.watch_abandoned.id
    watches_finished = google_logging_metric.watches_finished.id
  }
}

resource "google_monitoring_alert_policy" "watch_abandoned" {
  project               = var.project_id
  display_name          = "opwatch (${var.name_prefix}): a watch was abandoned"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.alert_notification_channels
  user_labels           = local.labels

  # Any occurrence: the sum over each minute is above zero.
  conditions {
    display_name = "watch.abandoned log entries"

    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.watch_abandoned.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [time_sleep.log_metrics_visible]

  documentation {
    mime_type = "text/markdown"
    content   = "An opwatch watch was abandoned: Cloud Tasks and the parked-checks topic both refused it, so it will not be notified. The log entry (jsonPayload.event = \"watch.abandoned\") holds the whole watch, with its progress, in jsonPayload.check_body: find it in Logs Explorer with `jsonPayload.event=\"watch.abandoned\"` and, once the outage is over, publish that body unchanged to the parked topic: `gcloud pubsub topics publish ${google_pubsub_topic.parked.id} --attribute=opwatch=parked-check --message=\"$CHECK_BODY\"` (README, \"Outages\"). Do not republish the watch request to the watch-requests topic: that starts a new watch and loses the progress."
  }
}

# Watch requests that failed every delivery attempt wait in the dead-letter subscription.
resource "google_monitoring_alert_policy" "dead_letter" {
  project               = var.project_id
  display_name          = "opwatch (${var.name_prefix}): watch requests were dead-lettered"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.alert_notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "dead-letter subscription is not empty"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Watch requests failed every delivery to on_watch_request and were dead-lettered. Inspect them with `gcloud pubsub subscriptions pull ${google_pubsub_subscription.dead_letter.id} --limit=10` (README, Deploy, \"Failed watch requests\")."
  }

  depends_on = [google_project_service.enabled]
}

# The share of finished watches that ended FAILED or PERMISSION_DENIED over a window. A ratio,
# not a count, so the threshold means the same at any traffic; the price is that one failure
# among few watches can cross it (raise the window for low-traffic deployments).
# PERMISSION_DENIED usually means the runtime account lacks *.operations.get on a project.
resource "google_monitoring_alert_policy" "failed_outcomes" {
  project               = var.project_id
  display_name          = "opwatch (${var.name_prefix}): many watches end FAILED or PERMISSION_DENIED"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.alert_notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "FAILED + PERMISSION_DENIED share of finished watches"

    condition_threshold {
      filter             = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.watches_finished.name}\" AND metric.labels.outcome = one_of(\"FAILED\", \"PERMISSION_DENIED\")"
      denominator_filter = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.watches_finished.name}\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.failed_outcomes_alert.max_ratio
      duration           = "0s"

      aggregations {
        alignment_period     = var.failed_outcomes_alert.window
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      denominator_aggregations {
        alignment_period     = var.failed_outcomes_alert.window
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [time_sleep.log_metrics_visible]

  documentation {
    mime_type = "text/markdown"
    content   = "More than ${var.failed_outcomes_alert.max_ratio * 100}% of the watches that finished in ${var.failed_outcomes_alert.window} ended FAILED or PERMISSION_DENIED. PERMISSION_DENIED: grant the runtime account the operations.get permission of the watched API in the operation's project. FAILED: the operations themselves failed; find them in Logs Explorer with `jsonPayload.event=\"watch.finished\" AND jsonPayload.outcome=(\"FAILED\" OR \"PERMISSION_DENIED\")`."
  }
}

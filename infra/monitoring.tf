# Alerts for what opwatch cannot fix by retrying. Both open an incident in Cloud Monitoring and
# notify var.alert_notification_channels (none by default).

# The functions write one ERROR entry with jsonPayload.event = "watch.abandoned", holding the
# whole watch, when neither Cloud Tasks nor the parked topic would take it: that watch will
# never be notified unless someone republishes it.
resource "google_logging_metric" "watch_abandoned" {
  project     = var.project_id
  name        = "${var.name_prefix}-watch-abandoned"
  description = "opwatch watches abandoned because nothing could store them (Cloud Tasks and Pub/Sub both failing)."
  filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(\"${local.watch_function_name}\" OR \"${local.check_function_name}\")",
    "jsonPayload.event=\"watch.abandoned\"",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "opwatch abandoned watches"
  }

  depends_on = [google_project_service.enabled]
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

  documentation {
    mime_type = "text/markdown"
    content   = "An opwatch watch was abandoned: Cloud Tasks and the parked-checks topic both refused it, so it will not be notified. The log entry (jsonPayload.event = \"watch.abandoned\") holds the whole watch: find it in Logs Explorer with `jsonPayload.event=\"watch.abandoned\"` and republish its request to the watch-requests topic once the outage is over."
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

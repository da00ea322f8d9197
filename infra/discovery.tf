# --- Discovery (opt-in, var.discovery): watch operations nobody registered ---
#
# Long-running methods write an audit entry when their operation starts (operation.first=true)
# and one when it ends (operation.last=true). A project sink routes both kinds, for the
# configured methods only, to the audit topic; its push subscription hands them to
# on_audit_entry, which starts a watch for each first entry (its watch id derived from the API
# and the operation, so a duplicate is the same watch) and treats a last entry as a hint that
# the operation has ended. An entry is only ever a hint: the outcome comes from a GET of the
# operation. Nothing here exists unless var.discovery.enabled is true.
locals {
  discovery_count     = var.discovery.enabled ? 1 : 0
  audit_function_name = "${var.name_prefix}-on-audit-entry"

  # The two Cloud Audit Logs a long-running method writes to, by their exact log IDs: Admin
  # Activity (ADMIN_WRITE methods, e.g. the index methods; always written) and Data Access
  # (DATA_WRITE methods, e.g. the repository-group methods; written only once Data Access audit
  # logs are on for the service, README "Discovery"). log_id() compares the whole log ID, where
  # logName:"cloudaudit.googleapis.com" was a substring ("has") match that any principal with
  # logging.logEntries.create could satisfy with a log of its own (say
  # projects/P/logs/cloudaudit.googleapis.com-mine) and an AuditLog-shaped payload.
  # tests/infra/test_infra.py evaluates this against captured and forged entries.
  audit_logs = "(log_id(\"cloudaudit.googleapis.com/activity\") OR log_id(\"cloudaudit.googleapis.com/data_access\"))"

  # Cloud Logging query language. Method names are validated (variables.tf) to letters, digits,
  # '_' and '.', so none can close the quotes; an API= before one (checks.tf) is not part of it.
  discovery_filter = join(" AND ", [
    local.audit_logs,
    "(${join(" OR ", [for m in local.discovery_methods : "protoPayload.methodName=\"${m.name}\""])})",
    "(operation.first=true OR operation.last=true)",
  ])
}

resource "google_pubsub_topic" "audit" {
  count = local.discovery_count
  #checkov:skip=CKV_GCP_83:Carries audit entries of the configured methods (operation names, resource names, and caller emails that opwatch drops unless include_caller); Google-managed encryption at rest like the audit logs themselves. Set cmek.topics if your policy requires CMEK.
  kms_key_name = var.cmek.topics

  project                    = var.project_id
  name                       = "${var.name_prefix}-audit-entries"
  labels                     = local.labels
  message_retention_duration = var.topic_message_retention_duration

  depends_on = [google_project_service.enabled]
}

resource "google_logging_project_sink" "audit" {
  count = local.discovery_count

  project     = var.project_id
  name        = "${var.name_prefix}-audit-entries"
  description = "opwatch discovery: first and last audit entries of the configured long-running methods."
  destination = "pubsub.googleapis.com/${google_pubsub_topic.audit[0].id}"
  filter      = local.discovery_filter
  # Despite its name, unique_writer_identity = true does not give this sink an account of its
  # own: "by default, Logging uses a Logging service account for all sinks in a resource"
  # (Logging, "Configure log sinks with user-managed service accounts"), the project's Logging
  # service agent service-PROJECT_NUMBER@gcp-sa-logging.iam.gserviceaccount.com. (false would
  # be the older shared cloud-logs@system.gserviceaccount.com.) The API returns it as
  # writer_identity when the sink is created, so it exists before the grant below.
  unique_writer_identity = true

  # Route nothing before something reads it: Pub/Sub keeps a message only for the subscriptions
  # that exist when it is published, so entries routed before the push subscription existed
  # would be lost.
  depends_on = [google_pubsub_subscription.audit_push]
}

# The sink writes as its writer identity, which may publish to the audit topic and nothing else.
# That identity is shared by every sink of the project: whoever may create a sink here
# (logging.sinks.create) can route any logs to the audit topic through this grant. So the
# filter above is not what keeps other logs out of on_audit_entry; the function checks each
# entry's logName itself, and an entry is only ever a hint (the outcome comes from a GET).
resource "google_pubsub_topic_iam_member" "sink_publishes_audit" {
  count = local.discovery_count

  project = var.project_id
  topic   = google_pubsub_topic.audit[0].name
  role    = "roles/pubsub.publisher"
  member  = google_logging_project_sink.audit[0].writer_identity
}

# Same code and identity as the other functions; sized like on_watch_request, which it mirrors.
resource "google_cloudfunctions2_function" "audit" {
  count = local.discovery_count

  project     = var.project_id
  location    = var.region
  name        = local.audit_function_name
  description = "opwatch: start a watch for an operation discovered in the audit logs."
  labels      = local.labels

  build_config {
    runtime     = var.runtime
    entry_point = "on_audit_entry"
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
    min_instance_count             = var.watch_function.min_instance_count
    max_instance_count             = var.watch_function.max_instance_count
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

resource "google_cloud_run_service_iam_member" "push_invokes_audit" {
  count = local.discovery_count

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.audit[0].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${local.push_email}"
}

# Like the watch-request subscription: the push account's OIDC token for the run.app URI,
# retries with backoff, then the shared dead-letter topic (its inspection subscription and
# alert cover audit entries too). on_audit_entry acknowledges every entry it cannot use, so
# only an entry that met an outage (no task or notification could be written) is retried.
resource "google_pubsub_subscription" "audit_push" {
  count = local.discovery_count

  project = var.project_id
  name    = "${var.name_prefix}-audit-entries-push"
  topic   = google_pubsub_topic.audit[0].id
  labels  = local.labels

  ack_deadline_seconds       = min(600, var.watch_function.timeout_seconds + 30)
  message_retention_duration = var.subscription_message_retention_duration

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.audit[0].service_config[0].uri}/${google_pubsub_topic.audit[0].id}"

    oidc_token {
      service_account_email = local.push_email
      audience              = google_cloudfunctions2_function.audit[0].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = var.watch_retry_backoff.minimum
    maximum_backoff = var.watch_retry_backoff.maximum
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.watch_max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_cloud_run_service_iam_member.push_invokes_audit,
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_service_account_iam_member.pubsub_agent_mints_push_tokens,
    data.google_cloud_run_v2_service.check,
  ]
}

# Dead-lettering: the Pub/Sub service agent acknowledges the failed entry here (it already
# publishes to the dead-letter topic, iam.tf).
resource "google_pubsub_subscription_iam_member" "audit_dead_letter_source_subscriber" {
  count = local.discovery_count

  project      = var.project_id
  subscription = google_pubsub_subscription.audit_push[0].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# Data Access audit logs, DATA_WRITE only, for Gemini for Google Cloud (opt-in,
# var.discovery.data_write_audit_logs). The repository-group and TopicService methods are
# DATA_WRITE: without this they write no audit entry, and discovery never sees them. DATA_READ
# (every code completion, chat and read, the bulk of the volume) stays off. The entries are
# billed as Cloud Logging ingestion beyond the free allotment (Cloud Logging pricing); one is
# written per such call, not per read. This resource is authoritative for the service's audit
# configuration: it replaces any other audit config of cloudaicompanion.googleapis.com made
# outside this module (exempted members, DATA_READ), so leave it off if one exists.
resource "google_project_iam_audit_config" "cloudaicompanion_data_write" {
  count = var.discovery.enabled && var.discovery.data_write_audit_logs ? 1 : 0

  project = var.project_id
  service = "cloudaicompanion.googleapis.com"

  audit_log_config {
    log_type = "DATA_WRITE"
  }

  depends_on = [google_project_service.enabled]
}

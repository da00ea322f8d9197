output "watch_requests_topic_id" {
  description = "Topic to publish watch requests to (projects/P/topics/T)."
  value       = google_pubsub_topic.watch_requests.id
}

output "results_topic_id" {
  description = "Topic of notifications; subscribe to it (with a filter) to be told when operations finish."
  value       = google_pubsub_topic.results.id
}

output "dead_letter_topic_id" {
  description = "Topic that receives watch requests which failed every delivery attempt."
  value       = google_pubsub_topic.dead_letter.id
}

output "dead_letter_subscription_id" {
  description = "Pull subscription for inspecting dead-lettered watch requests."
  value       = google_pubsub_subscription.dead_letter.id
}

output "watch_subscription_id" {
  description = "Push subscription that delivers watch requests to on_watch_request."
  value       = google_pubsub_subscription.watch_push.id
}

output "tasks_queue_id" {
  description = "Cloud Tasks queue of re-checks (projects/P/locations/L/queues/Q)."
  value       = google_cloud_tasks_queue.checks.id
}

output "check_function_url" {
  description = "cloudfunctions.net URL of on_check (not used by opwatch: tasks target CHECK_URL, its run.app URL)."
  value       = google_cloudfunctions2_function.check.url
}

output "check_function_uri" {
  description = "Cloud Run URI of on_check."
  value       = google_cloudfunctions2_function.check.service_config[0].uri
}

output "watch_function_url" {
  description = "URL of on_watch_request."
  value       = google_cloudfunctions2_function.watch.url
}

output "watch_function_uri" {
  description = "Cloud Run URI of on_watch_request (push endpoint base and OIDC audience)."
  value       = google_cloudfunctions2_function.watch.service_config[0].uri
}

output "runtime_service_account_email" {
  description = "Identity of the three functions. To watch operations in other projects, grant it their *.operations.get permission there."
  value       = local.runtime_email
}

output "tasks_invoker_service_account_email" {
  description = "Identity Cloud Tasks uses for OIDC tokens to on_check (TASKS_INVOKER_SA)."
  value       = local.tasks_invoker_email
}

output "push_service_account_email" {
  description = "Identity Pub/Sub uses for OIDC tokens to on_watch_request."
  value       = local.push_email
}

output "operations_reader_role_id" {
  description = "Custom role with the operations.get permissions the runtime account holds in this project."
  value       = google_project_iam_custom_role.operations_reader.name
}

output "source_bucket_name" {
  description = "Bucket holding the function source archives."
  value       = google_storage_bucket.source.name
}

output "parked_topic_id" {
  description = "Topic of watches parked while Cloud Tasks was unavailable (PARKED_TOPIC); pushed back to on_watch_request."
  value       = google_pubsub_topic.parked.id
}

output "parked_subscription_id" {
  description = "Push subscription that redelivers parked watches to on_watch_request."
  value       = google_pubsub_subscription.parked_push.id
}

output "watch_abandoned_metric" {
  description = "Log-based metric counting abandoned watches (jsonPayload.event = \"watch.abandoned\")."
  value       = google_logging_metric.watch_abandoned.name
}

output "watch_abandoned_alert_policy_id" {
  description = "Alert policy that fires when a watch is abandoned (projects/P/alertPolicies/ID)."
  value       = google_monitoring_alert_policy.watch_abandoned.name
}

output "dead_letter_alert_policy_id" {
  description = "Alert policy that fires when the dead-letter subscription is not empty."
  value       = google_monitoring_alert_policy.dead_letter.name
}

output "check_url" {
  description = "CHECK_URL: on_check's deterministic run.app URL, the target and OIDC audience of re-check tasks."
  value       = local.check_url
}

output "log_metrics" {
  description = "Log-based metrics opwatch writes to (metric type logging.googleapis.com/user/NAME), by role."
  value = {
    watches_started  = google_logging_metric.watches_started.name
    watches_finished = google_logging_metric.watches_finished.name
    checks           = google_logging_metric.checks.name
    transient_errors = google_logging_metric.transient_errors.name
    invalid_requests = google_logging_metric.invalid_requests.name
    detection_lag    = google_logging_metric.detection_lag.name
    watch_abandoned  = google_logging_metric.watch_abandoned.name
  }
}

output "dashboard_id" {
  description = "Cloud Monitoring dashboard of opwatch (projects/P/dashboards/ID)."
  value       = google_monitoring_dashboard.opwatch.id
}

output "failed_outcomes_alert_policy_id" {
  description = "Alert policy that fires when too many watches end FAILED or PERMISSION_DENIED."
  value       = google_monitoring_alert_policy.failed_outcomes.name
}

output "audit_topic_id" {
  description = "Topic the discovery sink publishes audit entries to (null unless discovery.enabled)."
  value       = try(google_pubsub_topic.audit[0].id, null)
}

output "audit_sink_writer_identity" {
  description = "Identity the discovery sink writes as: the project's Logging service agent, shared by all its sinks, which may publish to the audit topic (null unless discovery.enabled)."
  value       = try(google_logging_project_sink.audit[0].writer_identity, null)
}

output "audit_subscription_id" {
  description = "Push subscription that delivers audit entries to on_audit_entry (null unless discovery.enabled)."
  value       = try(google_pubsub_subscription.audit_push[0].id, null)
}

output "apis_to_enable" {
  description = "Every API this deployment needs on in the project: the module's own and the watched ones. With enable_apis = false, enable these yourself before applying."
  value       = local.services
}

output "function_names" {
  description = "Names of the Cloud Functions (2nd gen), by entry point (audit: null unless discovery.enabled; sweep: null unless sweep.parents is set)."
  value = {
    on_watch_request = google_cloudfunctions2_function.watch.name
    on_check         = google_cloudfunctions2_function.check.name
    on_audit_entry   = try(google_cloudfunctions2_function.audit[0].name, null)
    on_sweep         = try(google_cloudfunctions2_function.sweep[0].name, null)
  }
}

output "cloud_run_service_names" {
  description = "Short names of the Cloud Run services behind the functions, by entry point (the resource.labels.service_name of their logs; audit: null unless discovery.enabled; sweep: null unless sweep.parents is set)."
  value = {
    on_watch_request = regex("[^/]+$", google_cloudfunctions2_function.watch.service_config[0].service)
    on_check         = regex("[^/]+$", google_cloudfunctions2_function.check.service_config[0].service)
    on_audit_entry   = try(regex("[^/]+$", google_cloudfunctions2_function.audit[0].service_config[0].service), null)
    on_sweep         = try(regex("[^/]+$", google_cloudfunctions2_function.sweep[0].service_config[0].service), null)
  }
}

output "audit_function_uri" {
  description = "Cloud Run URI of on_audit_entry (push endpoint base and OIDC audience of the audit subscription; null unless discovery.enabled)."
  value       = try(google_cloudfunctions2_function.audit[0].service_config[0].uri, null)
}

output "tasks_worker_role_id" {
  description = "Custom role the runtime account holds on the check queue (create, get, list, delete tasks; get the queue)."
  value       = google_project_iam_custom_role.tasks_worker.name
}

output "operator_role_id" {
  description = "Custom role the operators hold on the check queue (null unless operators is set)."
  value       = try(google_project_iam_custom_role.operator[0].name, null)
}

output "cli_environment" {
  description = "The environment the opwatch CLI needs against this deployment (export each, or pass the matching flags): where to publish watches, the queue to list, status and cancel, what a cancel task targets, and the ledger its list, status and cancel read."
  value = {
    OPWATCH_WATCH_TOPIC      = google_pubsub_topic.watch_requests.id
    OPWATCH_TASKS_QUEUE      = google_cloud_tasks_queue.checks.id
    OPWATCH_CHECK_URL        = local.check_url
    OPWATCH_TASKS_INVOKER_SA = local.tasks_invoker_email
    OPWATCH_LEDGER_DATABASE  = google_firestore_database.ledger.id
  }
}

output "ledger_database_id" {
  description = "The ledger's Firestore database (projects/P/databases/D, LEDGER_DATABASE): one document per watch chain in the collection watches."
  value       = google_firestore_database.ledger.id
}

output "ledger_writer_role_id" {
  description = "Custom role the runtime account holds on the ledger database only (an IAM condition on its name): create, update, get and list documents."
  value       = google_project_iam_custom_role.ledger_writer.name
}

output "ledger_reader_role_id" {
  description = "Custom role the operators hold on the ledger database only: get and list documents (null unless operators is set)."
  value       = try(google_project_iam_custom_role.ledger_reader[0].name, null)
}

output "function_name" {
  description = "The Chat notifier function (Cloud Functions gen2)."
  value       = google_cloudfunctions2_function.notifier.name
}

output "trigger_service_account_email" {
  description = "Identity Eventarc uses to invoke the function."
  value       = google_service_account.trigger.email
}

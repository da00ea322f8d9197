output "watch_requests_topic_id" {
  description = "Publish watch requests here."
  value       = module.opwatch.watch_requests_topic_id
}

output "results_topic_id" {
  description = "Subscribe here for notifications."
  value       = module.opwatch.results_topic_id
}

output "dead_letter_subscription_id" {
  description = "Inspect failed watch requests here."
  value       = module.opwatch.dead_letter_subscription_id
}

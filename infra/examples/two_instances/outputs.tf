output "watch_requests_topic_ids" {
  description = "Where to publish watch requests, per instance."
  value       = { for name, instance in module.opwatch : name => instance.watch_requests_topic_id }
}

output "results_topic_ids" {
  description = "Where notifications appear, per instance."
  value       = { for name, instance in module.opwatch : name => instance.results_topic_id }
}

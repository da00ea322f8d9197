# The Google-managed agent that delivers push messages and moves messages to dead-letter topics
# (service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com). Service agents are created
# as services are used, and "if a service agent hasn't been created yet, then you can't grant
# roles to the service agent" (IAM, "Create and grant roles to service agents"): on a fresh
# project the grants below could fail. This asks Service Usage to create it first
# (generateServiceIdentity; a no-op when it exists), and every grant to the agent refers to its
# result, so none is made before it exists. An agent created this way is not given its usual
# project-wide role (roles/pubsub.serviceAgent); opwatch needs only the narrow grants in iam.tf
# and discovery.tf, and does not add it.
resource "google_project_service_identity" "pubsub" {
  provider = google-beta

  project = var.project_id
  service = "pubsub.googleapis.com"

  depends_on = [google_project_service.enabled]
}

locals {
  pubsub_service_agent = google_project_service_identity.pubsub.member
}

# Watch requests come in here; the only consumer is the push subscription below.
resource "google_pubsub_topic" "watch_requests" {
  #checkov:skip=CKV_GCP_83:Messages carry operation names and routing metadata, no customer data; Google-managed encryption at rest is enough. Set cmek.topics if your policy requires CMEK.
  kms_key_name               = var.cmek.topics
  project                    = var.project_id
  name                       = "${var.name_prefix}-watch-requests"
  labels                     = local.labels
  message_retention_duration = var.topic_message_retention_duration

  depends_on = [google_project_service.enabled]
}

# Notifications for downstream subscribers, who create their own (filtered) subscriptions.
resource "google_pubsub_topic" "results" {
  #checkov:skip=CKV_GCP_83:Notifications embed the operation as the API returned it, encrypted at rest with Google-managed keys like the API that produced it. CMEK is a per-organisation policy: set cmek.topics (and grant the Pub/Sub agent on the key) if yours requires it.
  kms_key_name = var.cmek.topics
  project      = var.project_id
  name         = "${var.name_prefix}-results"
  labels       = local.labels
  # Retained on the topic so a subscriber that is created late, or seeks back, can replay.
  message_retention_duration = var.topic_message_retention_duration

  depends_on = [google_project_service.enabled]
}

# Watch requests that failed watch_max_delivery_attempts times end up here.
resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Holds copies of watch requests (operation names only); Google-managed encryption at rest is enough. Set cmek.topics if your policy requires CMEK.
  kms_key_name               = var.cmek.topics
  project                    = var.project_id
  name                       = "${var.name_prefix}-watch-dead-letter"
  labels                     = local.labels
  message_retention_duration = var.topic_message_retention_duration

  depends_on = [google_project_service.enabled]
}

# Pull subscription so an operator can inspect (and republish) dead-lettered requests;
# without a subscription, messages published to the dead-letter topic would be lost.
resource "google_pubsub_subscription" "dead_letter" {
  project = var.project_id
  name    = "${var.name_prefix}-watch-dead-letter-inspect"
  topic   = google_pubsub_topic.dead_letter.id
  labels  = local.labels

  ack_deadline_seconds       = 60
  message_retention_duration = var.subscription_message_retention_duration
  retain_acked_messages      = false

  # Never expire: it may sit idle for months and must still be there when something fails.
  expiration_policy {
    ttl = ""
  }
}

# Delivery of watch requests to on_watch_request.
#
# Why a subscription we own instead of the function's event_trigger: an event_trigger makes
# Eventarc create and own the push subscription, and neither google_cloudfunctions2_function
# nor google_eventarc_trigger can set a dead_letter_policy (or the backoff) on it. Patching it
# with gcloud afterwards would be drift that Eventarc may undo when the trigger is updated.
# Owning the subscription puts retry backoff, dead-lettering, retention and the push identity
# in Terraform. on_watch_request is an HTTP function that reads the Pub/Sub push envelope
# ({"message": {...}, "subscription": ...}) itself (functions/main.py); the topic path in the
# URL tells which topic a push came from.
resource "google_pubsub_subscription" "watch_push" {
  project = var.project_id
  name    = "${var.name_prefix}-watch-requests-push"
  topic   = google_pubsub_topic.watch_requests.id
  labels  = local.labels

  # The function must answer before Pub/Sub gives up on the push and redelivers.
  ack_deadline_seconds       = min(600, var.watch_function.timeout_seconds + 30)
  message_retention_duration = var.subscription_message_retention_duration

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.watch.service_config[0].uri}/${google_pubsub_topic.watch_requests.id}"

    oidc_token {
      service_account_email = local.push_email
      # The function's run.app URL, an audience Cloud Run documents (the topic path in the
      # endpoint is not part of it); same-project pushes to it count as internal ingress.
      audience = google_cloudfunctions2_function.watch.service_config[0].uri
    }
  }

  # A failed delivery (non-2xx: the function raised for a retryable error) is retried with
  # backoff, then dead-lettered rather than retried forever.
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

  # Deliver only once the push identity may invoke the function and the service agent may
  # dead-letter (otherwise the first messages burn delivery attempts on 403s), and once the
  # tasks the watch function creates are known to reach on_check (functions.tf).
  depends_on = [
    google_cloud_run_service_iam_member.push_invokes_watch,
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_service_account_iam_member.pubsub_agent_mints_push_tokens,
    data.google_cloud_run_v2_service.check,
  ]
}

# --- Parked checks: the way around a Cloud Tasks outage ---
#
# When on_check or on_watch_request cannot create the next task because Cloud Tasks itself is
# failing, they publish the whole watch (request and progress) here instead. The subscription
# below pushes it back to on_watch_request, which recognises a parked watch by its data and
# tries to schedule its next check again; while Cloud Tasks is still down that raises, and
# Pub/Sub redelivers with backoff. A watch must survive a 24-hour outage of any one dependency,
# so nothing here may drop a message within 24 hours:
#   - retention is 7 days (the maximum for a subscription) on the topic and the subscription;
#   - the backoff grows to 600 s, so a 24-hour outage costs about 150 deliveries per watch;
#   - there is deliberately NO dead-letter policy: Pub/Sub dead-letters after at most 100
#     delivery attempts, and 100 attempts at <= 600 s apart are used up in under 17 hours.
#     The message is instead retried until it is acknowledged or its 7-day retention ends.
locals {
  parked_retention = "604800s"
}

resource "google_pubsub_topic" "parked" {
  #checkov:skip=CKV_GCP_83:Holds watch requests and their polling progress (operation names, labels), no customer data; Google-managed encryption at rest is enough. Set cmek.topics if your policy requires CMEK.
  kms_key_name               = var.cmek.topics
  project                    = var.project_id
  name                       = "${var.name_prefix}-parked-checks"
  labels                     = local.labels
  message_retention_duration = local.parked_retention

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "parked_push" {
  project = var.project_id
  name    = "${var.name_prefix}-parked-checks-push"
  topic   = google_pubsub_topic.parked.id
  labels  = local.labels

  ack_deadline_seconds       = min(600, var.watch_function.timeout_seconds + 30)
  message_retention_duration = local.parked_retention

  # Same function, identity and audience as the watch-request push subscription.
  push_config {
    push_endpoint = "${google_cloudfunctions2_function.watch.service_config[0].uri}/${google_pubsub_topic.parked.id}"

    oidc_token {
      service_account_email = local.push_email
      audience              = google_cloudfunctions2_function.watch.service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_cloud_run_service_iam_member.push_invokes_watch,
    google_service_account_iam_member.pubsub_agent_mints_push_tokens,
    data.google_cloud_run_v2_service.check,
  ]
}

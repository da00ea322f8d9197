# Example subscriber: every opwatch notification on the results topic becomes a Google Chat
# message. Eventarc creates its own push subscription on the topic and delivers each message
# as a CloudEvent to the function (README, "Consuming notifications").
#
# Before apply: build the helper wheel next to main.py (requirements.txt names it):
#   pip wheel ../../client --no-deps -w .

data "google_project" "this" {
  project_id = var.project_id
}

data "archive_file" "source" {
  type             = "zip"
  source_dir       = path.module
  output_path      = "${path.module}/.build/source.zip"
  output_file_mode = "0644"
  excludes = [
    "*.tf",
    "README.md",
    ".build/**",
    ".terraform/**",
    "**/__pycache__/**",
    "**/*.pyc",
    "terraform.tfstate*",
  ]
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only this function's source archives; access logging of a build bucket adds cost without an audit need. Enable it if your policy requires it.
  project  = var.project_id
  name     = "${var.project_id}-${var.name}-source"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_object" "source" {
  bucket = google_storage_bucket.source.name
  # The archive's hash in the name: a code change is a new object, so the function redeploys.
  name   = "chat-notifier/source-${data.archive_file.source.output_md5}.zip"
  source = data.archive_file.source.output_path
}

# The function's identity: it reads the webhook secret, nothing else.
resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = "${var.name}-run"
  display_name = "opwatch Chat notifier (runtime)"
}

# Eventarc's identity when it invokes the function.
resource "google_service_account" "trigger" {
  project      = var.project_id
  account_id   = "${var.name}-trigger"
  display_name = "opwatch Chat notifier (Eventarc trigger)"
}

resource "google_secret_manager_secret_iam_member" "runtime_reads_webhook" {
  project   = var.project_id
  secret_id = var.webhook_secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.runtime.email}"
}

resource "google_cloudfunctions2_function" "notifier" {
  project     = var.project_id
  location    = var.region
  name        = var.name
  description = "opwatch example: notifications on the results topic as Google Chat messages."

  build_config {
    runtime     = "python312"
    entry_point = "on_notification"

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory               = "256M"
    timeout_seconds                = 60
    max_instance_count             = 3
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.runtime.email

    secret_environment_variables {
      key        = "CHAT_WEBHOOK_URL"
      project_id = var.project_id
      secret     = var.webhook_secret_id
      version    = "latest"
    }
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = var.results_topic_id
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email
  }

  depends_on = [google_secret_manager_secret_iam_member.runtime_reads_webhook]
}

# Eventarc pushes with the trigger account's OIDC token: it must be allowed to invoke.
resource "google_cloud_run_service_iam_member" "trigger_invokes" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.notifier.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.trigger.email}"
}

# The Pub/Sub service agent mints the OIDC tokens of Eventarc's push subscription, as the
# trigger account only (projects created before April 2021 lack this grant; newer ones have it).
resource "google_service_account_iam_member" "pubsub_agent_signs_as_trigger" {
  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

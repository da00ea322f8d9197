locals {
  # By default the repository's functions/ next to this module: a module source such as
  # "git::https://...//infra" fetches the whole repository, so ../functions is there.
  source_dir = coalesce(var.source_dir, "${path.module}/../functions")
}

# Source of the three functions: main.py, requirements.txt and the opwatch package. One archive
# per module instance: the file is named after the instance's project and name_prefix (the pair
# that names its bucket, unique), so instances side by side (for_each, or two module blocks)
# never write the same file during a plan. It is written during plan into the root module's
# directory and read at apply: apply a saved plan in the checkout that made it (Cloud Build
# runs both in one workspace).
data "archive_file" "source" {
  type        = "zip"
  source_dir  = local.source_dir
  output_path = "${path.root}/.terraform/opwatch-build/${var.project_id}-${var.name_prefix}-functions.zip"
  # Fixed mode so the hash depends on content only, not on the machine that zips.
  output_file_mode = "0644"
  excludes = [
    "**/__pycache__/**",
    "**/*.pyc",
    "**/.pytest_cache/**",
    "**/.mypy_cache/**",
  ]
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only build inputs generated from this repository; access is covered by Cloud Audit Logs, and a log bucket would itself need a log bucket.
  project  = var.project_id
  name     = "${var.project_id}-${var.name_prefix}-source"
  location = var.region
  labels   = local.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Archives are rebuilt from git at every apply; nothing here needs to outlive the stack.
  force_destroy = true

  # Versioning keeps a replaced archive for rollback; the rule below bounds what that costs.
  versioning {
    enabled = true
  }

  # cmek.source_bucket (optional): the bucket's default key, so every archive is encrypted with
  # it. The Cloud Storage service agent must already hold cryptoKeyEncrypterDecrypter on the
  # key, or the bucket cannot be created with it (variables.tf says who grants it).
  dynamic "encryption" {
    for_each = var.cmek.source_bucket == null ? [] : [var.cmek.source_bucket]
    content {
      default_kms_key_name = encryption.value
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.source_archive_noncurrent_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# The archive's MD5 in the object name: new code, new object, new function revision.
resource "google_storage_bucket_object" "source" {
  bucket = google_storage_bucket.source.name
  name   = "functions/source-${data.archive_file.source.output_md5}.zip"
  source = data.archive_file.source.output_path
}

# HTTP function called by Cloud Tasks with an OIDC token of the invoker account. Not public:
# Cloud Run's IAM check admits only tokens whose audience is one of the service's run.app URLs
# and whose identity holds run.invoker, which only the invoker account does (iam.tf). The code
# does not verify the token itself; it checks that the request names its own queue.
resource "google_cloudfunctions2_function" "check" {
  project     = var.project_id
  location    = var.region
  name        = local.check_function_name
  description = "opwatch: re-check one watched operation (called by Cloud Tasks)."
  labels      = local.labels

  build_config {
    runtime     = var.runtime
    entry_point = "on_check"
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
    available_memory               = var.check_function.available_memory
    timeout_seconds                = var.check_function.timeout_seconds
    min_instance_count             = var.check_function.min_instance_count
    max_instance_count             = var.check_function.max_instance_count
    ingress_settings               = var.ingress_settings
    all_traffic_on_latest_revision = true
    service_account_email          = local.runtime_email
    environment_variables          = local.function_environment
  }

  depends_on = [google_project_service.enabled]
}

# The Cloud Run service behind on_check, read back after it is deployed: CHECK_URL was computed
# before the service existed (main.tf), so the apply fails here, before any watch request is
# delivered (the push subscriptions wait for this), if the service does not serve that URL.
# The data source wants the service's short name: it reads
# projects/{{project}}/locations/{{location}}/services/{{name}}, and service_config[0].service
# is already the full projects/.../services/NAME path (the API returns it so), which would read
# .../services/projects/... and fail as not found. Taking the last segment of that attribute
# (rather than local.check_function_name) keeps the read after the function's deployment.
data "google_cloud_run_v2_service" "check" {
  project  = var.project_id
  location = var.region
  name     = regex("[^/]+$", google_cloudfunctions2_function.check.service_config[0].service)

  lifecycle {
    postcondition {
      condition     = contains(self.urls, local.check_url)
      error_message = "on_check's Cloud Run service does not serve the computed CHECK_URL (local.check_url in main.tf), so every re-check would fail. Its URLs are listed in self.urls."
    }
  }
}

# Receives watch requests from the push subscription in pubsub.tf (not an event_trigger: see
# there why). It is an HTTP function (@functions_framework.http in main.py) that reads the push
# envelope itself, so it needs no trigger.
resource "google_cloudfunctions2_function" "watch" {
  project     = var.project_id
  location    = var.region
  name        = local.watch_function_name
  description = "opwatch: accept a watch request from Pub/Sub and schedule its first check."
  labels      = local.labels

  build_config {
    runtime     = var.runtime
    entry_point = "on_watch_request"
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

  # Tasks this function creates must find a check function that the invoker may call.
  depends_on = [
    google_project_service.enabled,
    google_cloud_run_service_iam_member.invoker_invokes_check,
  ]
}

# Four identities, each with one job:
#   runtime  - what the functions run as (read operations, work the check queue, publish)
#   invoker  - the identity in Cloud Tasks' OIDC tokens; may only invoke on_check
#   push     - the identity in Pub/Sub's push OIDC tokens; may only invoke on_watch_request
#              (and on_audit_entry)
#   sweeper  - the identity in the sweep scheduler's OIDC tokens (sweep.tf); may only invoke
#              on_sweep
# Each is the caller's account when var.service_accounts names one, else one created here.
# Everything else refers to them through the locals below, so a given account is granted
# exactly what a created one would be.

locals {
  runtime_email       = var.service_accounts.runtime != null ? var.service_accounts.runtime : one(google_service_account.runtime[*].email)
  tasks_invoker_email = var.service_accounts.tasks_invoker != null ? var.service_accounts.tasks_invoker : one(google_service_account.tasks_invoker[*].email)
  push_email          = var.service_accounts.push != null ? var.service_accounts.push : one(google_service_account.push[*].email)
  sweeper_email       = var.service_accounts.sweeper != null ? var.service_accounts.sweeper : one(google_service_account.sweeper[*].email)

  # The IAM names (projects/P/serviceAccounts/EMAIL) of the two accounts that others get a role
  # on. A given account's project is the one in its email (NAME@PROJECT.iam.gserviceaccount.com),
  # else the deployment's (the Compute Engine default account, N-compute@developer...).
  tasks_invoker_name = var.service_accounts.tasks_invoker != null ? "projects/${try(regex("@([a-z0-9-]+)\\.iam\\.gserviceaccount\\.com$", var.service_accounts.tasks_invoker)[0], var.project_id)}/serviceAccounts/${var.service_accounts.tasks_invoker}" : one(google_service_account.tasks_invoker[*].name)
  push_name          = var.service_accounts.push != null ? "projects/${try(regex("@([a-z0-9-]+)\\.iam\\.gserviceaccount\\.com$", var.service_accounts.push)[0], var.project_id)}/serviceAccounts/${var.service_accounts.push}" : one(google_service_account.push[*].name)
}

resource "google_service_account" "runtime" {
  count = var.service_accounts.runtime == null ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-runtime"
  display_name = "opwatch functions runtime"
  description  = "Runs on_watch_request, on_check, on_audit_entry and on_sweep."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "tasks_invoker" {
  count = var.service_accounts.tasks_invoker == null ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-invoker"
  display_name = "opwatch Cloud Tasks invoker"
  description  = "OIDC identity of re-check tasks; may invoke on_check only."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "push" {
  count = var.service_accounts.push == null ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-push"
  display_name = "opwatch Pub/Sub push"
  description  = "OIDC identity of watch-request pushes; may invoke on_watch_request only."

  depends_on = [google_project_service.enabled]
}

# The accounts had no count before service_accounts: their state moves to index 0, so an
# existing deployment keeps its accounts (a destroy and create would be new accounts, with
# new unique IDs, and every grant made outside the module to the old ones would be lost).
moved {
  from = google_service_account.runtime
  to   = google_service_account.runtime[0]
}

moved {
  from = google_service_account.tasks_invoker
  to   = google_service_account.tasks_invoker[0]
}

moved {
  from = google_service_account.push
  to   = google_service_account.push[0]
}

# --- runtime ---

# Read-only access to long-running operations (get one; list a parent's, for the sweep);
# nothing else in any API.
resource "google_project_iam_custom_role" "operations_reader" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_operationsReader"
  title       = "opwatch operations reader"
  description = "Read long-running operations of the APIs opwatch may watch."
  permissions = local.operations_read_permissions

  # IAM and Resource Manager must be enabled first; nothing else here refers to them.
  depends_on = [google_project_service.enabled]
}

resource "google_project_iam_member" "runtime_operations_reader" {
  project = var.project_id
  role    = google_project_iam_custom_role.operations_reader.name
  member  = "serviceAccount:${local.runtime_email}"

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic_iam_member" "runtime_publishes_results" {
  project = var.project_id
  topic   = google_pubsub_topic.results.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${local.runtime_email}"
}

# A watch Cloud Tasks cannot take is published here (PARKED_TOPIC, pubsub.tf).
resource "google_pubsub_topic_iam_member" "runtime_parks_checks" {
  project = var.project_id
  topic   = google_pubsub_topic.parked.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${local.runtime_email}"
}

# Same list as ALLOWED_NOTIFY_TOPICS: a topic the code may publish to is one it is allowed to.
# Topics in other projects need the deployer to hold setIamPolicy there.
resource "google_pubsub_topic_iam_member" "runtime_publishes_notify" {
  for_each = var.allowed_notify_topics

  topic  = each.value
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${local.runtime_email}"
}

# What the functions call on the check queue (Cloud Tasks access-control reference): CreateTask
# (tasks.create), GetTask and ListTasks with the FULL view (tasks.get, tasks.list, and
# tasks.fullView for FULL), DeleteTask (tasks.delete) and GetQueue (queues.get). No predefined
# role has that set without more: enqueuer lacks get/list/delete, viewer lacks create/delete,
# admin/editor add RunTask, purge and queue changes. A project-level custom role, granted on
# this queue only, so it reaches no other queue of the project.
resource "google_project_iam_custom_role" "tasks_worker" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_tasksWorker"
  title       = "opwatch check-queue worker"
  description = "Create, read, list and delete tasks on the opwatch check queue and read the queue."
  permissions = [
    "cloudtasks.tasks.create",
    "cloudtasks.tasks.get",
    "cloudtasks.tasks.delete",
    "cloudtasks.tasks.list",
    "cloudtasks.tasks.fullView",
    "cloudtasks.queues.get",
  ]

  depends_on = [google_project_service.enabled]
}

resource "google_cloud_tasks_queue_iam_member" "runtime_works_queue" {
  project  = var.project_id
  location = google_cloud_tasks_queue.checks.location
  name     = google_cloud_tasks_queue.checks.name
  role     = google_project_iam_custom_role.tasks_worker.name
  member   = "serviceAccount:${local.runtime_email}"
}

# Creating a task with an OIDC token for the invoker requires actAs on that account.
resource "google_service_account_iam_member" "runtime_acts_as_invoker" {
  service_account_id = local.tasks_invoker_name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${local.runtime_email}"
}

# --- callers of the functions (never allUsers / allAuthenticatedUsers) ---

resource "google_cloud_run_service_iam_member" "invoker_invokes_check" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.check.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${local.tasks_invoker_email}"
}

resource "google_cloud_run_service_iam_member" "push_invokes_watch" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.watch.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${local.push_email}"
}

# --- Pub/Sub service agent ---

# Dead-lettering: the agent republishes the failed message to the dead-letter topic...
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

# ...and acknowledges it on the source subscription.
resource "google_pubsub_subscription_iam_member" "dead_letter_source_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.watch_push.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# Projects created before April 2021 need this for authenticated push; scoped to the push
# account only, so it grants nothing beyond what the subscription already implies.
resource "google_service_account_iam_member" "pubsub_agent_mints_push_tokens" {
  service_account_id = local.push_name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

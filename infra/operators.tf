# Operators: people or systems that run `opwatch list`, `status` and `cancel` (README,
# "Watches in flight"). Nothing here exists unless var.operators names someone.

locals {
  operators_enabled = length(var.operators) > 0
}

# What the CLI does on the queue: list and read tasks with the FULL view (ListTasks and GetTask
# with response_view FULL also need tasks.fullView, CreateTask/GetTask references); a cancel
# creates the next step's task and deletes the pending look; when none of a chain's candidate
# tasks is there, GetQueue (queues.get) tells a missing task from a missing queue. Granted on
# the queue, not the project, so an operator of opwatch reaches no other queue. The ledger's
# queries are a role of their own (ledger.tf).
resource "google_project_iam_custom_role" "operator" {
  count       = local.operators_enabled ? 1 : 0
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_operator"
  title       = "opwatch operator"
  description = "List, inspect and cancel opwatch watches on its Cloud Tasks queue, and read the queue."
  permissions = [
    "cloudtasks.tasks.list",
    "cloudtasks.tasks.get",
    "cloudtasks.tasks.fullView",
    "cloudtasks.tasks.create",
    "cloudtasks.tasks.delete",
    "cloudtasks.queues.get",
  ]

  depends_on = [google_project_service.enabled]
}

resource "google_cloud_tasks_queue_iam_member" "operators" {
  for_each = var.operators
  project  = var.project_id
  location = google_cloud_tasks_queue.checks.location
  name     = google_cloud_tasks_queue.checks.name
  role     = google_project_iam_custom_role.operator[0].name
  member   = each.value
}

# operators_may_cancel_operations (false by default) lets `opwatch cancel --cancel-operation`
# also cancel the operation itself, with each watched API's operations_cancel_permission. Those
# act on the watched API's operations (projects/P/locations/L/operations/...), which a grant on
# the queue does not reach, so they are a role of their own, granted on the project.
locals {
  operators_cancel_operations = local.operators_enabled && var.operators_may_cancel_operations && length(local.operations_cancel_permissions) > 0
}

resource "google_project_iam_custom_role" "operator_cancels_operations" {
  count       = local.operators_cancel_operations ? 1 : 0
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_operationsCanceller"
  title       = "opwatch operator: cancel operations"
  description = "Cancel long-running operations of the APIs opwatch watches (opwatch cancel --cancel-operation)."
  permissions = local.operations_cancel_permissions

  depends_on = [google_project_service.enabled]
}

resource "google_project_iam_member" "operators_cancel_operations" {
  for_each = local.operators_cancel_operations ? var.operators : {}
  project  = var.project_id
  role     = google_project_iam_custom_role.operator_cancels_operations[0].name
  member   = each.value

  depends_on = [google_project_service.enabled]
}

# A cancel task carries the invoker's OIDC token, like every check task: creating one needs
# iam.serviceAccounts.actAs on that account (CreateTask reference).
resource "google_service_account_iam_member" "operators_act_as_invoker" {
  for_each           = var.operators
  service_account_id = local.tasks_invoker_name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}

# The other way to cancel: a {"cancel": ID} message on the watch topic.
resource "google_pubsub_topic_iam_member" "operators_publish_cancels" {
  for_each = var.operators
  project  = var.project_id
  topic    = google_pubsub_topic.watch_requests.name
  role     = "roles/pubsub.publisher"
  member   = each.value
}

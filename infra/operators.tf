# Operators: people or systems that run `opwatch list`, `status` and `cancel` (README,
# "Watches in flight"). Nothing here exists unless var.operators names someone.

locals {
  operators_enabled = length(var.operators) > 0
}

# What the CLI does on the queue: list and read tasks; a cancel creates the next step's task
# and deletes the pending look.
resource "google_project_iam_custom_role" "operator" {
  count       = local.operators_enabled ? 1 : 0
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_operator"
  title       = "opwatch operator"
  description = "List, inspect and cancel opwatch watches on its Cloud Tasks queue."
  # operator_cancel_permissions (empty by default) lets `opwatch cancel --cancel-operation`
  # also cancel the operation itself.
  permissions = concat([
    "cloudtasks.tasks.list",
    "cloudtasks.tasks.get",
    "cloudtasks.tasks.create",
    "cloudtasks.tasks.delete",
  ], var.operator_cancel_permissions)

  depends_on = [google_project_service.enabled]
}

resource "google_project_iam_member" "operators" {
  for_each = toset(var.operators)
  project  = var.project_id
  role     = google_project_iam_custom_role.operator[0].name
  member   = each.value

  depends_on = [google_project_service.enabled]
}

# A cancel task carries the invoker's OIDC token, like every check task: creating one needs
# iam.serviceAccounts.actAs on that account (CreateTask reference).
resource "google_service_account_iam_member" "operators_act_as_invoker" {
  for_each           = toset(var.operators)
  service_account_id = google_service_account.tasks_invoker.name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}

# The other way to cancel: a {"cancel": ID} message on the watch topic.
resource "google_pubsub_topic_iam_member" "operators_publish_cancels" {
  for_each = toset(var.operators)
  project  = var.project_id
  topic    = google_pubsub_topic.watch_requests.name
  role     = "roles/pubsub.publisher"
  member   = each.value
}

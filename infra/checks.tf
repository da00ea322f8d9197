# --- Rules across variables, refused at plan ---
#
# A variable's validation may name only that variable before Terraform 1.9, and the module
# supports >= 1.5 (versions.tf), so what must agree between variables is checked here, by the
# preconditions of one terraform_data resource: Terraform evaluates them during plan (every
# value they read is a variable) and a false one fails the plan with its message. Everything in
# this file derives from variables only: tests/infra/test_infra.py plans it with variables.tf alone,
# offline (terraform_data needs no provider), and sees each bad combination refused.
locals {
  # The API sweep parents and discovery methods default to, as functions/main.py parses
  # SWEEP_PARENTS (opwatch.contracts.DEFAULT_API).
  default_api = "cloudaicompanion.googleapis.com"

  # The API of each discovery method: the host before "=" if it names one
  # ("cloudfunctions.googleapis.com=google.cloud.functions.v2.FunctionService.UpdateFunction"),
  # else the host its gRPC package names by Google's convention, google.cloud.X.vN... or
  # google.X.vN... -> X.googleapis.com: cloudaicompanion, container (google.container.v1...),
  # spanner (google.spanner.admin.instance.v1...). The convention is not a rule (Cloud
  # Functions' methods are google.cloud.functions.v2..., its host cloudfunctions.googleapis.com):
  # a method whose service it misnames is refused below until it is prefixed. name is what the
  # audit entry's protoPayload.methodName holds, what the sink filters on.
  discovery_methods = [
    for m in var.discovery.methods : {
      name = element(split("=", m), length(split("=", m)) - 1)
      api = (length(split("=", m)) == 2 ? split("=", m)[0] :
        can(regex("^google\\.(?:cloud\\.)?([a-z][a-z0-9]*)\\.", m)) ?
      "${regex("^google\\.(?:cloud\\.)?([a-z][a-z0-9]*)\\.", m)[0]}.googleapis.com" : "")
    }
  ]
  discovery_apis = sort(distinct([for m in local.discovery_methods : m.api]))

  # With discovery on, each method's API must be watched (on_audit_entry ignores an entry of
  # any other service: ALLOWED_APIS), and each event-driven API needs a method whose end
  # entries arrive (else its watches poll only as the safety net, up to 30 minutes late).
  discovery_unwatched  = var.discovery.enabled ? [for m in local.discovery_methods : m.name if !contains(keys(var.watched_apis), m.api)] : []
  event_driven_unheard = var.discovery.enabled ? [for host, api in var.watched_apis : host if api.event_driven && !contains(local.discovery_apis, host)] : []

  # Each sweep parent's API must be watched and have its operations_list_permission: on_sweep
  # answers 400 to a parent of an API outside ALLOWED_APIS, and ListOperations needs the
  # permission (the runtime's operations reader role holds only the ones listed).
  sweep_parent_apis = [for p in var.sweep.parents : length(split("=", p)) == 2 ? split("=", p)[0] : local.default_api]
  sweep_unlisted    = sort(distinct([for api in local.sweep_parent_apis : api if try(var.watched_apis[api].operations_list_permission, null) == null]))

  # The source bucket's key must be where the bucket is: "the key ring must be in the same
  # location as the data you intend to encrypt" (Cloud Storage, "Use customer-managed
  # encryption keys"). The bucket is in region.
  source_key_location = try(split("/", var.cmek.source_bucket)[3], var.region)

  # Read budgets (issue 18 §5). One queue carries the looks of every watched API, so its rate
  # is what keeps each API's reads within budget, and the smallest budget caps them all (a
  # queue per API would lift that; the functions use one). A budget left null is the per-user
  # quota Google documents, where the module knows one: Gemini for Google Cloud, "Requests per
  # second: 2" for each user in a project (https://cloud.google.com/gemini/docs/quotas).
  documented_read_budgets = { "cloudaicompanion.googleapis.com" = 2 }
  read_budgets = {
    for host, api in var.watched_apis : host => (
      api.read_budget_per_second != null ? api.read_budget_per_second : lookup(local.documented_read_budgets, host, null)
    )
  }
  budgeted_apis        = { for host, budget in local.read_budgets : host => budget if budget != null }
  smallest_read_budget = length(local.budgeted_apis) > 0 ? min(values(local.budgeted_apis)...) : null
  # The check queue's rate (tasks.tf): the caller's, else 5 (what the module always had), and
  # never above a budget. A caller's rate above one is refused below rather than lowered.
  tasks_max_dispatches_per_second = min(concat([coalesce(var.tasks_max_dispatches_per_second, 5)], values(local.budgeted_apis))...)
}

resource "terraform_data" "variable_checks" {
  lifecycle {
    precondition {
      condition     = length(local.discovery_unwatched) == 0
      error_message = "discovery.methods names methods of APIs that are not keys of watched_apis: ${join(", ", local.discovery_unwatched)} (their APIs, as read from the method names: ${join(", ", distinct([for m in local.discovery_methods : m.api if contains(local.discovery_unwatched, m.name)]))}). on_audit_entry would ignore every entry of them. Add the API to watched_apis, or, if the method's service is not the one its package names, write the method as API=METHOD (e.g. cloudfunctions.googleapis.com=google.cloud.functions.v2.FunctionService.UpdateFunction)."
    }
    precondition {
      condition     = length(local.event_driven_unheard) == 0
      error_message = "watched_apis marks ${join(", ", local.event_driven_unheard)} event_driven, but no method in discovery.methods belongs to it: its watches would poll only as the safety net (up to 30 minutes between looks) and no end entry would ever bring a look forward. Add its long-running methods to discovery.methods, or set event_driven = false."
    }
    precondition {
      condition     = coalesce(var.tasks_max_dispatches_per_second, 0) <= coalesce(local.smallest_read_budget, 500)
      error_message = "tasks_max_dispatches_per_second = ${coalesce(var.tasks_max_dispatches_per_second, 0)} is above the read budget of ${join(", ", [for host, budget in local.budgeted_apis : host if budget == local.smallest_read_budget])}, ${coalesce(local.smallest_read_budget, 0)} per second (watched_apis[*].read_budget_per_second): every re-check is one GET, all made by the runtime account, and one queue carries the looks of every watched API. Lower it, or leave it null (the smallest budget), or raise that budget if the API's quota is higher for this project."
    }
    precondition {
      condition     = local.source_key_location == var.region
      error_message = "cmek.source_bucket is a key in ${local.source_key_location}, but the source bucket is in region (${var.region}): Cloud Storage takes a default key only from a key ring in the bucket's location. Use a key of a key ring in ${var.region}."
    }
    precondition {
      condition     = length(local.sweep_unlisted) == 0
      error_message = "sweep.parents names APIs that are not keys of watched_apis, or have no operations_list_permission there: ${join(", ", local.sweep_unlisted)} (a parent without API= is ${local.default_api}'s). on_sweep would answer 400, or ListOperations 403, at every run."
    }
  }
}

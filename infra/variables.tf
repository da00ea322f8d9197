variable "project_id" {
  type        = string
  description = "ID of the project that hosts opwatch (topics, queue, functions, service accounts)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 chars, lowercase letters, digits, hyphens), not a name or number."
  }
}

variable "region" {
  type        = string
  description = "Region of the functions, the Tasks queue and the source bucket. The check function's URL (CHECK_URL) is derived from it. Stateful: changing it replaces the queue, and every pending watch (each is a task on it) is dropped without a notification; the plan refuses unless replace_queue = true. While ledger_location is null it is also the ledger database's location, which a change replaces (replace_ledger)."
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a single region such as us-central1 (multi-regions cannot host functions or queues)."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name. Short, because service account IDs are limited to 30 characters. Stateful: changing it replaces the queue (and everything else), and every pending watch is dropped without a notification; the plan refuses unless replace_queue = true. While ledger_database is null it also names the ledger database, which a change replaces (replace_ledger)."
  default     = "opwatch"

  validation {
    # 4-20 chars keeps "<prefix>-invoker" (the longest service account ID) within 30.
    condition     = can(regex("^[a-z][a-z0-9-]{2,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 4-20 chars: lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "replace_queue" {
  type        = bool
  description = "Set to true, for one apply, to let a change of region or name_prefix replace the check queue. The queue holds every pending watch (one task each): replacing it drops them all, and nobody is notified. false: such a change fails the plan (a precondition on the queue)."
  default     = false
  nullable    = false
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every resource that supports them."
  default     = {}
}

variable "enable_apis" {
  type        = bool
  description = "Enable the Google APIs opwatch needs. Set false when a project factory manages services."
  default     = true
}

variable "source_dir" {
  type        = string
  description = "Folder whose contents are deployed as the functions' source (main.py, requirements.txt, the opwatch package). null: the repository's functions/ next to this module."
  default     = null

  validation {
    condition     = var.source_dir == null || try(length(trimspace(var.source_dir)) > 0, false)
    error_message = "source_dir must be a folder path, or null for the repository's functions/."
  }
}

variable "build_service_account" {
  type        = string
  description = "Service account the functions' builds run as (projects/P/serviceAccounts/EMAIL). null: Cloud Build's default, which in projects created since mid-2024 is the Compute Engine default account and may lack roles/cloudbuild.builds.builder (README, Prerequisites). The deployer needs iam.serviceAccounts.actAs on it."
  default     = null

  validation {
    condition     = var.build_service_account == null || can(regex("^projects/[^/]+/serviceAccounts/[^/@]+@[^/]+$", coalesce(var.build_service_account, "-")))
    error_message = "build_service_account must be null or projects/PROJECT/serviceAccounts/EMAIL."
  }
}

variable "service_accounts" {
  type = object({
    # Each an email (NAME@PROJECT.iam.gserviceaccount.com); null: the module creates it.
    runtime       = optional(string) # runs the functions
    tasks_invoker = optional(string) # Cloud Tasks' OIDC identity toward on_check
    push          = optional(string) # Pub/Sub's OIDC identity toward on_watch_request, on_audit_entry
    sweeper       = optional(string) # Cloud Scheduler's OIDC identity toward on_sweep
  })
  description = "Existing service accounts to use instead of the ones the module creates, by identity (emails): runtime runs the functions, tasks_invoker is the identity of the re-check tasks' OIDC tokens (TASKS_INVOKER_SA), push that of the push subscriptions', sweeper that of the sweep's scheduler job. null: created as <name_prefix>-runtime, -invoker, -push, -sweeper. A given account is granted exactly what the module grants its own (iam.tf) and nothing is taken from it; the module never deletes it. Four distinct accounts: each identity may do its one job only. The emails must be known at plan (literals, or outputs of another configuration): whether an account is created is decided then."
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for e in values(var.service_accounts) : e == null || can(regex("^[a-z0-9][a-z0-9.-]*@[a-z0-9.-]+\\.gserviceaccount\\.com$", coalesce(e, "-")))])
    error_message = "service_accounts values must be null or service account emails (NAME@PROJECT.iam.gserviceaccount.com)."
  }
  validation {
    condition     = length(compact(values(var.service_accounts))) == length(distinct(compact(values(var.service_accounts))))
    error_message = "service_accounts must name a different account for each identity: one account in two roles could do both jobs (e.g. the runtime invoking on_check itself)."
  }
}

variable "cmek" {
  type = object({
    # projects/P/locations/L/keyRings/R/cryptoKeys/K for every Pub/Sub topic of the module.
    topics = optional(string)
    # The same form, the default key of the bucket of the functions' source archives. In the
    # bucket's location, region: Cloud Storage wants the key ring where the data is (checks.tf).
    source_bucket = optional(string)
  })
  description = "Customer-managed encryption keys (optional; null: Google-managed): topics for the module's Pub/Sub topics, source_bucket for the bucket of the functions' source archives (its default key, which must be in region). The module grants nothing on either key: before applying, give roles/cloudkms.cryptoKeyEncrypterDecrypter on the topics key to the Pub/Sub service agent (service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com) and on the bucket key to the Cloud Storage service agent (service-PROJECT_NUMBER@gs-project-accounts.iam.gserviceaccount.com; gcloud storage service-agent --project=PROJECT --authorize-cmek=KEY creates that agent and grants it). Without the grant, creating the topics or the bucket fails."
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for k in [var.cmek.topics, var.cmek.source_bucket] : k == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", coalesce(k, "-")))])
    error_message = "cmek keys must be null or projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "runtime" {
  type        = string
  description = "Python runtime of the functions."
  default     = "python312"

  validation {
    condition     = contains(["python311", "python312"], var.runtime)
    error_message = "runtime must be python311 or python312 (the versions the code is tested on)."
  }
}

variable "ingress_settings" {
  type        = string
  description = "Network ingress of the functions. ALLOW_INTERNAL_ONLY admits the same-project Pub/Sub pushes and Cloud Tasks dispatches that feed them (both target run.app URLs, which Cloud Run counts as internal for these callers) and nothing from the internet. IAM (no public invoker) is the access control either way."
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.ingress_settings)
    error_message = "ingress_settings must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "watch_function" {
  type = object({
    available_memory   = optional(string, "256M")
    timeout_seconds    = optional(number, 60)
    min_instance_count = optional(number, 0)
    max_instance_count = optional(number, 10)
  })
  description = "Sizing of on_watch_request. Its timeout also sets the push subscription's ack deadline."
  default     = {}

  validation {
    # The push subscription's ack deadline is capped at 600 s, so the function must answer sooner.
    condition     = var.watch_function.timeout_seconds >= 10 && var.watch_function.timeout_seconds <= 540
    error_message = "watch_function.timeout_seconds must be between 10 and 540."
  }
  validation {
    condition     = can(regex("^[0-9]+(M|Mi|G|Gi)$", var.watch_function.available_memory))
    error_message = "watch_function.available_memory must look like 256M or 1Gi."
  }
  validation {
    condition     = var.watch_function.min_instance_count >= 0 && var.watch_function.max_instance_count >= 1 && var.watch_function.min_instance_count <= var.watch_function.max_instance_count
    error_message = "watch_function needs 0 <= min_instance_count <= max_instance_count and max_instance_count >= 1."
  }
}

variable "check_function" {
  type = object({
    available_memory   = optional(string, "256M")
    timeout_seconds    = optional(number, 60)
    min_instance_count = optional(number, 0)
    max_instance_count = optional(number, 10)
  })
  description = "Sizing of on_check. Keep max_instance_count near tasks_max_concurrent_dispatches: more instances cannot be used. timeout_seconds is also the re-check tasks' dispatch deadline."
  default     = {}

  validation {
    # It is also the dispatch deadline of the re-check tasks (DISPATCH_DEADLINE), which Cloud
    # Tasks allows between 15 seconds and 30 minutes for HTTP targets.
    condition     = var.check_function.timeout_seconds >= 15 && var.check_function.timeout_seconds <= 1800 && floor(var.check_function.timeout_seconds) == var.check_function.timeout_seconds
    error_message = "check_function.timeout_seconds must be a whole number between 15 and 1800 (the Cloud Tasks dispatch deadline range)."
  }
  validation {
    condition     = can(regex("^[0-9]+(M|Mi|G|Gi)$", var.check_function.available_memory))
    error_message = "check_function.available_memory must look like 256M or 1Gi."
  }
  validation {
    condition     = var.check_function.min_instance_count >= 0 && var.check_function.max_instance_count >= 1 && var.check_function.min_instance_count <= var.check_function.max_instance_count
    error_message = "check_function needs 0 <= min_instance_count <= max_instance_count and max_instance_count >= 1."
  }
}

# --- Configuration contract of the functions (see README, "Configuration") ---

variable "watched_apis" {
  type = map(object({
    # The permission that reads this API's operations (GetOperation), granted to the runtime.
    operations_get_permission = string
    # The permission that lists them (ListOperations), granted to the runtime for the sweep.
    operations_list_permission = optional(string)
    # With discovery on, this API's audit end entries reach opwatch, so its watches poll only
    # as a safety net (EVENT_DRIVEN_APIS). Only for APIs whose methods are in discovery.methods
    # (checks.tf refuses one that has none).
    event_driven = optional(bool, false)
    # The permission that cancels its operations, granted to operators only when
    # operators_may_cancel_operations is true (opwatch cancel --cancel-operation).
    operations_cancel_permission = optional(string)
    # Requests per second this API lets opwatch make: every look is a GET, and all are made by
    # one user, the runtime account. The check queue never dispatches faster than the smallest
    # budget of the watched APIs (checks.tf). null: the per-user quota Google documents, where
    # the module knows one (cloudaicompanion.googleapis.com: 2), else no budget of its own.
    read_budget_per_second = optional(number)
  }))
  description = "The APIs whose operations opwatch may watch, keyed by API host (ALLOWED_APIS): the one place for each API's permissions, whether its ends arrive from audit logs, and its read budget (read_budget_per_second: the check queue never dispatches faster than the smallest one; null: the quota Google documents, 2 per second for cloudaicompanion.googleapis.com, else none). The functions send their ADC token to these hosts, so only Google API hosts are accepted. Each is enabled with the module's APIs unless enable_apis = false (output apis_to_enable)."
  default = {
    "cloudaicompanion.googleapis.com" = {
      operations_get_permission    = "cloudaicompanion.operations.get"
      operations_list_permission   = "cloudaicompanion.operations.list"
      event_driven                 = true
      operations_cancel_permission = "cloudaicompanion.operations.cancel"
      # "Requests per second: 2" for each user in a project (Gemini for Google Cloud, Quotas
      # and limits); whether operation GETs count against it is not documented.
      read_budget_per_second = 2
    }
  }
  nullable = false

  validation {
    condition     = length(var.watched_apis) > 0 && alltrue([for h in keys(var.watched_apis) : can(regex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\\.googleapis\\.com$", h))])
    error_message = "watched_apis must have at least one key, each a host ending in .googleapis.com (no scheme, no path)."
  }
  validation {
    # Read-only operation permissions only: the runtime's role must not grow into a write role.
    condition     = alltrue([for a in values(var.watched_apis) : can(regex("^[a-z][a-zA-Z0-9]*\\.[a-zA-Z]*[oO]perations\\.get$", a.operations_get_permission))])
    error_message = "watched_apis[*].operations_get_permission must be a <service>.<...operations>.get permission."
  }
  validation {
    condition     = alltrue([for a in values(var.watched_apis) : a.operations_list_permission == null || can(regex("^[a-z][a-zA-Z0-9]*\\.[a-zA-Z]*[oO]perations\\.list$", coalesce(a.operations_list_permission, "-")))])
    error_message = "watched_apis[*].operations_list_permission must be null or a <service>.<...operations>.list permission."
  }
  validation {
    condition     = alltrue([for a in values(var.watched_apis) : a.operations_cancel_permission == null || can(regex("^[a-z][a-zA-Z0-9]*\\.[a-zA-Z]*[oO]perations\\.cancel$", coalesce(a.operations_cancel_permission, "-")))])
    error_message = "watched_apis[*].operations_cancel_permission must be null or a <service>.<...operations>.cancel permission."
  }
  validation {
    condition     = alltrue([for a in values(var.watched_apis) : coalesce(a.read_budget_per_second, 1) > 0])
    error_message = "watched_apis[*].read_budget_per_second must be null or a number of requests per second above 0."
  }
}

variable "allowed_notify_topics" {
  type        = map(string)
  description = "Extra topics (projects/P/topics/T) a watch may name as notify_topic (ALLOWED_NOTIFY_TOPICS), keyed by names you choose: the keys, not the topic ids, identify the grants, so topics created in the same apply can be passed. The runtime account gets publisher on each; the results topic is always allowed."
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for t in values(var.allowed_notify_topics) : can(regex("^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/topics/[a-zA-Z][a-zA-Z0-9._~+%-]{2,254}$", t))])
    error_message = "allowed_notify_topics values must be full topic paths: projects/PROJECT/topics/TOPIC."
  }
}

variable "fetch_timeout_seconds" {
  type        = number
  description = "Seconds for one GET of an operation (FETCH_TIMEOUT)."
  default     = 10

  validation {
    condition     = var.fetch_timeout_seconds >= 1 && var.fetch_timeout_seconds <= 60
    error_message = "fetch_timeout_seconds must be between 1 and 60 (and well below the functions' timeouts)."
  }
}

variable "log_level" {
  type        = string
  description = "Log level of the functions (LOG_LEVEL)."
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "discovery" {
  type = object({
    enabled = optional(bool, false)
    # Gemini for Google Cloud audit logging (https://cloud.google.com/gemini/docs/audit-logging)
    # lists these long-running methods: the code-repository-index ones are ADMIN_WRITE (Admin
    # Activity logs, always written); the repository-group and TopicService ones are DATA_WRITE
    # (written only when Data Access audit logs are on for cloudaicompanion.googleapis.com:
    # data_write_audit_logs below).
    methods = optional(list(string), [
      "google.cloud.cloudaicompanion.v1.CodeRepositoryIndexManagementService.CreateCodeRepositoryIndex",
      "google.cloud.cloudaicompanion.v1.CodeRepositoryIndexManagementService.UpdateCodeRepositoryIndex",
      "google.cloud.cloudaicompanion.v1.CodeRepositoryIndexManagementService.DeleteCodeRepositoryIndex",
      "google.cloud.cloudaicompanion.v1.CodeRepositoryIndexManagementService.CreateRepositoryGroup",
      "google.cloud.cloudaicompanion.v1.CodeRepositoryIndexManagementService.UpdateRepositoryGroup",
      "google.cloud.cloudaicompanion.v1.CodeRepositoryIndexManagementService.DeleteRepositoryGroup",
      "google.cloud.cloudaicompanion.v1.TopicService.CreateTopic",
      "google.cloud.cloudaicompanion.v1.TopicService.UpdateTopic",
      "google.cloud.cloudaicompanion.v1.TopicService.DeleteTopic",
    ])
    include_caller = optional(bool, false)
    # Turn on DATA_WRITE Data Access audit logs for cloudaicompanion.googleapis.com, without
    # which the repository-group and TopicService methods write no entry and are never
    # discovered. Off by default: they are billed as Cloud Logging ingestion (README, Discovery).
    data_write_audit_logs = optional(bool, false)
  })
  description = "Discovery (opt-in): watch every operation the listed long-running methods start, whoever started them (Terraform, the console, gcloud), from their audit log entries. methods are full method names (protoPayload.methodName), each of an API that is a key of watched_apis (refused at plan otherwise): the API is read from the method's package (google.cloud.X.v1... or google.X.v1... is X.googleapis.com) unless the method is written API=METHOD, for a service its package does not name (cloudfunctions.googleapis.com=google.cloud.functions.v2.FunctionService.UpdateFunction). include_caller adds the caller's email as a label (personal data: off by default). data_write_audit_logs turns on the DATA_WRITE Data Access audit logs of cloudaicompanion.googleapis.com, which the repository-group and TopicService methods need to be logged at all (billed as Logging ingestion; off by default). Which APIs' watches then poll only as a safety net is watched_apis[*].event_driven; each such API needs a method here (refused at plan otherwise)."
  default     = {}

  validation {
    # Letters, digits, '_' and '.' only: a method name goes into the sink's filter in quotes.
    # Optionally after API= (checks.tf reads it), like sweep.parents.
    condition     = length(var.discovery.methods) > 0 && alltrue([for m in var.discovery.methods : can(regex("^([a-z0-9-]+(\\.[a-z0-9-]+)*\\.googleapis\\.com=)?[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)+$", m))])
    error_message = "discovery.methods must be a non-empty list of full method names like google.cloud.cloudaicompanion.v1.CodeRepositoryIndexManagementService.CreateCodeRepositoryIndex, each optionally after API= (cloudfunctions.googleapis.com=google.cloud.functions.v2.FunctionService.UpdateFunction)."
  }
}

# --- Pub/Sub ---

variable "topic_message_retention_duration" {
  type        = string
  description = "How long the watch-request and results topics keep messages, so a subscriber created or seeked later can replay them."
  default     = "86400s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.topic_message_retention_duration)) && try(tonumber(trimsuffix(var.topic_message_retention_duration, "s")) >= 600 && tonumber(trimsuffix(var.topic_message_retention_duration, "s")) <= 2678400, false)
    error_message = "topic_message_retention_duration must be seconds with an s suffix, between 600s and 2678400s (31 days)."
  }
}

variable "subscription_message_retention_duration" {
  type        = string
  description = "How long the watch push subscription and the dead-letter inspection subscription keep unacknowledged messages."
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.subscription_message_retention_duration)) && try(tonumber(trimsuffix(var.subscription_message_retention_duration, "s")) >= 600 && tonumber(trimsuffix(var.subscription_message_retention_duration, "s")) <= 604800, false)
    error_message = "subscription_message_retention_duration must be seconds with an s suffix, between 600s and 604800s (7 days)."
  }
}

variable "watch_max_delivery_attempts" {
  type        = number
  description = "Deliveries of one watch request before it is moved to the dead-letter topic."
  default     = 5

  validation {
    condition     = var.watch_max_delivery_attempts >= 5 && var.watch_max_delivery_attempts <= 100
    error_message = "watch_max_delivery_attempts must be between 5 and 100 (Pub/Sub limits)."
  }
}

variable "watch_retry_backoff" {
  type = object({
    minimum = optional(string, "10s")
    maximum = optional(string, "600s")
  })
  description = "Exponential backoff between redeliveries of a failed watch request."
  default     = {}

  validation {
    condition = alltrue([
      for d in [var.watch_retry_backoff.minimum, var.watch_retry_backoff.maximum] :
      can(regex("^[0-9]+s$", d)) && try(tonumber(trimsuffix(d, "s")) <= 600, false)
    ]) && try(tonumber(trimsuffix(var.watch_retry_backoff.minimum, "s")) <= tonumber(trimsuffix(var.watch_retry_backoff.maximum, "s")), false)
    error_message = "watch_retry_backoff values must be like 10s, at most 600s, with minimum <= maximum."
  }
}

# --- Cloud Tasks ---

variable "tasks_max_dispatches_per_second" {
  type        = number
  description = "Re-checks per second the queue may start. Every re-check is one GET on the operations API of its watch, all made by one user (the runtime account). null: 5, or the smallest read_budget_per_second of watched_apis if that is lower (2 while cloudaicompanion.googleapis.com is watched). A value above a watched API's read budget is refused at plan: lower it, or raise that budget once the API's quota is higher."
  default     = null

  validation {
    condition     = var.tasks_max_dispatches_per_second == null || (coalesce(var.tasks_max_dispatches_per_second, 1) > 0 && coalesce(var.tasks_max_dispatches_per_second, 1) <= 500)
    error_message = "tasks_max_dispatches_per_second must be null or above 0 and at most 500 (Cloud Tasks' maximum per queue)."
  }
}

variable "tasks_max_concurrent_dispatches" {
  type        = number
  description = "Re-checks in flight at once; bounds parallel GETs on the operations API and the check function's instances."
  default     = 10

  validation {
    condition     = var.tasks_max_concurrent_dispatches >= 1 && var.tasks_max_concurrent_dispatches <= 5000
    error_message = "tasks_max_concurrent_dispatches must be between 1 and 5000."
  }
}

variable "tasks_retry" {
  type = object({
    max_attempts       = optional(number, 10)
    max_retry_duration = optional(string, "3600s")
    min_backoff        = optional(string, "10s")
    max_backoff        = optional(string, "300s")
    max_doublings      = optional(number, 4)
  })
  description = "Retries of a failed re-check task (the function's answer was not 2xx). Scheduled re-checks are new tasks, not retries."
  default     = {}

  validation {
    condition     = var.tasks_retry.max_attempts >= 1 && var.tasks_retry.max_attempts <= 100
    error_message = "tasks_retry.max_attempts must be between 1 and 100 (bounded: a task that never succeeds must stop)."
  }
  validation {
    condition = alltrue([
      for d in [var.tasks_retry.max_retry_duration, var.tasks_retry.min_backoff, var.tasks_retry.max_backoff] :
      can(regex("^[0-9]+(\\.[0-9]+)?s$", d))
    ]) && var.tasks_retry.max_doublings >= 0
    error_message = "tasks_retry durations must be like 10s and max_doublings must not be negative."
  }
}

variable "tasks_logging_sampling_ratio" {
  type        = number
  description = "Fraction of task dispatches logged by Cloud Tasks (0 = none, 1 = all)."
  default     = 0.1

  validation {
    condition     = var.tasks_logging_sampling_ratio >= 0 && var.tasks_logging_sampling_ratio <= 1
    error_message = "tasks_logging_sampling_ratio must be between 0 and 1."
  }
}

# --- Source bucket ---

variable "source_archive_noncurrent_days" {
  type        = number
  description = "Days a replaced (noncurrent) source archive is kept in the versioned bucket for rollback before deletion."
  default     = 30

  validation {
    condition     = var.source_archive_noncurrent_days >= 1 && var.source_archive_noncurrent_days <= 365
    error_message = "source_archive_noncurrent_days must be between 1 and 365."
  }
}

# --- Alerts ---

variable "alert_notification_channels" {
  type        = list(string)
  description = "Monitoring notification channels (projects/P/notificationChannels/ID) told when a watch is abandoned, a watch request is dead-lettered, or too many watches end FAILED or PERMISSION_DENIED. Empty: the alerts still open incidents in Cloud Monitoring, but notify no one."
  default     = []

  validation {
    condition     = alltrue([for c in var.alert_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", c))])
    error_message = "alert_notification_channels entries must be full channel names: projects/PROJECT/notificationChannels/ID."
  }
}

variable "log_metric_wait" {
  type        = string
  description = "How long the alert policies on log-based metrics wait after those metrics are created (seconds, like 600s). Monitoring answers 404 for a metric created \"recently\": \"it could take up to 10 minutes to become available\". Paid once, when the metrics are created or replaced. 0s: no wait (a first apply may then fail on the policies, and the next apply creates them)."
  default     = "600s"
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]+s$", var.log_metric_wait)) && try(tonumber(trimsuffix(var.log_metric_wait, "s")) <= 1800, false)
    error_message = "log_metric_wait must be seconds with an s suffix, at most 1800s."
  }
}

variable "failed_outcomes_alert" {
  type = object({
    max_ratio = optional(number, 0.2)
    window    = optional(string, "3600s")
  })
  description = "Alert when more than max_ratio (0-1) of the watches finished within window (like 3600s) ended FAILED or PERMISSION_DENIED."
  default     = {}

  validation {
    condition     = var.failed_outcomes_alert.max_ratio > 0 && var.failed_outcomes_alert.max_ratio < 1
    error_message = "failed_outcomes_alert.max_ratio must be a fraction above 0 and below 1 (0.2 = 20%)."
  }
  validation {
    # The window is the conditions' alignment period: at least a minute; a day at most keeps
    # the alert timely (the Monitoring API's own upper bound was not checked offline).
    condition     = can(regex("^[0-9]+s$", var.failed_outcomes_alert.window)) && try(tonumber(trimsuffix(var.failed_outcomes_alert.window, "s")) >= 60 && tonumber(trimsuffix(var.failed_outcomes_alert.window, "s")) <= 86400, false)
    error_message = "failed_outcomes_alert.window must be seconds with an s suffix, between 60s and 86400s (a day)."
  }
}

# --- Operators ---

variable "operators" {
  type        = map(string)
  description = "IAM members (user:, group:, serviceAccount:) who may list, inspect and cancel watches with the opwatch CLI, or publish cancel requests, keyed by names you choose (so a service account created in the same apply can be passed), e.g. { oncall = \"group:oncall@example.com\" }. Empty: no operator role is created."
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for m in values(var.operators) : can(regex("^(user|group|serviceAccount|domain):.+$", m))])
    error_message = "operators values must be IAM members like user:alice@example.com or group:ops@example.com."
  }
}

variable "operators_may_cancel_operations" {
  type        = bool
  description = "Whether operators may also cancel the watched operations themselves (opwatch cancel --cancel-operation): grants them each watched API's operations_cancel_permission on the project. false: operators cancel watches, never operations."
  default     = false
  nullable    = false
}

# --- Sweep ---

variable "sweep" {
  type = object({
    # projects/P/locations/L, or API=projects/P/locations/L for an API other than Gemini's.
    parents  = optional(list(string), [])
    schedule = optional(string, "*/10 * * * *")
  })
  description = "Sweep (opt-in): every schedule (cron, UTC), list the operations of each parent (projects/P/locations/L, optionally prefixed API=; the API must be a key of watched_apis, with its operations_list_permission) and watch each pending one that no discovered watch covers: operations whose audit entry was lost, methods that write none, operations older than discovery. Empty parents: nothing is created."
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for p in var.sweep.parents : can(regex("^([a-z0-9.-]+=)?projects/[a-z0-9-]{1,63}/locations/[a-z0-9-]{1,63}$", p))])
    error_message = "sweep.parents must be projects/PROJECT/locations/LOCATION, optionally prefixed with API= (e.g. cloudaicompanion.googleapis.com=projects/p/locations/global)."
  }
}

# --- Ledger ---

variable "ledger_database" {
  type        = string
  description = "ID of the ledger's Firestore database (Native mode), a named database of its own: never \"(default)\", which other workloads of the project may use. null: \"<name_prefix>-ledger\" (opwatch-ledger), so instances side by side get one each. Stateful: changing it replaces the database and loses every record; the plan refuses unless replace_ledger = true."
  default     = null

  validation {
    # Firestore's database ID rule (Manage databases page): 4-63 of a-z, 0-9 and -, a letter
    # first, a letter or digit last, and not UUID-like. settings.LEDGER_PATTERN reads it so.
    condition     = var.ledger_database == null || (can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", coalesce(var.ledger_database, "-"))) && !can(regex("^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$", coalesce(var.ledger_database, "-"))))
    error_message = "ledger_database must be a Firestore database ID: 4-63 lowercase letters, digits and hyphens, starting with a letter, ending with a letter or digit, not UUID-like (and not \"(default)\"); or null."
  }
}

variable "ledger_location" {
  type        = string
  description = "Firestore location of the ledger database: a region such as us-central1 or a multi-region such as nam5 or eur3 (Firestore's locations page). null: region, next to the functions that write it. Stateful: changing it (or region, while this is null) replaces the database and loses every record; the plan refuses unless replace_ledger = true."
  default     = null

  validation {
    condition     = var.ledger_location == null || can(regex("^([a-z]+-[a-z]+[0-9]+|[a-z]+[0-9]+)$", coalesce(var.ledger_location, "-")))
    error_message = "ledger_location must be a Firestore region (us-central1) or multi-region (nam5, eur3), or null for region."
  }
}

variable "ledger_retention" {
  type        = number
  description = "Whole days a finished watch's ledger record is kept (LEDGER_RETENTION_DAYS): the TTL policy deletes a record by its expire_at, that long after the watch finished (a record never finished: that long after the longest timeout a watch may have, counted from its start). Firestore deletes an expired record typically within 24 hours after expire_at, not at once; until then queries still return it."
  default     = 30
  nullable    = false

  validation {
    condition     = var.ledger_retention == floor(var.ledger_retention) && var.ledger_retention >= 1 && var.ledger_retention <= 3650
    error_message = "ledger_retention must be a whole number of days from 1 to 3650."
  }
}

variable "learning" {
  type = object({
    min_samples  = optional(number, 5)
    warn_overdue = optional(bool, false)
  })
  description = "Learned durations (README, \"Learned durations\"): min_samples finished operations of a kind before its watches are scheduled from what was learned of it (LEARN_MIN_SAMPLES); warn_overdue makes every watch that does not say warn_overdue get one overdue message when its operation runs past its kind's 95th percentile (WARN_OVERDUE)."
  default     = {}
  nullable    = false

  validation {
    condition     = var.learning.min_samples == floor(var.learning.min_samples) && var.learning.min_samples >= 1
    error_message = "learning.min_samples must be a positive whole number."
  }
}

variable "ledger_deletion_protection" {
  type        = bool
  description = "Firestore delete protection on the ledger database: while true nobody can delete it (console, gcloud, terraform destroy fails on it). Set false and apply before a destroy or a replace_ledger change."
  default     = true
  nullable    = false
}

variable "replace_ledger" {
  type        = bool
  description = "Set to true, for one apply, to let a change of ledger_database or ledger_location (or of what they default from, name_prefix and region) replace the ledger database, losing every record (pending watches go on: the queue holds them). Apply ledger_deletion_protection = false first. false: such a change fails the plan (a precondition on the database)."
  default     = false
  nullable    = false
}

# --- Ledger: the Firestore database that indexes and remembers watches ---
#
# One document per watch chain in the collection "watches" (functions/opwatch/ledger.py),
# written by the functions on the side and never waited on: the queue stays the truth of a
# pending watch. A database of its own, in Native mode, so the module never touches the
# project's "(default)" database and instances side by side each get one.
locals {
  ledger_database = coalesce(var.ledger_database, "${var.name_prefix}-ledger")
  ledger_location = coalesce(var.ledger_location, var.region)
  # opwatch.ledger.COLLECTION (tests/infra/test_ledger_infra.py holds the two equal).
  ledger_collection = "watches"
  # The IAM condition of every ledger grant: Firestore databases have no IAM policy of their
  # own, so access to one database is a project-level binding whose condition names it; the
  # resource name is projects/PROJECT_ID/databases/DATABASE_ID, the database's id here
  # (Firestore's Manage databases page, "Configure per-database access permissions").
  ledger_condition = "resource.name == \"${google_firestore_database.ledger.id}\""
}

# What the database was created with, remembered like the queue's (tasks.tf): name and
# location are immutable, so a change replaces the database and loses every record. The
# precondition below refuses it unless replace_ledger is set for that apply.
resource "terraform_data" "ledger_identity" {
  input            = { name = local.ledger_database, location = local.ledger_location }
  triggers_replace = var.replace_ledger ? { name = local.ledger_database, location = local.ledger_location } : null

  lifecycle {
    ignore_changes = [input]
  }
}

# Delete protection (on by default) stops every deletion, whoever asks; deletion_policy DELETE
# lets Terraform delete the database once protection is off. ABANDON (the provider's default)
# would silently leave it behind on destroy, still billed, with its name taken for the next
# apply. Point-in-time recovery stays off: the records are an index of the queue plus a
# history that expires anyway, not worth 7 days of versions.
resource "google_firestore_database" "ledger" {
  project     = var.project_id
  name        = local.ledger_database
  location_id = local.ledger_location
  type        = "FIRESTORE_NATIVE"

  delete_protection_state = var.ledger_deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy         = "DELETE"

  lifecycle {
    precondition {
      condition     = var.replace_ledger || terraform_data.ledger_identity.output == { name = local.ledger_database, location = local.ledger_location }
      error_message = "ledger_database or ledger_location changed (or name_prefix or region, which they default from): this replaces the ledger database and loses every record. To accept that, apply ledger_deletion_protection = false first, then the change with replace_ledger = true; then set both back."
    }
  }

  depends_on = [google_project_service.enabled]
}

# --- Indexes: what FirestoreLedger's queries need (tests/infra/test_ledger_infra.py derives the
# queries from the code and checks each is served; the emulator enforces no index) ---

# pending_of_operation: operation_key == K and state == PENDING (the audit fast path, once per
# end entry). Two equalities could be served by merging the two single-field indexes; one
# composite index keeps it a single index scan.
resource "google_firestore_index" "pending_of_operation" {
  project    = var.project_id
  database   = google_firestore_database.ledger.name
  collection = local.ledger_collection

  fields {
    field_path = "operation_key"
    order      = "ASCENDING"
  }
  fields {
    field_path = "state"
    order      = "ASCENDING"
  }
}

# page with a state: state == S, optionally started >= T, newest first (opwatch list
# --state); its cursor adds __name__ in the same direction, which the index appends itself.
# Without a state, page needs only started's automatic single-field index.
resource "google_firestore_index" "page_by_state" {
  project    = var.project_id
  database   = google_firestore_database.ledger.name
  collection = local.ledger_collection

  fields {
    field_path = "state"
    order      = "ASCENDING"
  }
  fields {
    field_path = "started"
    order      = "DESCENDING"
  }
}

# --- Fields ---

# The TTL policy: a document goes once expire_at (a timestamp) has passed, typically within
# 24 hours after it, not at once (Firestore's TTL page). Nothing queries expire_at, and
# Firestore's indexing best practices advise exempting a TTL field from single-field indexes.
resource "google_firestore_field" "expire_at" {
  project    = var.project_id
  database   = google_firestore_database.ledger.name
  collection = local.ledger_collection
  field      = "expire_at"

  ttl_config {}
  index_config {}
}

# labels is a map of the watch's own keys: indexed, each key would add index entries to every
# write, and nothing queries on labels.
resource "google_firestore_field" "labels" {
  project    = var.project_id
  database   = google_firestore_database.ledger.name
  collection = local.ledger_collection
  field      = "labels"

  index_config {}
}

# --- Access: this database only ---
#
# What the @calls of FirestoreLedger declare (Firestore's "Security for server client
# libraries" page): a write without precondition (Commit) needs entities.create and
# entities.update, a query (RunQuery) and the lookup of a page's cursor entities.get and
# entities.list. roles/datastore.user would add entities.delete and more, which no call makes,
# so the grants are custom roles, bound on the project with a condition on this database.

resource "google_project_iam_custom_role" "ledger_writer" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_ledgerWriter"
  title       = "opwatch ledger writer"
  description = "Write and query watch records in the opwatch ledger database (granted on that database only)."
  permissions = [
    "datastore.entities.create",
    "datastore.entities.update",
    "datastore.entities.get",
    "datastore.entities.list",
  ]

  depends_on = [google_project_service.enabled]
}

resource "google_project_iam_member" "runtime_writes_ledger" {
  project = var.project_id
  role    = google_project_iam_custom_role.ledger_writer.name
  member  = "serviceAccount:${local.runtime_email}"

  condition {
    title       = "${local.ledger_database} only"
    description = "The opwatch ledger database, no other database of the project."
    expression  = local.ledger_condition
  }

  depends_on = [google_project_service.enabled]
}

# opwatch list and status query the ledger; they never write it.
resource "google_project_iam_custom_role" "ledger_reader" {
  count       = local.operators_enabled ? 1 : 0
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_ledgerReader"
  title       = "opwatch ledger reader"
  description = "Query watch records in the opwatch ledger database (granted on that database only)."
  permissions = [
    "datastore.entities.get",
    "datastore.entities.list",
  ]

  depends_on = [google_project_service.enabled]
}

resource "google_project_iam_member" "operators_read_ledger" {
  for_each = var.operators
  project  = var.project_id
  role     = google_project_iam_custom_role.ledger_reader[0].name
  member   = each.value

  condition {
    title       = "${local.ledger_database} only"
    description = "The opwatch ledger database, no other database of the project."
    expression  = local.ledger_condition
  }

  depends_on = [google_project_service.enabled]
}

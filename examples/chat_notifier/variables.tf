variable "project_id" {
  type        = string
  description = "Project of the opwatch deployment whose results topic this subscribes to."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 chars, lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  type        = string
  description = "Region of the function and of its Eventarc trigger."
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a single region such as us-central1."
  }
}

variable "results_topic_id" {
  type        = string
  description = "opwatch's results topic (the results_topic_id output of infra/), projects/P/topics/T."

  validation {
    condition     = can(regex("^projects/[^/]+/topics/[^/]+$", var.results_topic_id))
    error_message = "results_topic_id must be a full topic path: projects/PROJECT/topics/TOPIC."
  }
}

variable "webhook_secret_id" {
  type        = string
  description = "Secret Manager secret (its ID in project_id) whose latest version is the Google Chat incoming-webhook URL. Created outside Terraform so the URL never enters the state."

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.webhook_secret_id))
    error_message = "webhook_secret_id must be a secret ID (letters, digits, - and _), not a path or a URL."
  }
}

variable "name" {
  type        = string
  description = "Name of the function and prefix of its service accounts and bucket."
  default     = "opwatch-chat"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{3,20}[a-z0-9]$", var.name))
    error_message = "name must be 5-22 chars: lowercase letters, digits and hyphens, starting with a letter."
  }
}

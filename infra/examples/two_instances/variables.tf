variable "project_id" {
  type        = string
  description = "Project to deploy both opwatch instances into."
}

variable "region" {
  type        = string
  description = "Region of the functions and the queues."
  default     = "us-central1"
}

variable "instances" {
  type = map(object({
    name_prefix = string
  }))
  description = "One opwatch instance per entry, keyed by a name you choose; name_prefixes must differ."
  default = {
    blue  = { name_prefix = "opwatch-blue" }
    green = { name_prefix = "opwatch-green" }
  }

  validation {
    condition     = length(distinct([for i in values(var.instances) : i.name_prefix])) == length(var.instances)
    error_message = "Each instance needs its own name_prefix: two instances with one prefix would create the same resources."
  }
}

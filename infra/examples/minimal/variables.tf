variable "project_id" {
  type        = string
  description = "Project to deploy opwatch into."
}

variable "region" {
  type        = string
  description = "Region of the functions and the queue."
  default     = "us-central1"
}

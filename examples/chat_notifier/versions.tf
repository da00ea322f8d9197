terraform {
  required_version = ">= 1.5"

  # The same ranges as infra/versions.tf: what tests/infra/test_provider_schema.py checks against.
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50, < 9"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.7, < 3"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

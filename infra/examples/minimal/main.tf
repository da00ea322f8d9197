# Smallest root module that deploys opwatch: a project and a region.
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50, < 7"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

module "opwatch" {
  source = "../.."

  project_id = var.project_id
  region     = var.region
}

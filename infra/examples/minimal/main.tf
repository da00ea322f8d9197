# Smallest root module that deploys opwatch: a project and a region.
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50, < 9"
    }
    # The module creates the Pub/Sub service agent with a google-beta resource (infra/pubsub.tf).
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.50, < 9"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}

module "opwatch" {
  source = "../.."

  project_id = var.project_id
  region     = var.region
}

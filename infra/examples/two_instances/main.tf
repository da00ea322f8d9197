# Two opwatch instances in one project, side by side (say one per team, or blue and green):
# one module block under for_each. Each instance has its own name_prefix, so its resources,
# its bucket and the source archive it builds during plan are its own.
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50, < 9"
    }
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
  source   = "../.."
  for_each = var.instances

  project_id  = var.project_id
  region      = var.region
  name_prefix = each.value.name_prefix
}

terraform {
  # optional() defaults in object types need >= 1.3; 1.5 gives us check blocks and import blocks.
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0, < 8"
    }
    # 2.4 added glob (doublestar) excludes, which the source archive relies on.
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3"
    }
  }
}

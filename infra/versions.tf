terraform {
  # optional() defaults in object types need >= 1.3; 1.5 gives us check blocks and import blocks.
  required_version = ">= 1.5"

  # Each range starts at the release whose schema tests/test_provider_schema.py checks every
  # block against (google and google-beta 6.50.0, archive 2.7.1, time 0.13.1) and stops before
  # the next major version, the only kind of release that may remove an argument. This also
  # keeps out two known problems: google < 5.38 shows a diff on the functions' environment
  # (LOG_EXECUTION_ID) at every plan, and archive < 2.5 ignores glob patterns in excludes (so
  # nothing would be excluded).
  #
  # google-beta is here for one resource, google_project_service_identity (pubsub.tf), which
  # the GA provider does not have (checked in the 6.50.0 and 8.7.0 schemas). A caller that does
  # not configure google-beta gets its default configuration; the resource sets its project.
  # time: time_sleep (monitoring.tf), the wait before alert policies on new log-based metrics.
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50, < 7"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.50, < 7"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.7, < 3"
    }
    time = {
      source  = "hashicorp/time"
      version = ">= 0.13, < 1"
    }
  }
}

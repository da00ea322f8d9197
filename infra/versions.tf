terraform {
  # optional() defaults in object types need >= 1.3; 1.5 gives us check blocks and import blocks.
  required_version = ">= 1.5"

  # tests/infra/test_provider_schema.py checks every block against both ends of each range: google
  # and google-beta 6.50.0 and 8.7.0, archive 2.7.1 and 2.8.1, time 0.13.1 and 0.14.2. A range
  # starts at the oldest's minor version and stops before the major version after the newest,
  # since only a major release may remove an argument; the 7.0 and 8.0 upgrade guides change
  # nothing this module relies on (the test says which two entries touch it). The lower ends
  # also keep out two known problems: google < 5.38 shows a diff on the functions' environment
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
      version = ">= 6.50, < 9"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.50, < 9"
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

terraform {
  # optional() defaults in object types need >= 1.3; 1.5 gives us check blocks and import blocks.
  required_version = ">= 1.5"

  # Each range starts at the release whose schema tests/test_provider_schema.py checks every
  # block against (google 6.50.0, archive 2.7.1) and stops before the next major version, the
  # only kind of release that may remove an argument. This also keeps out two known problems:
  # google < 5.38 shows a diff on the functions' environment (LOG_EXECUTION_ID) at every plan,
  # and archive < 2.5 ignores glob patterns in excludes (so nothing would be excluded).
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50, < 7"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.7, < 3"
    }
  }
}

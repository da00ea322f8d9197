"""Static checks of infra/ and cloudbuild.yaml (marker ``infra``), offline."""

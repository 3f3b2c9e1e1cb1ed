terraform {
  required_version = ">= 1.5.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0.0, < 8.0.0"
    }
  }
  # Partial configuration: bucket and prefix come from `terraform init -backend-config=backend.hcl`
  # so no state location (and no state) lives in git.
  backend "gcs" {}
}

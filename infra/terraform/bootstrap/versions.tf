terraform {
  required_version = ">= 1.5.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0.0, < 8.0.0"
    }
  }
  # Local state on purpose: this root creates the bucket every other root keeps its state in.
  # It holds one bucket, which `terraform import` recovers if the local state is lost.
}

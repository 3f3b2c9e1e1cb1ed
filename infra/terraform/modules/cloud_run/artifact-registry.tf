resource "google_artifact_registry_repository" "default" {
  project       = var.project_id
  location      = var.region
  repository_id = var.artifact_registry.repository_id
  format        = "DOCKER"
  description   = "aeroflow container images (one image for api, ingest and worker)."
  labels        = var.labels

  docker_config {
    immutable_tags = var.artifact_registry.immutable_tags
  }

  # Keep the newest images whatever their age so a rollback always has a target; delete the
  # rest once they are old.
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.artifact_registry.keep_recent
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "${var.artifact_registry.delete_older_than_days * 86400}s"
    }
  }
}

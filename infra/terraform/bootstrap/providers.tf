provider "google" {
  project = var.project_id
}

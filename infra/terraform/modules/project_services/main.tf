# The Google APIs aeroflow needs. Never disabled on destroy: other things in the project may
# depend on them, and disabling an API deletes its resources.
resource "google_project_service" "default" {
  for_each                   = toset(var.services)
  project                    = var.project_id
  service                    = each.key
  disable_on_destroy         = false
  disable_dependent_services = false
}

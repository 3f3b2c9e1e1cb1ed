output "project_id" {
  description = "The project id, available only once every API is enabled: depend on it."
  value       = var.project_id
  depends_on  = [google_project_service.default]
}

output "services" {
  description = "The enabled APIs."
  value       = sort(keys(google_project_service.default))
}

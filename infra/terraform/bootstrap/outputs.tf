output "backend_config" {
  description = "Lines for envs/<env>/backend.hcl (set prefix per environment)."
  value       = "bucket = \"${google_storage_bucket.state.name}\"\nprefix = \"aeroflow/<env>\""
}

output "bucket" {
  description = "Name of the state bucket."
  value       = google_storage_bucket.state.name
}

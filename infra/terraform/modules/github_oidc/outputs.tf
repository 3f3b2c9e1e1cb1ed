output "attribute_condition" {
  description = "The CEL condition every GitHub token must satisfy."
  value       = local._attribute_condition
}

output "deployer_email" {
  description = "Service account GitHub Actions impersonates (google-github-actions/auth service_account)."
  value       = google_service_account.deployer.email
}

output "deployer_member" {
  description = "The deployer in IAM member form."
  value       = google_service_account.deployer.member
}

output "deploy_principal_sets" {
  description = "principalSet members for workflows of each deploy ref (bind the Terraform apply identity to these)."
  value = {
    for ref in var.deploy_refs :
    ref => "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.ref/${ref}"
  }
}

output "pool_name" {
  description = "Full resource name of the workload identity pool."
  value       = google_iam_workload_identity_pool.github.name
}

output "workload_identity_provider" {
  description = "Full provider name for google-github-actions/auth workload_identity_provider."
  value       = google_iam_workload_identity_pool_provider.github.name
}

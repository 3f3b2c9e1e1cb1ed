locals {
  # Every token must come from this repository, from a deploy ref, and (optionally) from the
  # protected environment and the repository id; anything else GitHub signs is refused.
  _attribute_condition = join(" && ", compact([
    "assertion.repository == ${jsonencode(var.github_repository)}",
    "assertion.ref in ${jsonencode(var.deploy_refs)}",
    var.github_environment == null ? "" : "assertion.environment == ${jsonencode(var.github_environment)}",
    var.github_repository_id == null ? "" : "assertion.repository_id == ${jsonencode(var.github_repository_id)}",
  ]))
}

resource "google_iam_workload_identity_pool" "github" {
  project                   = var.project_id
  workload_identity_pool_id = var.pool_id
  display_name              = "GitHub Actions"
  description               = "Keyless credentials for ${var.github_repository} workflows."
}

resource "google_iam_workload_identity_pool_provider" "github" {
  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = var.provider_id
  display_name                       = "GitHub Actions OIDC"
  description                        = "Tokens from ${var.github_repository}, refs ${join(", ", var.deploy_refs)}."
  attribute_condition                = local._attribute_condition
  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.actor"      = "assertion.actor"
    "attribute.ref"        = "assertion.ref"
    "attribute.repository" = "assertion.repository"
  }

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

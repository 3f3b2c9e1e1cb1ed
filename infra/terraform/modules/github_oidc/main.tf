locals {
  # Every token must come from this repository (and, if given, its numeric id) and either from
  # a deploy ref (in the protected environment, if given) or from a plan environment, whose
  # jobs run on pull requests. Which service account a token may then impersonate is decided
  # by that account's own binding (the deployer: deploy refs only).
  _deploy_gate = join(" && ", compact([
    "assertion.ref in ${jsonencode(var.deploy_refs)}",
    var.github_environment == null ? "" : "assertion.environment == ${jsonencode(var.github_environment)}",
  ]))
  _gate = (
    length(var.plan_environments) == 0
    ? local._deploy_gate
    : "(${local._deploy_gate}) || assertion.environment in ${jsonencode(var.plan_environments)}"
  )
  _attribute_condition = join(" && ", compact([
    "assertion.repository == ${jsonencode(var.github_repository)}",
    var.github_repository_id == null ? "" : "assertion.repository_id == ${jsonencode(var.github_repository_id)}",
    "(${local._gate})",
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

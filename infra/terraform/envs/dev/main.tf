locals {
  _labels = merge({ app = "aeroflow", env = "dev" }, var.labels)
}

module "project_services" {
  source     = "../../modules/project_services"
  project_id = var.project_id
}

module "bigquery" {
  source           = "../../modules/bigquery"
  project_id       = module.project_services.project_id
  location         = var.bigquery_location
  labels           = local._labels
  raw_events_table = var.bigquery_subscription
}

module "cloud_run" {
  source                 = "../../modules/cloud_run"
  project_id             = module.project_services.project_id
  region                 = var.region
  image                  = var.image
  labels                 = local._labels
  worker_service_account = var.worker
  bigquery = {
    dataset_id = module.bigquery.dataset_id
    location   = module.bigquery.location
  }
  api = {
    access        = var.api_access
    invokers      = var.api_invokers
    min_instances = 0
    max_instances = 3
    env           = { AEROFLOW_LOG_LEVEL = "DEBUG" }
  }
  ingest = {
    min_instances = 0
    max_instances = 3
  }
}

module "pubsub" {
  source     = "../../modules/pubsub"
  project_id = module.project_services.project_id
  labels     = local._labels
  schema = {
    definition = file("${path.module}/../../schemas/pubsub/flight_event.avsc")
    encoding   = "JSON"
  }
  push_subscription = {
    endpoint              = module.cloud_run.push_endpoint
    audience              = module.cloud_run.push_audience
    service_account_email = module.cloud_run.service_accounts.push
  }
  pull_subscription = var.worker ? {
    subscribers = { worker = "serviceAccount:${module.cloud_run.service_accounts.worker}" }
  } : null
  bigquery_subscription = var.bigquery_subscription ? {
    dataset_id = module.bigquery.dataset_id
    table      = module.bigquery.raw_events_table
  } : null
  publishers = var.deployer_can_publish ? { deployer = module.github_oidc.deployer_member } : {}
}

module "github_oidc" {
  source               = "../../modules/github_oidc"
  project_id           = module.project_services.project_id
  github_repository    = var.github_repository
  github_repository_id = var.github_repository_id
  deploy_refs          = ["refs/heads/main"]
  plan_environments    = var.plan_environments
  artifact_registry    = module.cloud_run.repository
  cloud_run_services   = module.cloud_run.services
  runtime_service_accounts = {
    for k, id in module.cloud_run.runtime_service_account_ids : k => id
  }
}

module "monitoring" {
  source      = "../../modules/monitoring"
  project_id  = module.project_services.project_id
  name_prefix = "aeroflow-dev"
  labels      = local._labels
  api_service = {
    name     = module.cloud_run.api_service_name
    location = var.region
    url      = module.cloud_run.api_url
  }
  cloud_run_services = {
    api    = { name = module.cloud_run.api_service_name, location = var.region, max_instances = 3 }
    ingest = { name = module.cloud_run.ingest_service_name, location = var.region, max_instances = 3 }
  }
  pubsub = {
    subscriptions = concat(
      [module.pubsub.push_subscription],
      var.worker ? [basename(module.pubsub.pull_subscription)] : [],
    )
  }
  notification_channels = var.notification_channels
  runbook_base_url      = "https://github.com/${var.github_repository}/blob/main/docs/runbooks.md"
  uptime_check          = { oidc = var.api_access == "iam" }
}

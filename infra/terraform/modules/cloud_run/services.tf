# Two services from one image, chosen by command. CD rolls new images with
# `gcloud run deploy --image`; lifecycle.ignore_changes keeps Terraform from reverting them
# (the image, the revision name, traffic splits, and the client stamps gcloud adds).

resource "google_cloud_run_v2_service" "api" {
  project             = var.project_id
  location            = var.region
  name                = "${var.name_prefix}-api"
  description         = "aeroflow read API (GET /v1/flights, /v1/stats/...)."
  ingress             = "INGRESS_TRAFFIC_ALL"
  labels              = var.labels
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.api.email
    timeout                          = var.api.timeout
    max_instance_request_concurrency = var.api.concurrency
    labels                           = var.labels

    scaling {
      min_instance_count = var.api.min_instances
      max_instance_count = var.api.max_instances
    }

    containers {
      name  = "aeroflow"
      image = var.image
      # The server binds 0.0.0.0:$PORT; Cloud Run sets PORT from container_port.
      args = ["api", "--host", "0.0.0.0"]

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.api.cpu
          memory = var.api.memory
        }
        cpu_idle          = var.api.cpu_idle
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local._api_env
        content {
          name  = env.key
          value = env.value
        }
      }
      env {
        name = "AEROFLOW_CURSOR_SECRET"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.cursor.secret_id
            version = "latest"
          }
        }
      }
      env {
        name = "AEROFLOW_API_KEYS"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.api_keys.secret_id
            version = "latest"
          }
        }
      }

      # Ready only once storage answers; give BigQuery up to two minutes on a cold start.
      startup_probe {
        period_seconds    = 5
        timeout_seconds   = 3
        failure_threshold = 24
        http_get {
          path = "/readyz"
        }
      }
      liveness_probe {
        period_seconds    = 15
        timeout_seconds   = 3
        failure_threshold = 3
        http_get {
          path = "/healthz"
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [
      client,
      client_version,
      template[0].annotations["run.googleapis.com/operation-id"],
      template[0].containers[0].image,
      template[0].revision,
      traffic,
    ]
  }

  # The first revision starts only if it can read its secrets and its dataset.
  depends_on = [
    google_bigquery_dataset_iam_member.api_viewer,
    google_secret_manager_secret_iam_member.api_api_keys,
    google_secret_manager_secret_iam_member.api_cursor,
  ]
}

resource "google_cloud_run_v2_service" "ingest" {
  project             = var.project_id
  location            = var.region
  name                = "${var.name_prefix}-ingest"
  description         = "aeroflow Pub/Sub push endpoint (POST /pubsub/push)."
  ingress             = var.ingest.ingress
  labels              = var.labels
  deletion_protection = var.deletion_protection
  custom_audiences    = [local._push_audience]

  template {
    service_account                  = google_service_account.ingest.email
    timeout                          = var.ingest.timeout
    max_instance_request_concurrency = var.ingest.concurrency
    labels                           = var.labels

    scaling {
      min_instance_count = var.ingest.min_instances
      max_instance_count = var.ingest.max_instances
    }

    containers {
      name  = "aeroflow"
      image = var.image
      args  = ["ingest", "--host", "0.0.0.0"]

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.ingest.cpu
          memory = var.ingest.memory
        }
        cpu_idle          = var.ingest.cpu_idle
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local._ingest_env
        content {
          name  = env.key
          value = env.value
        }
      }
      # Production settings refuse to start without a cursor secret, whatever the role.
      env {
        name = "AEROFLOW_CURSOR_SECRET"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.cursor.secret_id
            version = "latest"
          }
        }
      }

      startup_probe {
        period_seconds    = 5
        timeout_seconds   = 3
        failure_threshold = 24
        http_get {
          path = "/readyz"
        }
      }
      liveness_probe {
        period_seconds    = 15
        timeout_seconds   = 3
        failure_threshold = 3
        http_get {
          path = "/healthz"
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [
      client,
      client_version,
      template[0].annotations["run.googleapis.com/operation-id"],
      template[0].containers[0].image,
      template[0].revision,
      traffic,
    ]
  }

  depends_on = [
    google_bigquery_dataset_iam_member.ingest_editor,
    google_secret_manager_secret_iam_member.ingest_cursor,
  ]
}

#!/usr/bin/env bash
# Run tests/e2e against a deployed aeroflow. deploy.yml sets AEROFLOW_E2E_BASE_URL,
# AEROFLOW_E2E_PUBLISH and, for an IAM-only API, AEROFLOW_E2E_BEARER_TOKEN. With
# E2E_API_KEY_SECRET set, the API key is read from Secret Manager here, masked in the log, and
# handed to the test through the environment only.
set -euo pipefail

if [ -n "${E2E_API_KEY_SECRET:-}" ]; then
  key="$(gcloud secrets versions access latest --secret "${E2E_API_KEY_SECRET}" \
    --project "${GCP_PROJECT_ID:?}")"
  echo "::add-mask::${key}"
  export AEROFLOW_E2E_API_KEY="${key}"
fi

exec .venv/bin/pytest tests/e2e -p no:cacheprovider

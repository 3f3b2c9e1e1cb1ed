variable "bucket_name" {
  description = "Globally unique name of the Terraform state bucket."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "A bucket name is 3-63 lowercase letters, digits, dots, dashes or underscores."
  }
}

variable "labels" {
  description = "Labels on the bucket."
  type        = map(string)
  default     = { app = "aeroflow", purpose = "terraform-state" }
}

variable "location" {
  description = "Bucket location (region or multi-region)."
  type        = string
  default     = "EU"
}

variable "noncurrent_versions_kept" {
  description = "Old versions of each state file kept for recovery."
  type        = number
  default     = 20
  validation {
    condition     = var.noncurrent_versions_kept >= 1
    error_message = "Keep at least one old version."
  }
}

variable "project_id" {
  description = "Project that owns the state bucket (often a separate admin project)."
  type        = string
}

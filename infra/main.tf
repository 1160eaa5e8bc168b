provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(var.tags, { Application = var.name_prefix })
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # Without an external identity provider, the module creates a Cognito user pool.
  create_cognito = var.jwt_issuer == "" && length(var.jwt_audience) == 0

  jwt_issuer   = local.create_cognito ? "https://cognito-idp.${var.aws_region}.amazonaws.com/${aws_cognito_user_pool.this[0].id}" : var.jwt_issuer
  jwt_audience = local.create_cognito ? [aws_cognito_user_pool_client.this[0].id] : var.jwt_audience

  # Operator-set provider base URLs, as the functions read them.
  provider_url_env = { for provider, url in var.provider_url_overrides : "LLM_PROVIDER_URL_${upper(provider)}" => url }

  # RUST_LOG only when the operator asks for per-target directives: when set it, not
  # the function's application log level, is what the functions filter with.
  log_filter_env = var.log_filter == "" ? {} : { RUST_LOG = var.log_filter }
}

# ---------------------------------------------------------------------------------------
# Cognito user pool (only when no external issuer/audience is given)
# ---------------------------------------------------------------------------------------

resource "aws_cognito_user_pool" "this" {
  count = local.create_cognito ? 1 : 0

  name                = "${var.name_prefix}-users"
  deletion_protection = var.deletion_protection ? "ACTIVE" : "INACTIVE"
  mfa_configuration   = "OPTIONAL"

  software_token_mfa_configuration {
    enabled = true
  }

  admin_create_user_config {
    allow_admin_create_user_only = true
  }

  password_policy {
    minimum_length                   = 12
    require_lowercase                = true
    require_uppercase                = true
    require_numbers                  = true
    require_symbols                  = false
    temporary_password_validity_days = 3
  }

  account_recovery_setting {
    recovery_mechanism {
      name     = "admin_only"
      priority = 1
    }
  }
}

resource "aws_cognito_user_pool_client" "this" {
  count = local.create_cognito ? 1 : 0

  name         = "${var.name_prefix}-client"
  user_pool_id = aws_cognito_user_pool.this[0].id

  generate_secret               = false
  prevent_user_existence_errors = "ENABLED"
  enable_token_revocation       = true
  explicit_auth_flows = [
    "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
  ]

  id_token_validity      = 60
  access_token_validity  = 60
  refresh_token_validity = 30
  token_validity_units {
    id_token      = "minutes"
    access_token  = "minutes"
    refresh_token = "days"
  }
}

resource "aws_cognito_user_group" "admin" {
  count = local.create_cognito ? 1 : 0

  name         = var.admin_group
  user_pool_id = aws_cognito_user_pool.this[0].id
  description  = "Administrators of the LLM gateway (model registry, budgets, audit, other users' settings)."
}

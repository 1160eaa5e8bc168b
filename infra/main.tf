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

  # The pool's custom attribute behind the tenant claim: Cognito puts a custom attribute
  # <name> into ID tokens as the claim custom:<name>.
  tenant_attribute = trimprefix(var.tenant_claim, "custom:")

  # What the app client may write of a user's own attributes (UpdateUserAttributes with
  # the user's access token): profile attributes, never the tenant, so that only
  # operators (AdminUpdateUserAttributes, IAM) place a user in a tenant. Named, not
  # empty: the provider does not send an empty list, and a client without
  # WriteAttributes may write every mutable attribute, the custom ones included.
  client_write_attributes = ["family_name", "given_name", "locale", "name", "zoneinfo"]
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

  # The tenant a user belongs to (ID tokens: custom:tenant). Mutable, so an operator can
  # move a user; writable by admins only (client_write_attributes leaves it out). The
  # length bounds are the gateway's for a tenant id (a longer value would give the
  # caller no tenant). Cognito adds a custom attribute to an existing pool in place but
  # can never change or remove one.
  schema {
    name                     = local.tenant_attribute
    attribute_data_type      = "String"
    mutable                  = true
    required                 = false
    developer_only_attribute = false

    string_attribute_constraints {
      min_length = 1
      max_length = 128
    }
  }

  lifecycle {
    precondition {
      condition     = startswith(var.tenant_claim, "custom:") && length(local.tenant_attribute) > 0
      error_message = "With the module's Cognito pool, tenant_claim must be custom:<attribute> (the pool's custom attribute of that name is created)."
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

  # Users may change their profile attributes but never their tenant; tokens of this
  # client carry the tenant (read_attributes) for the gateway to read.
  write_attributes = local.client_write_attributes
  read_attributes  = concat(local.client_write_attributes, ["custom:${local.tenant_attribute}"])

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

# Members of this group who have a tenant (custom:tenant) administer that tenant: its
# keys, preferences and budget, and its usage reports. Members without a tenant get
# nothing from it.
resource "aws_cognito_user_group" "tenant_admin" {
  count = local.create_cognito ? 1 : 0

  name         = var.tenant_admin_group
  user_pool_id = aws_cognito_user_pool.this[0].id
  description  = "Tenant administrators of the LLM gateway: read and write their own tenant's LLM settings and read its usage (the tenant is the user's custom:tenant attribute)."
}

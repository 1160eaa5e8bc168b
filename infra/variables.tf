# ---------------------------------------------------------------------------------------
# General
# ---------------------------------------------------------------------------------------

variable "name_prefix" {
  description = "Prefix for every resource name (tables, function, API, roles, KMS alias)."
  type        = string
  default     = "llm-gateway"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "aws_region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
}

variable "tags" {
  description = "Tags added to every resource (through the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "deletion_protection" {
  description = "Protect the DynamoDB tables and the Cognito user pool (when created) from deletion. Set to false before `terraform destroy`."
  type        = bool
  default     = true
}

variable "kms_deletion_window_days" {
  description = "Waiting period, in days, before the customer managed KMS key is deleted after `terraform destroy`."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

# ---------------------------------------------------------------------------------------
# Lambda functions
# ---------------------------------------------------------------------------------------

variable "lambda_architecture" {
  description = "Instruction set of the Lambda functions; must match the build (`cargo lambda build --arm64` or x86_64)."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "settings_zip_path" {
  description = "Path, relative to this directory, of the llm-settings release zip built by `make build`."
  type        = string
  default     = "../target/lambda/llm-settings/bootstrap.zip"
}

variable "settings_reserved_concurrency" {
  description = "Reserved concurrent executions of llm-settings: a ceiling that protects the account's other functions and the tables. -1 removes the reservation (needed in accounts whose concurrency quota is still 10)."
  type        = number
  default     = 50

  validation {
    condition     = var.settings_reserved_concurrency == -1 || var.settings_reserved_concurrency >= 1
    error_message = "settings_reserved_concurrency must be -1 (unreserved) or at least 1."
  }
}

variable "generate_zip_path" {
  description = "Path, relative to this directory, of the generate release zip (`cargo lambda build --release --output-format zip -p generate`)."
  type        = string
  default     = "../target/lambda/generate/bootstrap.zip"
}

variable "generate_reserved_concurrency" {
  description = "Reserved concurrent executions of generate: a ceiling on parallel provider calls and on the usage table's write rate. -1 removes the reservation (needed in accounts whose concurrency quota is still 10)."
  type        = number
  default     = 100

  validation {
    condition     = var.generate_reserved_concurrency == -1 || var.generate_reserved_concurrency >= 1
    error_message = "generate_reserved_concurrency must be -1 (unreserved) or at least 1."
  }
}

variable "generate_stream_reserved_concurrency" {
  description = "With streaming_api: reserved concurrent executions of generate-stream, the generate function behind the streaming REST API (a stream holds its execution for as long as it runs). -1 removes the reservation."
  type        = number
  default     = 50

  validation {
    condition     = var.generate_stream_reserved_concurrency == -1 || var.generate_stream_reserved_concurrency >= 1
    error_message = "generate_stream_reserved_concurrency must be -1 (unreserved) or at least 1."
  }
}

variable "usage_zip_path" {
  description = "Path, relative to this directory, of the llm-usage release zip (`cargo lambda build --release --output-format zip -p llm-usage`)."
  type        = string
  default     = "../target/lambda/llm-usage/bootstrap.zip"
}

variable "usage_reserved_concurrency" {
  description = "Reserved concurrent executions of llm-usage (read-only reports): a ceiling on the usage table's read rate. -1 removes the reservation (needed in accounts whose concurrency quota is still 10)."
  type        = number
  default     = 20

  validation {
    condition     = var.usage_reserved_concurrency == -1 || var.usage_reserved_concurrency >= 1
    error_message = "usage_reserved_concurrency must be -1 (unreserved) or at least 1."
  }
}

variable "log_level" {
  description = "Application log level of the functions (Lambda's logging controls): trace, debug, info, warn or error. The AWS SDK, HTTP and TLS crates never log below info, whatever the level."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"], upper(var.log_level))
    error_message = "log_level must be trace, debug, info, warn or error; per-target directives go in log_filter."
  }
}

variable "log_filter" {
  description = "Optional tracing filter with per-target directives (e.g. \"info,shared::generate=debug\"), passed as RUST_LOG. When set, it replaces log_level inside the functions; Lambda still drops lines below log_level."
  type        = string
  default     = ""
}

variable "log_retention_days" {
  description = "Retention of the functions' and the API's CloudWatch log groups, in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "provider_url_overrides" {
  description = "Operator-set base URLs per provider, e.g. { ollama = \"https://ollama.internal:11434\" }. Each becomes LLM_PROVIDER_URL_<PROVIDER> in the functions' environment. Users can never set these."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.provider_url_overrides : can(regex("^[a-z][a-z0-9_]*$", k)) && can(regex("^https?://", v))])
    error_message = "provider_url_overrides keys must be provider names (lower-case letters, digits, '_') and values http(s) URLs."
  }
}

# ---------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------

variable "jwt_issuer" {
  description = "Issuer URL of an existing OIDC identity provider for the API's JWT authorizer. Leave empty (with jwt_audience empty) to create a Cognito user pool instead."
  type        = string
  default     = ""
}

variable "jwt_audience" {
  description = "Accepted audiences (client ids) of the JWT authorizer for an existing identity provider. Leave empty (with jwt_issuer empty) to create a Cognito user pool instead."
  type        = list(string)
  default     = []
}

variable "admin_group_claim" {
  description = "JWT claim that lists the caller's groups."
  type        = string
  default     = "cognito:groups"
}

variable "admin_group" {
  description = "Group (inside admin_group_claim) whose members are admins. Also the name of the Cognito group created with the pool."
  type        = string
  default     = "llm-admin"
}

variable "tenant_claim" {
  description = "JWT claim naming the one tenant a caller belongs to (a Cognito custom attribute is custom:<name>). A value that is not a valid id gives the caller no tenant."
  type        = string
  default     = "custom:tenant"

  validation {
    condition     = length(var.tenant_claim) > 0
    error_message = "tenant_claim must not be empty."
  }
}

variable "tenant_admin_group" {
  description = "Group (inside admin_group_claim) whose members, when they have a tenant, are that tenant's admins."
  type        = string
  default     = "llm-tenant-admin"

  validation {
    condition     = length(var.tenant_admin_group) > 0 && var.tenant_admin_group != var.admin_group
    error_message = "tenant_admin_group must be set and differ from admin_group."
  }
}

# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------

variable "secret_prefix" {
  description = "Prefix of the Secrets Manager names holding users' and tenants' API keys: <prefix>users/<userId>/llm/<provider> and <prefix>tenants/<tenantId>/llm/<provider>. Empty, or ending in '/'."
  type        = string
  default     = "llm-gateway/"

  validation {
    condition     = var.secret_prefix == "" || can(regex("^[A-Za-z0-9/_+=.@-]*/$", var.secret_prefix))
    error_message = "secret_prefix must be empty or end with '/' and use only characters Secrets Manager allows in names."
  }
}

variable "operator_secret_prefix" {
  description = "Prefix every Secrets Manager name of an operator credential must start with: a registry entry's auth_meta.api_key_secret names one (e.g. operator/llm/openai), and generate may read only names under this prefix. Non-empty, ending in '/', and apart from secret_prefix's users/, tenants/ and service/ names (checked in iam.tf)."
  type        = string
  default     = "operator/llm/"

  validation {
    condition     = can(regex("^[A-Za-z0-9/_+=.@-]+/$", var.operator_secret_prefix))
    error_message = "operator_secret_prefix must be non-empty, end with '/' and use only characters Secrets Manager allows in names (an empty prefix would let generate read every secret of the account)."
  }
}

variable "secret_recovery_window_days" {
  description = "Recovery window when a user deletes an API key: 7-30 days, or 0 to delete the secret at once (force delete)."
  type        = number
  default     = 7

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 (force delete) or between 7 and 30."
  }
}

variable "usage_retention_days" {
  description = "Days a usage entry is kept before DynamoDB TTL removes it (the usage writer sets the `ttl` attribute from this)."
  type        = number
  default     = 90

  validation {
    condition     = var.usage_retention_days >= 1
    error_message = "usage_retention_days must be at least 1."
  }
}

variable "settings_cache_seconds" {
  description = "How old a function's view of data other instances write may be, in seconds: generate's view of a user's settings (preferences, key versions, budget limit), of the month's spend that budget alerts compare against, of the model registry and of admin limits; llm-settings' view of the registry; llm-usage's view of admin limits and of the registry (insights). A change applies everywhere within this; reservations never use it (each is a conditional write). 0 reads them on every request (more DynamoDB round trips)."
  type        = number
  default     = 5

  validation {
    condition     = var.settings_cache_seconds >= 0 && var.settings_cache_seconds <= 60
    error_message = "settings_cache_seconds must be between 0 and 60."
  }
}

# ---------------------------------------------------------------------------------------
# API Gateway and alarms
# ---------------------------------------------------------------------------------------

variable "api_throttling_burst_limit" {
  description = "Throttling burst limit of every route: the HTTP API stage's default route settings and the streaming REST API stage's method settings."
  type        = number
  default     = 100
}

variable "api_throttling_rate_limit" {
  description = "Throttling steady-state rate limit (requests per second) of every route: the HTTP API stage's default route settings and the streaming REST API stage's method settings."
  type        = number
  default     = 50
}

variable "streaming_api" {
  description = "Also serve the generate function's routes (generate, /v1/chat/completions, /v1/messages, /v1/messages/count_tokens, /v1/embeddings, /v1/models) from a REST API that streams Lambda responses (streaming.tf, the generate_endpoint output), through generate-stream, the same binary in streaming mode: there \"stream\": true answers arrive token by token and may run up to stream_max_seconds. The HTTP API keeps them too, buffered. The module's REST API authorizer is its Cognito user pool: set false with jwt_issuer/jwt_audience."
  type        = bool
  default     = true
}

variable "stream_max_seconds" {
  description = "With streaming_api: how long a streamed generation may run from the request's start (LLM_STREAM_MAX_SECS). The REST integration's timeout is 5 s above it and generate-stream's 10 s above it (time to record the usage after the stream ends), within API Gateway's 900 s and Lambda's 900 s."
  type        = number
  default     = 300

  validation {
    condition     = var.stream_max_seconds >= 30 && var.stream_max_seconds <= 885 && floor(var.stream_max_seconds) == var.stream_max_seconds
    error_message = "stream_max_seconds must be a whole number of seconds from 30 to 885."
  }
}

variable "manage_api_gateway_account" {
  description = "With streaming_api: set the region's API Gateway account CloudWatch role (aws_api_gateway_account, one per account and region), which REST API access and execution logs need. Set false when the account already has one (another stack manages it)."
  type        = bool
  default     = true
}

variable "alarm_sns_topic_arn" {
  description = "SNS topic notified by the CloudWatch alarms (Lambda errors and throttles, API 5xx). null: alarms without actions."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------
# Budget alerts
# ---------------------------------------------------------------------------------------

variable "budget_alert_email" {
  description = "Optional e-mail address subscribed to the budget alert topic (the address must confirm the subscription). Null: no subscription; subscribe other endpoints to the `budget_alert_topic_arn` output."
  type        = string
  default     = null

  validation {
    condition     = var.budget_alert_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.budget_alert_email))
    error_message = "budget_alert_email must be an e-mail address, or null."
  }
}

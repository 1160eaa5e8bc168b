# The Lambda functions, one entry each. Adding a function means: an entry
# here, its own permission document in iam.tf (data.aws_iam_policy_document.<function>,
# listed in local.function_policies), and its routes in apigw.tf. The role, log group,
# alarms, API integration and invoke permission follow from the entry.
locals {
  lambda_functions = merge({
    "llm-settings" = {
      zip_path             = var.settings_zip_path
      memory_size          = 128
      timeout              = 10
      reserved_concurrency = var.settings_reserved_concurrency
      environment = merge(
        {
          SETTINGS_TABLE = aws_dynamodb_table.settings.name
          REGISTRY_TABLE = aws_dynamodb_table.registry.name
          AUDIT_TABLE    = aws_dynamodb_table.audit.name
          # How soon a registry or limit change made by another instance shows here.
          LLM_SETTINGS_CACHE_SECS = tostring(var.settings_cache_seconds)
          SECRET_PREFIX           = var.secret_prefix
          SECRETS_KMS_KEY_ID      = aws_kms_key.this.arn
          SECRET_RECOVERY_DAYS    = tostring(var.secret_recovery_window_days)
          ADMIN_GROUP_CLAIM       = var.admin_group_claim
          ADMIN_GROUP             = var.admin_group
          TENANT_CLAIM            = var.tenant_claim
          TENANT_ADMIN_GROUP      = var.tenant_admin_group
          # Registry writes refuse an auth_meta.api_key_secret outside this prefix.
          OPERATOR_SECRET_PREFIX = var.operator_secret_prefix
          # The connection test's upstream call must end (as a "timeout" result) before
          # the function's own 10 s timeout kills it.
          LLM_PROVIDER_TIMEOUT_SECS = "8"
        },
        local.provider_url_env,
        local.log_filter_env,
      )
    }
    # Generation, the OpenAI- and Anthropic-compatible routes, usage, budgets and their
    # alerts, behind the HTTP API. The engine answers every request, its usage entry
    # written, within LLM_REQUEST_DEADLINE_SECS (28 s, under the HTTP API's 30 s
    # integration limit); the function's timeout sits 2 s above it, so the Lambda is
    # never killed mid-request.
    "generate" = {
      zip_path             = var.generate_zip_path
      memory_size          = 256
      timeout              = 30
      reserved_concurrency = var.generate_reserved_concurrency
      environment          = local.generate_environment
    }
    # Usage reports (entries, summary, daily trend, budget, export, insights), the admin usage
    # summary, the audit log and provider health. Read-only: its role has no write
    # action on any table (iam.tf). The page-token key is read once per cold start from
    # the secret in secrets.tf.
    "llm-usage" = {
      zip_path             = var.usage_zip_path
      memory_size          = 128
      timeout              = 15
      reserved_concurrency = var.usage_reserved_concurrency
      environment = merge(
        {
          SETTINGS_TABLE = aws_dynamodb_table.settings.name
          USAGE_TABLE    = aws_dynamodb_table.usage.name
          CACHE_TABLE    = aws_dynamodb_table.cache.name
          AUDIT_TABLE    = aws_dynamodb_table.audit.name
          # Read only: the models /insights may suggest instead of the ones used.
          REGISTRY_TABLE = aws_dynamodb_table.registry.name
          # How soon an admin's new limits show in /budget (and registry changes in
          # /insights).
          LLM_SETTINGS_CACHE_SECS    = tostring(var.settings_cache_seconds)
          USAGE_TOKEN_KEY_SECRET_ARN = aws_secretsmanager_secret.usage_token_key.arn
          ADMIN_GROUP_CLAIM          = var.admin_group_claim
          ADMIN_GROUP                = var.admin_group
          TENANT_CLAIM               = var.tenant_claim
          TENANT_ADMIN_GROUP         = var.tenant_admin_group
        },
        local.log_filter_env,
      )
    }
  }, local.generate_stream_function)

  generate_environment = merge(
    {
      SETTINGS_TABLE            = aws_dynamodb_table.settings.name
      REGISTRY_TABLE            = aws_dynamodb_table.registry.name
      USAGE_TABLE               = aws_dynamodb_table.usage.name
      CACHE_TABLE               = aws_dynamodb_table.cache.name
      AUDIT_TABLE               = aws_dynamodb_table.audit.name
      SECRET_PREFIX             = var.secret_prefix
      SECRETS_KMS_KEY_ID        = aws_kms_key.this.arn
      SECRET_RECOVERY_DAYS      = tostring(var.secret_recovery_window_days)
      OPERATOR_SECRET_PREFIX    = var.operator_secret_prefix
      ADMIN_GROUP_CLAIM         = var.admin_group_claim
      ADMIN_GROUP               = var.admin_group
      TENANT_CLAIM              = var.tenant_claim
      TENANT_ADMIN_GROUP        = var.tenant_admin_group
      BUDGET_ALERT_TOPIC_ARN    = aws_sns_topic.budget_alerts.arn
      USAGE_RETENTION_DAYS      = tostring(var.usage_retention_days)
      LLM_REQUEST_DEADLINE_SECS = "28"
      LLM_SETTINGS_CACHE_SECS   = tostring(var.settings_cache_seconds)
    },
    local.provider_url_env,
    local.log_filter_env,
  )

  # With streaming_api: the same generate binary behind the streaming REST API
  # (streaming.tf), with lambda_http's streaming runner (LAMBDA_RESPONSE_MODE), request
  # paths without the REST stage's prefix (lambda_http adds "/stream" otherwise, and no
  # route would match) and the stream ceiling. A function that streams its responses
  # cannot answer the HTTP API's buffered invocations, hence a second function rather
  # than a second front door to the first. It shares generate's tables, budgets and
  # permissions (iam.tf); its timeout sits 10 s above the longest stream, so that the
  # Lambda is never killed before a generation's usage is recorded.
  generate_stream_function = local.streaming_api ? {
    "generate-stream" = {
      zip_path             = var.generate_zip_path
      memory_size          = 256
      timeout              = var.stream_max_seconds + 10
      reserved_concurrency = var.generate_stream_reserved_concurrency
      environment = merge(local.generate_environment, {
        LAMBDA_RESPONSE_MODE                 = "streaming"
        AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH = "true"
        LLM_STREAM_MAX_SECS                  = tostring(var.stream_max_seconds)
      })
    }
  } : {}

  alarm_actions = var.alarm_sns_topic_arn == null ? [] : [var.alarm_sns_topic_arn]
}

resource "aws_cloudwatch_log_group" "lambda" {
  for_each = local.lambda_functions

  name              = "/aws/lambda/${var.name_prefix}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_lambda_function" "this" {
  for_each = local.lambda_functions
  #checkov:skip=CKV_AWS_116:Synchronous API Gateway invocations only; a DLQ applies to asynchronous invocations, and errors go back to the caller.
  #checkov:skip=CKV_AWS_117:The functions reach only AWS public endpoints (DynamoDB, Secrets Manager, Bedrock, SNS) and public LLM provider APIs; a VPC would only add NAT cost.
  #checkov:skip=CKV_AWS_272:The zip is built from this repository by CI (`make build`); no AWS Signer profile is part of this module.
  #checkov:skip=CKV_AWS_173:The environment holds only table names, a KMS key ARN, a secret's ARN (never its value), a prefix and log settings; Lambda encrypts it at rest with an AWS managed key.

  function_name                  = "${var.name_prefix}-${each.key}"
  description                    = "LLM gateway: ${each.key}"
  role                           = aws_iam_role.lambda[each.key].arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.lambda_architecture]
  filename                       = each.value.zip_path
  source_code_hash               = filebase64sha256(each.value.zip_path)
  memory_size                    = each.value.memory_size
  timeout                        = each.value.timeout
  reserved_concurrent_executions = each.value.reserved_concurrency

  tracing_config {
    mode = "Active"
  }

  # Lambda's logging controls: Lambda hands these to the function as
  # AWS_LAMBDA_LOG_FORMAT and AWS_LAMBDA_LOG_LEVEL, which the functions' log subscriber
  # (lambda_runtime's default) follows, and drops JSON lines below the level itself.
  logging_config {
    log_format            = "JSON"
    application_log_level = upper(var.log_level)
  }

  environment {
    variables = each.value.environment
  }

  depends_on = [
    aws_cloudwatch_log_group.lambda,
    aws_iam_role_policy.lambda_base,
    aws_iam_role_policy.function,
    # llm-usage reads the page-token key at cold start: its value must exist first.
    aws_secretsmanager_secret_version.usage_token_key,
  ]
}

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each = local.lambda_functions

  alarm_name          = "${var.name_prefix}-${each.key}-errors"
  alarm_description   = "${each.key} returned errors (unhandled failures or timeouts) in 3 consecutive minutes."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.this[each.key].function_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "lambda_throttles" {
  for_each = local.lambda_functions

  alarm_name          = "${var.name_prefix}-${each.key}-throttles"
  alarm_description   = "${each.key} was throttled (reserved concurrency reached)."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = aws_lambda_function.this[each.key].function_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

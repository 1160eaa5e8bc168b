# One role per function, each with only what that function does.

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    sid     = "LambdaAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "lambda" {
  for_each = local.lambda_functions

  name               = "${var.name_prefix}-${each.key}"
  description        = "Execution role of the ${each.key} Lambda function."
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

# Common to every function: write its own log group and its X-Ray traces.
data "aws_iam_policy_document" "lambda_base" {
  for_each = local.lambda_functions

  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda[each.key].arn}:*"]
  }

  statement {
    sid       = "XRayTraces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"] # X-Ray trace writes support no resource-level permissions
  }
}

resource "aws_iam_role_policy" "lambda_base" {
  for_each = local.lambda_functions

  name   = "logs-and-traces"
  role   = aws_iam_role.lambda[each.key].id
  policy = data.aws_iam_policy_document.lambda_base[each.key].json
}

# llm-settings: read and write settings items (users' preferences, and the admin_limits
# items admins set: the only role that may write either); the model registry, the only
# role that may write it; append the audit events of its changes; manage the users' and
# tenants' key secrets; use the CMK only through Secrets Manager and DynamoDB. Every
# audited change (settings, keys, registry, limits) is one TransactWriteItems, authorized
# per item: PutItem on the settings or registry item and on each audit event, DeleteItem
# on removed registry entries and name locks, UpdateItem on the registry's seed marker.
# No ConditionCheckItem: no transaction holds a bare condition check.
data "aws_iam_policy_document" "llm_settings" {
  statement {
    sid       = "SettingsTable"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [aws_dynamodb_table.settings.arn]
  }

  statement {
    sid = "RegistryTable"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:Query",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
    ]
    resources = [aws_dynamodb_table.registry.arn]
  }

  statement {
    sid       = "AuditTableAppend"
    actions   = ["dynamodb:PutItem"]
    resources = [aws_dynamodb_table.audit.arn]
  }

  # Key rotation writes each key as a new secret version with a label of its own, reads
  # the labels (DescribeSecret) and moves them (UpdateSecretVersionStage) once the
  # settings record has committed to a version. Tenants' keys
  # (<secret_prefix>tenants/<tenantId>/llm/<provider>) are saved, rotated and deleted the
  # same way as users'.
  statement {
    sid = "UserAndTenantApiKeySecrets"
    actions = [
      "secretsmanager:CreateSecret",
      "secretsmanager:PutSecretValue",
      "secretsmanager:GetSecretValue",
      "secretsmanager:DescribeSecret",
      "secretsmanager:UpdateSecretVersionStage",
      "secretsmanager:DeleteSecret",
      "secretsmanager:RestoreSecret",
      "secretsmanager:TagResource",
    ]
    resources = [
      "arn:${local.partition}:secretsmanager:${var.aws_region}:${local.account_id}:secret:${var.secret_prefix}users/*",
      "arn:${local.partition}:secretsmanager:${var.aws_region}:${local.account_id}:secret:${var.secret_prefix}tenants/*",
    ]
  }

  # The connection test of Bedrock without a saved key pair runs as this role: a
  # one-token Converse (bedrock:InvokeModel) on a foundation model or inference profile.
  statement {
    sid     = "BedrockConnectionTest"
    actions = ["bedrock:InvokeModel"]
    resources = [
      "arn:${local.partition}:bedrock:*::foundation-model/*",
      "arn:${local.partition}:bedrock:${var.aws_region}:${local.account_id}:inference-profile/*",
    ]
  }

  statement {
    sid       = "CmkThroughSecretsManagerAndDynamoDB"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "secretsmanager.${var.aws_region}.amazonaws.com",
        "dynamodb.${var.aws_region}.amazonaws.com",
      ]
    }
  }
}

# generate: read settings; write usage entries, daily rollups, budget counters, budget
# reservations and alert markers (TransactWriteItems of Puts and Updates, authorized per
# item action: an entry with its rollup and settlement, a reservation or settlement as
# the reservation item's conditional Put/Update with the counter's Update; alert markers
# are conditional PutItems; counters, reservation states and entry existence GetItems;
# the user's expired reservations one Query on their own partition); the response cache;
# append to the audit log; read (never write) the users' key secrets; publish budget
# alerts; call Bedrock with the function's own role when a user has no saved key pair;
# read (never write) the tenants' key secrets its members inherit.
# It reads the model registry (never writes it, nor the users' admin_limits items: both
# are llm-settings' alone) and the operator credentials registry entries name, and
# counts requests per minute in the usage table's /rate/<key> partitions (UpdateItem).
data "aws_iam_policy_document" "generate" {
  statement {
    sid       = "SettingsTableRead"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.settings.arn]
  }

  statement {
    sid       = "RegistryTableRead"
    actions   = ["dynamodb:GetItem", "dynamodb:Query"]
    resources = [aws_dynamodb_table.registry.arn]
  }

  # The rate counters' UpdateItem is this statement's: generate updates every user's
  # rollups and budget counters too (partitions named by arbitrary user ids), so a
  # dynamodb:LeadingKeys condition could not narrow UpdateItem to "/rate/*" without
  # denying those, and a separate "/rate/*" grant would add nothing to this one.
  statement {
    sid       = "UsageTable"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"]
    resources = [aws_dynamodb_table.usage.arn]
  }

  statement {
    sid       = "CacheTable"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [aws_dynamodb_table.cache.arn]
  }

  statement {
    sid       = "AuditTableAppend"
    actions   = ["dynamodb:PutItem"]
    resources = [aws_dynamodb_table.audit.arn]
  }

  # A member without a key of their own for a provider is served with their tenant's.
  statement {
    sid     = "UserAndTenantApiKeySecretsRead"
    actions = ["secretsmanager:GetSecretValue"]
    resources = [
      "arn:${local.partition}:secretsmanager:${var.aws_region}:${local.account_id}:secret:${var.secret_prefix}users/*",
      "arn:${local.partition}:secretsmanager:${var.aws_region}:${local.account_id}:secret:${var.secret_prefix}tenants/*",
    ]
  }

  # Operator credentials of registry entries (auth_meta.api_key_secret), under their own
  # prefix only (apart from the users' secrets: see the precondition below). Operators
  # create these secrets; with the module's CMK, CmkThroughDynamoDBSecretsManagerAndSns
  # below decrypts them, and with the account's aws/secretsmanager key nothing more is
  # needed.
  statement {
    sid       = "OperatorSecretsRead"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = ["arn:${local.partition}:secretsmanager:${var.aws_region}:${local.account_id}:secret:${var.operator_secret_prefix}*"]
  }

  statement {
    sid       = "BudgetAlertsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.budget_alerts.arn]
  }

  # Converse is authorized as bedrock:InvokeModel, ConverseStream as
  # bedrock:InvokeModelWithResponseStream.
  statement {
    sid     = "BedrockInvoke"
    actions = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    resources = [
      "arn:${local.partition}:bedrock:*::foundation-model/*",
      "arn:${local.partition}:bedrock:${var.aws_region}:${local.account_id}:inference-profile/*",
    ]
  }

  statement {
    sid       = "CmkThroughDynamoDBSecretsManagerAndSns"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "dynamodb.${var.aws_region}.amazonaws.com",
        "secretsmanager.${var.aws_region}.amazonaws.com",
        "sns.${var.aws_region}.amazonaws.com",
      ]
    }
  }
}

# llm-usage: read-only. Entries, rollups, budget counters and alert markers are GetItem and
# Query on the user's partition of the usage table; the admin summary is a Query on the
# ProviderIndex GSI (index reads are authorized on the index ARN, not the table's); the
# budget limit is a GetItem on the settings item; the admin audit log is a Query per
# month partition of the audit table; the insights read the model registry (one Query of
# its partition, as generate does). The page-token key is one GetSecretValue at cold
# start. No Put/Update/Delete/BatchWrite/TransactWrite, no Scan.
data "aws_iam_policy_document" "llm_usage" {
  statement {
    sid       = "UsageTableRead"
    actions   = ["dynamodb:GetItem", "dynamodb:Query"]
    resources = [aws_dynamodb_table.usage.arn]
  }

  statement {
    sid       = "UsageProviderIndexQuery"
    actions   = ["dynamodb:Query"]
    resources = ["${aws_dynamodb_table.usage.arn}/index/ProviderIndex"]
  }

  statement {
    sid       = "SettingsTableRead"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.settings.arn]
  }

  statement {
    sid       = "AuditTableQuery"
    actions   = ["dynamodb:Query"]
    resources = [aws_dynamodb_table.audit.arn]
  }

  statement {
    sid       = "RegistryTableRead"
    actions   = ["dynamodb:GetItem", "dynamodb:Query"]
    resources = [aws_dynamodb_table.registry.arn]
  }

  statement {
    sid       = "PageTokenKeyRead"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.usage_token_key.arn]
  }

  statement {
    sid       = "CmkDecryptThroughDynamoDBAndSecretsManager"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "dynamodb.${var.aws_region}.amazonaws.com",
        "secretsmanager.${var.aws_region}.amazonaws.com",
      ]
    }
  }
}

locals {
  # Function -> its own permissions (a policy document above).
  function_policies = merge({
    "llm-settings" = data.aws_iam_policy_document.llm_settings.json
    "generate"     = data.aws_iam_policy_document.generate.json
    "llm-usage"    = data.aws_iam_policy_document.llm_usage.json
    },
    # The streaming copy of generate does what generate does (lambda.tf).
    { for name in keys(local.generate_stream_function) : name => data.aws_iam_policy_document.generate.json },
  )
}

resource "aws_iam_role_policy" "function" {
  for_each = local.function_policies

  name   = "${each.key}-permissions"
  role   = aws_iam_role.lambda[each.key].id
  policy = each.value

  lifecycle {
    # generate may read every secret under operator_secret_prefix: were the users' or
    # tenants' keys or the page-token key under it, an admin could name a user's or a
    # tenant's key as an entry's operator credential, and serve every user with it.
    precondition {
      condition = alltrue([
        for own in ["${var.secret_prefix}users/", "${var.secret_prefix}tenants/", "${var.secret_prefix}service/"] :
        !startswith(own, var.operator_secret_prefix) && !startswith(var.operator_secret_prefix, own)
      ])
      error_message = "operator_secret_prefix must not overlap the secret_prefix names of users' keys (<secret_prefix>users/), tenants' keys (<secret_prefix>tenants/) or the gateway's own secrets (<secret_prefix>service/)."
    }
  }
}

# The streaming front door: a REST API in front of generate-stream (the generate binary
# in streaming mode, lambda.tf), because HTTP APIs buffer Lambda responses (a "stream":
# true answer would arrive in one piece, and nothing may run past their 30 s) while REST
# API integrations stream them (response_transfer_mode = STREAM, invoked through
# InvokeWithResponseStream, up to 15 minutes). It serves every route of the generate
# function (local.generate_routes in apigw.tf) at the same paths, JSON ones too: a route
# cannot be split on the body's "stream", and SDKs take one base URL. The HTTP API keeps
# every route, the generate ones included (buffered, as before): the dashboard and
# clients already pointed at it keep working. Off with streaming_api = false.
locals {
  # The external-issuer case is refused by a precondition (aws_apigatewayv2_authorizer.jwt
  # in apigw.tf): this only keeps the plan from indexing a Cognito pool that is not there.
  streaming_api = var.streaming_api && local.create_cognito
  streaming     = local.streaming_api ? 1 : 0

  # "POST /v1/chat/completions" -> { http_method = "POST", path = "v1/chat/completions" }
  stream_methods = local.streaming_api ? {
    for route, fn in local.generate_routes : route => {
      http_method = split(" ", route)[0]
      path        = trimprefix(split(" ", route)[1], "/")
    }
  } : {}

  # The REST API's resources those paths need (every prefix of every path: v1, v1/chat,
  # v1/chat/completions, ...), by depth: a resource's parent is a resource of the depth
  # above, and a resource block cannot refer to its own instances.
  stream_paths = distinct(flatten([
    for m in values(local.stream_methods) : [
      for i in range(length(split("/", m.path))) : join("/", slice(split("/", m.path), 0, i + 1))
    ]
  ]))
  stream_paths_by_depth = {
    for depth in [1, 2, 3] : depth => [for p in local.stream_paths : p if length(split("/", p)) == depth]
  }
  stream_resource_ids = merge(
    { for p, r in aws_api_gateway_resource.stream_1 : p => r.id },
    { for p, r in aws_api_gateway_resource.stream_2 : p => r.id },
    { for p, r in aws_api_gateway_resource.stream_3 : p => r.id },
  )

  # Lambda's streaming invocation (InvokeWithResponseStream), not the buffered
  # 2015-03-31/.../invocations of invoke_arn. Guarded: Terraform evaluates every local,
  # and generate-stream exists only with streaming_api.
  generate_streaming_uri = local.streaming_api ? "arn:${local.partition}:apigateway:${var.aws_region}:lambda:path/2021-11-15/functions/${aws_lambda_function.this["generate-stream"].arn}/response-streaming-invocations" : null
}

resource "aws_api_gateway_rest_api" "stream" {
  count = local.streaming

  name        = "${var.name_prefix}-stream"
  description = "BYOK LLM gateway: the generate function's routes, with streamed responses"

  # Regional: an edge-optimized endpoint's CloudFront cuts a connection idle for 30 s,
  # a regional one after 5 minutes.
  endpoint_configuration {
    types = ["REGIONAL"]
  }

  lifecycle {
    create_before_destroy = true

    precondition {
      condition     = length(local.stream_paths) == length(flatten(values(local.stream_paths_by_depth)))
      error_message = "A generate route is more than 3 segments deep: add a depth to aws_api_gateway_resource in streaming.tf."
    }
  }
}

resource "aws_api_gateway_resource" "stream_1" {
  for_each = toset(local.stream_paths_by_depth[1])

  rest_api_id = aws_api_gateway_rest_api.stream[0].id
  parent_id   = aws_api_gateway_rest_api.stream[0].root_resource_id
  path_part   = each.key
}

resource "aws_api_gateway_resource" "stream_2" {
  for_each = toset(local.stream_paths_by_depth[2])

  rest_api_id = aws_api_gateway_rest_api.stream[0].id
  parent_id   = aws_api_gateway_resource.stream_1[split("/", each.key)[0]].id
  path_part   = split("/", each.key)[1]
}

resource "aws_api_gateway_resource" "stream_3" {
  for_each = toset(local.stream_paths_by_depth[3])

  rest_api_id = aws_api_gateway_rest_api.stream[0].id
  parent_id   = aws_api_gateway_resource.stream_2[join("/", slice(split("/", each.key), 0, 2))].id
  path_part   = split("/", each.key)[2]
}

# The same user pool and app client as the HTTP API's JWT authorizer: ID tokens of the
# module's client (its only one), sent as "Authorization: Bearer <token>". The function
# reads the claims from requestContext.authorizer.claims (shared::http::extract).
resource "aws_api_gateway_authorizer" "cognito" {
  count = local.streaming

  name            = "${var.name_prefix}-cognito"
  rest_api_id     = aws_api_gateway_rest_api.stream[0].id
  type            = "COGNITO_USER_POOLS"
  provider_arns   = [aws_cognito_user_pool.this[0].arn]
  identity_source = "method.request.header.Authorization"
}

resource "aws_api_gateway_method" "stream" {
  for_each = local.stream_methods
  #checkov:skip=CKV2_AWS_53:The function validates every request and answers 400 in the API's error shape (SPEC.md); an API Gateway request validator would answer in its own shape, and the HTTP API routes have none either.

  rest_api_id   = aws_api_gateway_rest_api.stream[0].id
  resource_id   = local.stream_resource_ids[each.value.path]
  http_method   = each.value.http_method
  authorization = "COGNITO_USER_POOLS"
  authorizer_id = aws_api_gateway_authorizer.cognito[0].id
}

resource "aws_api_gateway_integration" "stream" {
  for_each = local.stream_methods

  rest_api_id             = aws_api_gateway_rest_api.stream[0].id
  resource_id             = aws_api_gateway_method.stream[each.key].resource_id
  http_method             = aws_api_gateway_method.stream[each.key].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = local.generate_streaming_uri
  response_transfer_mode  = "STREAM"
  # Past the function's stream ceiling, so that the function, not API Gateway, ends a
  # stream that runs that long (with its final event and its usage recorded).
  timeout_milliseconds = (var.stream_max_seconds + 5) * 1000
}

resource "aws_api_gateway_deployment" "stream" {
  count = local.streaming

  rest_api_id = aws_api_gateway_rest_api.stream[0].id
  description = "The generate routes, streamed"

  # A deployment is a snapshot: redeploy whenever a resource, method, integration or the
  # authorizer changes, in place too (the whole resources are hashed, not their ids).
  triggers = {
    redeployment = sha1(jsonencode([
      aws_api_gateway_resource.stream_1,
      aws_api_gateway_resource.stream_2,
      aws_api_gateway_resource.stream_3,
      aws_api_gateway_authorizer.cognito,
      aws_api_gateway_method.stream,
      aws_api_gateway_integration.stream,
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [aws_api_gateway_method.stream, aws_api_gateway_integration.stream]
}

# The stage's access log, and its execution log group, which API Gateway would otherwise
# create itself on the first error (unencrypted, kept forever, left behind by destroy).
resource "aws_cloudwatch_log_group" "api_stream" {
  for_each = local.streaming_api ? {
    access    = "/aws/apigateway/${var.name_prefix}-stream"
    execution = "API-Gateway-Execution-Logs_${aws_api_gateway_rest_api.stream[0].id}/stream"
  } : {}

  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_api_gateway_stage" "stream" {
  count = local.streaming
  #checkov:skip=CKV_AWS_120:Every answer is a user's own generation (the gateway keeps its own per-user response cache, the cache table in dynamodb.tf); API Gateway's cache would serve one caller's answer to another.
  #checkov:skip=CKV2_AWS_51:A public API for end users authenticated by Cognito tokens; client certificates authenticate API Gateway to a backend, and the backend here is Lambda, invoked with IAM.
  #checkov:skip=CKV2_AWS_4:logging_level ERROR and metrics are set for every method (*/*) in aws_api_gateway_method_settings.stream; checkov's graph does not connect the two through their count index.
  #checkov:skip=CKV2_AWS_29:WAF is the operator's choice (it bills per request and per rule); the HTTP API beside it cannot have one either. Attach a web ACL to this stage's ARN outside the module if wanted.

  rest_api_id          = aws_api_gateway_rest_api.stream[0].id
  deployment_id        = aws_api_gateway_deployment.stream[0].id
  stage_name           = "stream"
  description          = "The generate routes, streamed"
  xray_tracing_enabled = true

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_stream["access"].arn
    format = jsonencode({
      requestId          = "$context.requestId"
      ip                 = "$context.identity.sourceIp"
      requestTime        = "$context.requestTime"
      route              = "$context.httpMethod $context.resourcePath"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      latencyMs          = "$context.responseLatency"
      integrationStatus  = "$context.integration.status"
      integrationLatency = "$context.integration.latency"
      integrationError   = "$context.integration.error"
      authorizerError    = "$context.authorizer.error"
      sub                = "$context.authorizer.claims.sub"
    })
  }

  depends_on = [aws_api_gateway_account.this, aws_cloudwatch_log_group.api_stream]
}

# The same throttling as the HTTP API's routes, on every method of the stage.
resource "aws_api_gateway_method_settings" "stream" {
  count = local.streaming
  #checkov:skip=CKV_AWS_225:Every answer is a user's own generation: API Gateway's cache would serve one caller's answer to another (the gateway keeps its own per-user response cache).

  rest_api_id = aws_api_gateway_rest_api.stream[0].id
  stage_name  = aws_api_gateway_stage.stream[0].stage_name
  method_path = "*/*"

  settings {
    throttling_burst_limit = var.api_throttling_burst_limit
    throttling_rate_limit  = var.api_throttling_rate_limit
    metrics_enabled        = true
    logging_level          = "ERROR"
    # Never on: full request logging would write prompts and answers into the logs.
    data_trace_enabled   = false
    caching_enabled      = false
    cache_data_encrypted = true
  }
}

resource "aws_lambda_permission" "stream" {
  count = local.streaming

  statement_id  = "AllowInvokeFromStreamingRestApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["generate-stream"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.stream[0].execution_arn}/*/*/*"
}

# REST API logs (access and execution) are written with the account's API Gateway
# CloudWatch role: one setting per account and region, shared by every REST API there.
# Destroying aws_api_gateway_account resets it (provider v6), and two deployments of this
# module in one account and region would overwrite each other's: let one of them (or
# another stack) manage it, and set manage_api_gateway_account = false in the others.
data "aws_iam_policy_document" "api_gateway_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    # As AWS documents this role: no aws:SourceAccount condition, which API Gateway is
    # not documented to send when it assumes the account's logging role.
    principals {
      type        = "Service"
      identifiers = ["apigateway.amazonaws.com"]
    }
  }
}

# The actions of the AWS managed AmazonAPIGatewayPushToCloudWatchLogs policy, on this
# account's log groups in this region only: API Gateway names its execution log groups
# itself (API-Gateway-Execution-Logs_<api id>/<stage>), and the role serves every REST
# API of the account and region.
data "aws_iam_policy_document" "api_gateway_cloudwatch" {
  statement {
    actions = [
      "logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogGroups", "logs:DescribeLogStreams",
      "logs:PutLogEvents", "logs:GetLogEvents", "logs:FilterLogEvents",
    ]
    resources = ["arn:${local.partition}:logs:${var.aws_region}:${local.account_id}:log-group:*"]
  }
}

resource "aws_iam_role" "api_gateway_cloudwatch" {
  count = local.streaming_api && var.manage_api_gateway_account ? 1 : 0

  name               = "${var.name_prefix}-apigw-cloudwatch"
  description        = "API Gateway's CloudWatch Logs role of this account and region (REST API access and execution logs)."
  assume_role_policy = data.aws_iam_policy_document.api_gateway_assume.json
}

resource "aws_iam_role_policy" "api_gateway_cloudwatch" {
  count = local.streaming_api && var.manage_api_gateway_account ? 1 : 0

  name   = "write-logs"
  role   = aws_iam_role.api_gateway_cloudwatch[0].id
  policy = data.aws_iam_policy_document.api_gateway_cloudwatch.json
}

resource "aws_api_gateway_account" "this" {
  count = local.streaming_api && var.manage_api_gateway_account ? 1 : 0

  cloudwatch_role_arn = aws_iam_role.api_gateway_cloudwatch[0].arn

  depends_on = [aws_iam_role_policy.api_gateway_cloudwatch]
}

resource "aws_cloudwatch_metric_alarm" "api_stream_5xx" {
  count = local.streaming

  alarm_name          = "${var.name_prefix}-api-stream-5xx"
  alarm_description   = "The streaming REST API answered 5xx in 3 consecutive minutes."
  namespace           = "AWS/ApiGateway"
  metric_name         = "5XXError"
  dimensions          = { ApiName = aws_api_gateway_rest_api.stream[0].name, Stage = aws_api_gateway_stage.stream[0].stage_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

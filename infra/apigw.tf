# HTTP API with a JWT authorizer in front of the functions. Routes map to functions here
# (route key -> function); a new function adds its routes to these maps.
locals {
  # Authenticated by the JWT authorizer.
  api_routes = {
    "GET /api/me"                                       = "llm-settings"
    "GET /api/llm-models"                               = "llm-settings"
    "GET /api/llm-settings/{userId}"                    = "llm-settings"
    "PUT /api/llm-settings/{userId}"                    = "llm-settings"
    "DELETE /api/llm-settings/{userId}/keys/{provider}" = "llm-settings"
    "POST /api/llm-settings/{userId}/test"              = "llm-settings"
    "POST /api/llm-generate/{userId}"                   = "generate"
    "POST /v1/chat/completions"                         = "generate"
    "POST /v1/messages"                                 = "generate"
    "POST /v1/messages/count_tokens"                    = "generate"
    "POST /v1/embeddings"                               = "generate"
    "GET /v1/models"                                    = "generate"
    "GET /api/llm-usage/{userId}"                       = "llm-usage"
    "GET /api/llm-usage/{userId}/summary"               = "llm-usage"
    "GET /api/llm-usage/{userId}/daily"                 = "llm-usage"
    "GET /api/llm-usage/{userId}/budget"                = "llm-usage"
    "GET /api/llm-usage/{userId}/export"                = "llm-usage"
    "GET /api/llm-usage/{userId}/insights"              = "llm-usage"
    "GET /api/admin/usage/summary"                      = "llm-usage"
    # Admin (the handlers refuse non-admins with 403): the registry and per-user limits
    # are written by llm-settings, the only role that may write them (iam.tf); the audit
    # log and provider health are read by the read-only llm-usage.
    "GET /api/admin/llms"                   = "llm-settings"
    "POST /api/admin/llms"                  = "llm-settings"
    "POST /api/admin/llms/bulk"             = "llm-settings"
    "GET /api/admin/llms/{id}"              = "llm-settings"
    "PUT /api/admin/llms/{id}"              = "llm-settings"
    "DELETE /api/admin/llms/{id}"           = "llm-settings"
    "POST /api/admin/llms/{id}/toggle"      = "llm-settings"
    "POST /api/admin/llms/{id}/set-default" = "llm-settings"
    "GET /api/admin/users/{userId}/limits"  = "llm-settings"
    "PUT /api/admin/users/{userId}/limits"  = "llm-settings"
    "GET /api/admin/audit"                  = "llm-usage"
    "GET /api/admin/providers/health"       = "llm-usage"
    # Tenants (the handlers authorize from the caller's tenant claim and group): tenant
    # settings and keys are written by llm-settings, the tenant's usage read by llm-usage
    # (members, tenant admins and global admins; 403 for others).
    "GET /api/tenants/{tenantId}/llm-settings"                    = "llm-settings"
    "PUT /api/tenants/{tenantId}/llm-settings"                    = "llm-settings"
    "POST /api/tenants/{tenantId}/llm-settings/test"              = "llm-settings"
    "DELETE /api/tenants/{tenantId}/llm-settings/keys/{provider}" = "llm-settings"
    "GET /api/tenants/{tenantId}/llm-usage/summary"               = "llm-usage"
    "GET /api/tenants/{tenantId}/llm-usage/daily"                 = "llm-usage"
    "GET /api/tenants/{tenantId}/llm-usage/last24h"               = "llm-usage"
  }

  # Public: no authorizer. The liveness probe, and the dashboard's static page and
  # assets (they hold no data: every number they show comes from the routes above, with
  # the user's token).
  public_api_routes = {
    "GET /health"        = "llm-settings"
    "GET /"              = "llm-settings"
    "GET /assets/{file}" = "llm-settings"
    "GET /openapi.json"  = "llm-settings"
  }

  # The generate function's routes, which the streaming REST API serves too (streaming.tf).
  generate_routes = { for route, fn in local.api_routes : route => fn if fn == "generate" }
  # The functions the HTTP API invokes (an integration and a permission each): not
  # generate-stream, which only the streaming REST API invokes.
  http_api_functions = {
    for name, fn in local.lambda_functions : name => fn
    if contains(values(merge(local.api_routes, local.public_api_routes)), name)
  }
}

resource "aws_apigatewayv2_api" "this" {
  name          = var.name_prefix
  description   = "BYOK LLM gateway"
  protocol_type = "HTTP"
}

resource "aws_apigatewayv2_authorizer" "jwt" {
  name             = "${var.name_prefix}-jwt"
  api_id           = aws_apigatewayv2_api.this.id
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]

  jwt_configuration {
    issuer   = local.jwt_issuer
    audience = local.jwt_audience
  }

  lifecycle {
    precondition {
      condition     = local.create_cognito || (var.jwt_issuer != "" && length(var.jwt_audience) > 0)
      error_message = "Set both jwt_issuer and jwt_audience (external identity provider), or neither (a Cognito user pool is created)."
    }
    precondition {
      condition     = !var.streaming_api || local.create_cognito
      error_message = "streaming_api needs the module's Cognito user pool (a REST API authorizer accepts Cognito user pools only, not an external jwt_issuer): set streaming_api = false with an external identity provider."
    }
  }
}

resource "aws_apigatewayv2_integration" "lambda" {
  for_each = local.http_api_functions

  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.this[each.key].invoke_arn
  payload_format_version = "2.0"
}

resource "aws_apigatewayv2_route" "jwt" {
  for_each = local.api_routes

  api_id             = aws_apigatewayv2_api.this.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.lambda[each.value].id}"
  authorization_type = "JWT"
  authorizer_id      = aws_apigatewayv2_authorizer.jwt.id
}

resource "aws_apigatewayv2_route" "public" {
  for_each = local.public_api_routes
  #checkov:skip=CKV_AWS_309:Public by the API contract: GET /health is a liveness probe, GET / and GET /assets/{file} are the dashboard's static files, GET /openapi.json is the API's OpenAPI document (built from the code, the same for every caller); none returns data. Every other route is in aws_apigatewayv2_route.jwt.

  api_id             = aws_apigatewayv2_api.this.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.lambda[each.value].id}"
  authorization_type = "NONE"
}

resource "aws_cloudwatch_log_group" "api_access" {
  name              = "/aws/apigateway/${var.name_prefix}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit   = var.api_throttling_burst_limit
    throttling_rate_limit    = var.api_throttling_rate_limit
    detailed_metrics_enabled = true
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      ip                 = "$context.identity.sourceIp"
      requestTime        = "$context.requestTime"
      routeKey           = "$context.routeKey"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      latencyMs          = "$context.responseLatency"
      integrationStatus  = "$context.integrationStatus"
      integrationLatency = "$context.integration.latency"
      integrationError   = "$context.integrationErrorMessage"
      authorizerError    = "$context.authorizer.error"
      sub                = "$context.authorizer.claims.sub"
    })
  }
}

resource "aws_lambda_permission" "apigw" {
  for_each = local.http_api_functions

  statement_id  = "AllowInvokeFromHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[each.key].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*/*"
}

resource "aws_cloudwatch_metric_alarm" "api_5xx" {
  alarm_name          = "${var.name_prefix}-api-5xx"
  alarm_description   = "The HTTP API answered 5xx in 3 consecutive minutes."
  namespace           = "AWS/ApiGateway"
  metric_name         = "5xx"
  dimensions          = { ApiId = aws_apigatewayv2_api.this.id, Stage = aws_apigatewayv2_stage.default.name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

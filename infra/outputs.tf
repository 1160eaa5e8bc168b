output "api_endpoint" {
  description = "Base URL of the HTTP API ($default stage, no stage prefix): every route, the dashboard, and the generate routes buffered (streams arrive in one piece; generate_endpoint streams them)."
  value       = aws_apigatewayv2_api.this.api_endpoint
}

output "streaming_api_endpoint" {
  description = "With streaming_api: base URL of the streaming REST API (its \"stream\" stage), which serves the generate function's routes: POST /api/llm-generate/{userId}, /v1/chat/completions, /v1/messages, /v1/messages/count_tokens, /v1/embeddings and GET /v1/models. null without streaming_api."
  value       = local.streaming_api ? aws_api_gateway_stage.stream[0].invoke_url : null
}

output "generate_endpoint" {
  description = "Base URL for the generate function's routes, streamed where asked (an OpenAI or Anthropic SDK's base URL is this plus /v1): the streaming REST API with streaming_api, else the HTTP API (whose generate routes answer streams in one piece)."
  value       = local.streaming_api ? aws_api_gateway_stage.stream[0].invoke_url : aws_apigatewayv2_api.this.api_endpoint
}

output "api_id" {
  description = "Id of the HTTP API."
  value       = aws_apigatewayv2_api.this.id
}

output "jwt_issuer" {
  description = "Issuer the JWT authorizer accepts."
  value       = local.jwt_issuer
}

output "cognito_user_pool_id" {
  description = "Id of the Cognito user pool created by this module (null with an external identity provider)."
  value       = local.create_cognito ? aws_cognito_user_pool.this[0].id : null
}

output "cognito_client_id" {
  description = "Id of the Cognito app client (the JWT audience) created by this module (null with an external identity provider)."
  value       = local.create_cognito ? aws_cognito_user_pool_client.this[0].id : null
}

output "cognito_tenant_admin_group" {
  description = "Cognito group of tenant admins created by this module (null with an external identity provider); a user's tenant is the custom:tenant attribute (infra/README.md)."
  value       = local.create_cognito ? aws_cognito_user_group.tenant_admin[0].name : null
}

output "settings_table_name" {
  description = "Name of the settings DynamoDB table."
  value       = aws_dynamodb_table.settings.name
}

output "usage_table_name" {
  description = "Name of the usage DynamoDB table."
  value       = aws_dynamodb_table.usage.name
}

output "cache_table_name" {
  description = "Name of the response cache DynamoDB table."
  value       = aws_dynamodb_table.cache.name
}

output "audit_table_name" {
  description = "Name of the audit DynamoDB table."
  value       = aws_dynamodb_table.audit.name
}

output "registry_table_name" {
  description = "Name of the model registry DynamoDB table."
  value       = aws_dynamodb_table.registry.name
}

output "kms_key_arn" {
  description = "ARN of the customer managed KMS key (tables, secrets, logs)."
  value       = aws_kms_key.this.arn
}

output "settings_function_name" {
  description = "Name of the llm-settings Lambda function."
  value       = aws_lambda_function.this["llm-settings"].function_name
}

output "generate_function_name" {
  description = "Name of the generate Lambda function."
  value       = aws_lambda_function.this["generate"].function_name
}

output "generate_stream_function_name" {
  description = "With streaming_api: name of the generate-stream Lambda function (generate in streaming mode, behind the streaming REST API). null without streaming_api."
  value       = local.streaming_api ? aws_lambda_function.this["generate-stream"].function_name : null
}

output "usage_function_name" {
  description = "Name of the llm-usage Lambda function."
  value       = aws_lambda_function.this["llm-usage"].function_name
}

output "usage_token_key_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the llm-usage page-token key (the ARN only, never the value)."
  value       = aws_secretsmanager_secret.usage_token_key.arn
}

output "budget_alert_topic_arn" {
  description = "ARN of the SNS topic that receives users' budget threshold alerts (JSON messages)."
  value       = aws_sns_topic.budget_alerts.arn
}

# Settings: one item per user and setting type (llm_preferences), with a `version` for
# conditional writes.
resource "aws_dynamodb_table" "settings" {
  name                        = "${var.name_prefix}-settings"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "user_id"
  range_key                   = "setting_type"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "user_id"
    type = "S"
  }

  attribute {
    name = "setting_type"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }
}

# Usage: one item per request, sk = "<timestamp>#<request_id>", expired by TTL after
# var.usage_retention_days.
resource "aws_dynamodb_table" "usage" {
  name                        = "${var.name_prefix}-usage"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "user_id"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "user_id"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  attribute {
    name = "provider"
    type = "S"
  }

  attribute {
    name = "operation_type"
    type = "S"
  }

  attribute {
    name = "timestamp"
    type = "S"
  }

  global_secondary_index {
    name            = "ProviderIndex"
    hash_key        = "provider"
    range_key       = "timestamp"
    projection_type = "ALL"
  }

  global_secondary_index {
    name            = "OperationTypeIndex"
    hash_key        = "operation_type"
    range_key       = "timestamp"
    projection_type = "ALL"
  }

  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }
}

# The keys, attributes, GSIs and TTLs below are also defined in
# shared/src/store/dynamodb/tables.rs (what the emulator tests create); a unit test there
# fails when the two disagree.

# Settings: one item per user and setting type (llm_preferences; admin_limits, the
# budget and rate an admin sets), with a `version` for conditional writes.
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
# var.usage_retention_days. The same partition holds the user's daily rollups
# (sk "rollup#<YYYY-MM-DD>"), monthly budget counters (sk "budget#<YYYY-MM>") and budget
# alert markers (sk "alert#<YYYY-MM>#<threshold>"), each with a `ttl` about 13 months out.
# Entry sort keys start with a digit, the others with a letter, so timestamp range
# queries only ever return entries; only entries carry the GSI keys (sparse indexes).
# Rate-limit counters (generate's requests per minute across instances) are items of
# partitions "/rate/<key>", sk "rate#<window start>", with a `ttl` a few windows out: no
# user id contains "/", so no user's partition holds them, and they carry no GSI key.
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

# Response cache: one item per cache key (a hash of user, model and request), value is
# the cached response as JSON text; TTL on `expires_at` (reads also treat an expired
# item as a miss, since TTL deletion is lazy).
resource "aws_dynamodb_table" "cache" {
  name                        = "${var.name_prefix}-cache"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "key"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "key"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
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

# Audit log: pk = month ("YYYY-MM" of the event), sk = "<timestamp>#<id>"; listed by
# querying each month's partition in order. Each event carries a `ttl` 13 months
# (396 days) after its timestamp, and DynamoDB expires it then.
resource "aws_dynamodb_table" "audit" {
  name                        = "${var.name_prefix}-audit"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "month"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "month"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
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

# Model registry: one partition (pk = "registry", a registry holds hundreds of entries at
# most). sk = "llm#<id>" for entries, "name#<name>" for the lock that keeps names unique
# (DynamoDB has no unique constraint on other attributes), "meta#seeded" for the marker
# of the one-time seed. Every change is one TransactWriteItems of entries, locks and
# audit events. Written by llm-settings only; generate reads it.
resource "aws_dynamodb_table" "registry" {
  name                        = "${var.name_prefix}-registry"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
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

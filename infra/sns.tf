# Budget alerts: the generate function publishes one JSON message per user, month and
# threshold reached ({"type": "budget_alert", "alert": {...}}), with a subject. Encrypted
# with the CMK; subscribe endpoints (e-mail below, or SQS, chat, ...) to the topic.
resource "aws_sns_topic" "budget_alerts" {
  name              = "${var.name_prefix}-budget-alerts"
  display_name      = "LLM gateway budget alerts"
  kms_master_key_id = aws_kms_key.this.arn
}

resource "aws_sns_topic_subscription" "budget_alert_email" {
  count = var.budget_alert_email == null ? 0 : 1

  topic_arn = aws_sns_topic.budget_alerts.arn
  protocol  = "email"
  endpoint  = var.budget_alert_email
}

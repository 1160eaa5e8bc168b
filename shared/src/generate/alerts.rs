//! Budget threshold alerts: each threshold fires once per user and month (a conditional
//! write decides which request crosses it), goes to the log and the audit store, and to
//! the operator's sinks (a webhook locally, an SNS topic on AWS).

use crate::money::NanoUsd;
use crate::providers::transport::Transport;
use crate::store::{AuditEvent, AuditStore, BudgetStore};
use async_trait::async_trait;
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, Clone, Serialize)]
pub struct BudgetAlert {
    /// The user, or the tenant's owner id (`tenant/<id>`) for a tenant's budget.
    pub user_id: String,
    pub month: String,
    pub threshold: u32,
    pub spent_usd: NanoUsd,
    pub limit_usd: NanoUsd,
}

/// Somewhere an alert is delivered. Delivery failures are logged, never raised: an
/// alert must not fail the request that crossed the threshold.
#[async_trait]
pub trait AlertSink: Send + Sync {
    async fn deliver(&self, alert: &BudgetAlert);
}

/// Posts the alert as JSON to `LLM_BUDGET_WEBHOOK_URL` (operator configuration), on a
/// task of its own with a short timeout: a slow or hung webhook must never stall the
/// usage writer that found the threshold crossed (the alert is in the log and the audit
/// store already).
pub struct WebhookSink {
    pub transport: Transport,
    pub url: String,
}

/// How long the webhook may take to answer.
pub const WEBHOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[async_trait]
impl AlertSink for WebhookSink {
    async fn deliver(&self, alert: &BudgetAlert) {
        let body = serde_json::json!({"type": "budget_alert", "alert": alert});
        let req = match crate::providers::WireRequest::post_json(self.url.clone(), &body) {
            Ok(req) => req,
            Err(e) => {
                tracing::warn!(error = %e, "budget webhook request not built");
                return;
            }
        };
        let transport = self.transport.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(WEBHOOK_TIMEOUT, transport.send(req)).await {
                Ok(Ok(r)) if (200..300).contains(&r.status) => {}
                Ok(Ok(r)) => tracing::warn!(status = r.status, "budget webhook refused the alert"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e.kind.as_str(), "budget webhook unreachable")
                }
                Err(_) => tracing::warn!("budget webhook did not answer in time"),
            }
        });
    }
}

/// Publishes the alert as JSON, with a subject, to an SNS topic (`BUDGET_ALERT_TOPIC_ARN`).
#[cfg(feature = "aws")]
pub struct SnsSink {
    pub client: aws_sdk_sns::Client,
    pub topic_arn: String,
}

#[cfg(feature = "aws")]
#[async_trait]
impl AlertSink for SnsSink {
    async fn deliver(&self, alert: &BudgetAlert) {
        let body = serde_json::json!({"type": "budget_alert", "alert": alert});
        // SNS subjects: at most 100 printable ASCII characters.
        let subject: String = format!(
            "LLM budget: {}% of the {} budget reached",
            alert.threshold, alert.month
        )
        .chars()
        .take(100)
        .collect();
        match self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(body.to_string())
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) => tracing::warn!(
                error = %aws_sdk_sns::error::DisplayErrorContext(&e),
                threshold = alert.threshold,
                "budget alert not published to SNS"
            ),
        }
    }
}

pub struct Alerts {
    audit: Arc<dyn AuditStore>,
    sinks: Vec<Arc<dyn AlertSink>>,
}

impl Alerts {
    pub fn new(audit: Arc<dyn AuditStore>, sinks: Vec<Arc<dyn AlertSink>>) -> Self {
        Alerts { audit, sinks }
    }

    /// After a settlement: fires every threshold the month's spend has reached that has
    /// not fired yet this month.
    pub async fn check(
        &self,
        budgets: &dyn BudgetStore,
        user_id: &str,
        month: &str,
        limit: NanoUsd,
        thresholds: &[u32],
    ) {
        let spent = match budgets
            .month(user_id, month, chrono::Utc::now().timestamp())
            .await
        {
            Ok(m) => m.spent,
            Err(e) => {
                tracing::error!(error = %e, "budget counters unreadable; alerts skipped");
                return;
            }
        };
        for threshold in super::budget::reached(thresholds, spent, limit) {
            match budgets.mark_alerted(user_id, month, threshold).await {
                Ok(true) => {
                    self.fire(BudgetAlert {
                        user_id: user_id.to_owned(),
                        month: month.to_owned(),
                        threshold,
                        spent_usd: spent,
                        limit_usd: limit,
                    })
                    .await
                }
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "alert mark failed"),
            }
        }
    }

    async fn fire(&self, alert: BudgetAlert) {
        tracing::warn!(
            user_id = %alert.user_id, month = %alert.month, threshold = alert.threshold,
            spent_nanos = alert.spent_usd.0, limit_nanos = alert.limit_usd.0,
            "budget threshold reached"
        );
        let target = AuditEvent::owner_target(&alert.user_id);
        let event = AuditEvent::now("system", target, "budget_alert")
            .with_change(None, serde_json::to_value(&alert).ok());
        if let Err(e) = self.audit.append(&event).await {
            tracing::error!(error = %e, "budget alert not written to the audit store");
        }
        for sink in &self.sinks {
            sink.deliver(&alert).await;
        }
    }
}

//! The AWS SDK configuration, built once per process and shared by every AWS client
//! (DynamoDB, Secrets Manager, Bedrock): standard retries, which back off on throttling,
//! and timeouts well under the Lambda and API Gateway limits. `AWS_ENDPOINT_URL` is
//! honoured, which is how an emulator is reached. Without a configured region (a
//! developer machine), us-east-1.

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use std::time::Duration;

pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(RegionProviderChain::default_provider().or_else("us-east-1"))
        .retry_config(RetryConfig::standard().with_max_attempts(4))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(20))
                .operation_timeout(Duration::from_secs(25))
                .build(),
        )
        .load()
        .await
}

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
    with_limits(aws_config::defaults(BehaviorVersion::latest()))
        .region(RegionProviderChain::default_provider().or_else("us-east-1"))
        .load()
        .await
}

/// For the local shape: region and credentials from the environment and the AWS profile
/// files only. The default chains would also ask the EC2 and ECS metadata endpoints,
/// which on a developer machine means a network call off the machine and a stall.
pub async fn local_sdk_config() -> aws_config::SdkConfig {
    use aws_config::environment::{
        EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
    };
    use aws_config::meta::credentials::CredentialsProviderChain;
    use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
    let region = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::new())
        .or_else("us-east-1");
    let credentials = CredentialsProviderChain::first_try(
        "environment",
        EnvironmentVariableCredentialsProvider::new(),
    )
    .or_else("profile", ProfileFileCredentialsProvider::builder().build());
    with_limits(aws_config::defaults(BehaviorVersion::latest()))
        .region(region)
        .credentials_provider(credentials)
        .load()
        .await
}

fn with_limits(loader: aws_config::ConfigLoader) -> aws_config::ConfigLoader {
    loader
        .retry_config(RetryConfig::standard().with_max_attempts(4))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(20))
                .operation_timeout(Duration::from_secs(25))
                .build(),
        )
}

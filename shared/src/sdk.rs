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

/// The smithy runtime's error and response types, which every AWS SDK client here
/// (DynamoDB, Secrets Manager, Bedrock) shares; named through the one SDK always built.
pub use aws_sdk_bedrockruntime::config::http::HttpResponse;
pub use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};

/// Error codes that mean "too much, slow down" rather than "wrong request": the SDK's
/// standard retry backs off on these, and once it gives up they are still worth another
/// try a little later. (`LimitExceededException` is not among them: for Secrets Manager
/// it is a quota, not a rate.)
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionInProgressException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Whether a call failed for a reason on AWS's side or on the way to it (throttled,
/// a 5xx, unreachable, timed out, the connection dropped) rather than because of the
/// request: the caller should answer "unavailable, retry shortly" (a `503`), not an
/// internal error.
pub fn is_transient<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => {
            s.raw().status().is_server_error()
                || s.err()
                    .code()
                    .is_some_and(|c| THROTTLING_CODES.contains(&c))
        }
        _ => false,
    }
}

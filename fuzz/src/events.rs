//! API Gateway events (HTTP API v2, and REST API v1 for the streaming front door) as the Lambda runtime hands them over: whatever the
//! JSON, lambda_http's decoding and our reading of the JWT claims never panic, and a
//! caller is only ever a valid user id.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::request::LambdaRequest;
use shared::identity::{ClaimNames, caller_from_claims, valid_tenant_id, valid_user_id};

pub fn apigw_events(data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<LambdaRequest>(data) else {
        return;
    };
    if !as_api_gateway_sends(&event) {
        return;
    }
    let request: lambda_http::Request = event.into();
    // The very function the Lambdas' `Caller` extractor reads claims with.
    let claims = shared::http::extract::jwt_claims(request.extensions());
    let Some(claims) = claims else { return };
    if let Some(caller) = caller_from_claims(&claims, &ClaimNames::default()) {
        if !valid_user_id(&caller.user_id) {
            panic!("caller {:?} from claims {claims:?}", caller.user_id);
        }
        if caller
            .tenant_id
            .as_deref()
            .is_some_and(|t| !valid_tenant_id(t))
        {
            panic!("tenant {:?} from claims {claims:?}", caller.tenant_id);
        }
        if caller.is_tenant_admin && caller.tenant_id.is_none() {
            panic!("a tenant admin without a tenant from {claims:?}");
        }
    }
}

/// lambda_http 1.3 builds the request URI with `Url::parse(..).unwrap()` from the `host`
/// header (else `domainName`) and `x-forwarded-proto`, so an event whose host is not a
/// host name panics inside it (this target found `"domainName": "api.exampl%.com"`;
/// lambda_runtime's panic layer turns that into a failed invocation, a 500, and the
/// process lives). API Gateway only sends its own domain and sets the scheme itself, so
/// (and its stage names are `$default` or letters, digits, `-`, `_`), so the target
/// fuzzes the events it can send. The same goes for a body flagged
/// `isBase64Encoded` that is not base64 (`Body::from_maybe_encoded` panics): API Gateway
/// does the encoding. And a `rawPath` or `rawQueryString` with a character `http::Uri`
/// refuses panics in the request builder; whether API Gateway forwards such a request
/// line could not be checked offline, so the gateway's notes name it as an open item.
fn as_api_gateway_sends(event: &LambdaRequest) -> bool {
    let LambdaRequest::ApiGatewayV2(e) = event else {
        return false;
    };
    let hostname = |h: &str| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
            && url::Url::parse(&format!("https://{h}/")).is_ok()
    };
    let stage = e.request_context.stage.as_deref().is_none_or(|s| {
        s == "$default"
            || s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    });
    let host = e
        .headers
        .get(http::header::HOST)
        .map(|h| h.to_str().map(hostname));
    let proto = e
        .headers
        .get("x-forwarded-proto")
        .map(|p| p.as_bytes() == b"https");
    stage
        && host.unwrap_or(Ok(true)).unwrap_or(false)
        && e.request_context
            .domain_name
            .as_deref()
            .is_none_or(hostname)
        && proto.unwrap_or(true)
        && format!(
            "{}?{}",
            e.raw_path.as_deref().unwrap_or("/"),
            e.raw_query_string.as_deref().unwrap_or("")
        )
        .parse::<http::uri::PathAndQuery>()
        .is_ok()
        && (!e.is_base64_encoded || e.body.as_deref().is_none_or(|b| STANDARD.decode(b).is_ok()))
}

//! Embeddings in OpenAI's wire format (`POST {base}/embeddings`), which OpenAI and the
//! OpenAI-compatible family share: the request the gateway sends, the answer it reads.
//! Vectors are passed through as the provider sent them (a list of floats, or a base64
//! string when the caller asked for `encoding_format: "base64"`, as the official SDKs
//! do by default), so the gateway never re-encodes a float.

use super::{ErrorKind, ProviderError, RateLimitState};
use serde::Deserialize;
use serde_json::{Value, json};

/// What a caller asked to embed, as the provider is sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedRequest {
    pub model: String,
    pub input: Vec<String>,
    pub encoding_format: Option<String>,
    pub dimensions: Option<u32>,
}

/// The provider's answer: one vector per input, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Value>,
    pub model: String,
    pub prompt_tokens: u64,
    pub rate_limit: Option<RateLimitState>,
}

/// The body of OpenAI's `POST /v1/embeddings`. `input` is always a list (one string is
/// a list of one): OpenAI documents both and answers the same shape. The caller's `user`
/// is not forwarded: the gateway's user is the token's.
pub fn body(request: &EmbedRequest) -> Value {
    let mut body = json!({"model": request.model, "input": request.input});
    if let Some(f) = &request.encoding_format {
        body["encoding_format"] = json!(f);
    }
    if let Some(d) = request.dimensions {
        body["dimensions"] = json!(d);
    }
    body
}

#[derive(Deserialize)]
struct Answer {
    data: Vec<Item>,
    #[serde(default)]
    model: String,
    usage: Usage,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Value,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u64,
}

/// Reads a 2xx answer: exactly one vector per input, whatever order the items came in.
pub fn parse(label: &str, body: &[u8], inputs: usize) -> Result<Embeddings, ProviderError> {
    let bad = |why: &str| {
        ProviderError::new(
            ErrorKind::ServerError,
            format!("{label} sent an unreadable embeddings answer: {why}"),
        )
    };
    let answer: Answer = serde_json::from_slice(body).map_err(|e| bad(&e.to_string()))?;
    let mut vectors = vec![Value::Null; inputs];
    for item in answer.data {
        let slot = vectors
            .get_mut(item.index)
            .ok_or_else(|| bad("an index beyond the inputs"))?;
        if !slot.is_null() || !(item.embedding.is_array() || item.embedding.is_string()) {
            return Err(bad("a repeated index or a malformed vector"));
        }
        *slot = item.embedding;
    }
    if vectors.iter().any(Value::is_null) {
        return Err(bad("fewer vectors than inputs"));
    }
    Ok(Embeddings {
        vectors,
        model: answer.model,
        prompt_tokens: answer.usage.prompt_tokens,
        rate_limit: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_openais_and_drops_what_was_not_asked() {
        let mut r = EmbedRequest {
            model: "text-embedding-3-small".into(),
            input: vec!["a".into(), "b".into()],
            encoding_format: None,
            dimensions: None,
        };
        assert_eq!(
            body(&r),
            json!({"model": "text-embedding-3-small", "input": ["a", "b"]})
        );
        r.encoding_format = Some("base64".into());
        r.dimensions = Some(256);
        assert_eq!(
            body(&r),
            json!({"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 256})
        );
    }

    #[test]
    fn openais_documented_answer_parses_in_index_order() {
        // OpenAI's example answer, with a second item sent first.
        let answer = br#"{"object": "list", "data": [
            {"object": "embedding", "embedding": [0.5, -0.25], "index": 1},
            {"object": "embedding", "embedding": [0.0023064255, -0.009327292], "index": 0}
          ], "model": "text-embedding-ada-002",
          "usage": {"prompt_tokens": 8, "total_tokens": 8}}"#;
        let e = parse("openai", answer, 2).unwrap();
        assert_eq!(e.vectors[0], json!([0.0023064255, -0.009327292]));
        assert_eq!(e.vectors[1], json!([0.5, -0.25]));
        assert_eq!(e.prompt_tokens, 8);
        assert_eq!(e.model, "text-embedding-ada-002");
    }

    #[test]
    fn a_missing_or_repeated_vector_is_an_upstream_fault() {
        let one = br#"{"data": [{"embedding": [1.0], "index": 0}], "usage": {"prompt_tokens": 1}}"#;
        assert_eq!(
            parse("openai", one, 2).unwrap_err().kind,
            ErrorKind::ServerError
        );
        let twice = br#"{"data": [{"embedding": [1.0], "index": 0}, {"embedding": [1.0], "index": 0}], "usage": {"prompt_tokens": 1}}"#;
        assert!(parse("openai", twice, 2).is_err());
        let beyond =
            br#"{"data": [{"embedding": [1.0], "index": 3}], "usage": {"prompt_tokens": 1}}"#;
        assert!(parse("openai", beyond, 1).is_err());
    }
}

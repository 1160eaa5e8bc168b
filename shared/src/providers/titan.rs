//! Amazon Titan Text Embeddings V2 on Bedrock, through `InvokeModel` (Converse has no
//! embeddings): one input per call, body `{"inputText", "dimensions"}`, answer
//! `{"embedding": [...], "inputTextTokenCount"}` (AWS's Titan embeddings reference).
//! Titan reports its own token count, so the cost is exact. It answers floats only: a
//! caller asking for `base64` (the OpenAI SDKs' default) gets OpenAI's encoding of the
//! same vector, little-endian float32s.

use super::embed::{EmbedRequest, Embeddings};
use super::{ErrorKind, ProviderError};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

/// The output sizes Titan V2 offers (1024 when none is asked).
const DIMENSIONS: [u32; 3] = [256, 512, 1024];

/// The body of one `InvokeModel` call.
pub fn body(input: &str, dimensions: Option<u32>) -> Result<Value, ProviderError> {
    let mut body = json!({"inputText": input});
    if let Some(d) = dimensions {
        if !DIMENSIONS.contains(&d) {
            return Err(ProviderError::new(
                ErrorKind::InvalidRequest,
                "bedrock titan embeddings take dimensions 256, 512 or 1024",
            ));
        }
        body["dimensions"] = json!(d);
    }
    Ok(body)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    embedding: Vec<f64>,
    input_text_token_count: u64,
}

/// One answer: its vector (encoded as asked) and its token count.
pub fn parse(body: &[u8], encoding: Option<&str>) -> Result<(Value, u64), ProviderError> {
    let answer: Answer = serde_json::from_slice(body).map_err(|e| {
        ProviderError::new(
            ErrorKind::ServerError,
            format!("bedrock sent an unreadable titan embeddings answer: {e}"),
        )
    })?;
    let vector = match encoding {
        Some("base64") => {
            let mut bytes = Vec::with_capacity(answer.embedding.len() * 4);
            for x in &answer.embedding {
                // Titan's values are float32s written as decimals: narrowing gives back
                // the exact float the model produced.
                #[allow(clippy::cast_possible_truncation)]
                let narrow = *x as f32;
                bytes.extend_from_slice(&narrow.to_le_bytes());
            }
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        _ => json!(answer.embedding),
    };
    Ok((vector, answer.input_text_token_count))
}

impl super::bedrock::Bedrock {
    /// Embeds every input, one `InvokeModel` each, in order; the token counts add up.
    pub async fn embed(
        &self,
        key: Option<&crate::secret::ApiKey>,
        request: &EmbedRequest,
    ) -> Result<Embeddings, ProviderError> {
        let client = self.client(key)?;
        let mut vectors = Vec::with_capacity(request.input.len());
        let mut tokens = 0u64;
        for input in &request.input {
            let payload = serde_json::to_vec(&body(input, request.dimensions)?)
                .map_err(|e| ProviderError::new(ErrorKind::InvalidRequest, e.to_string()))?;
            let out = client
                .invoke_model()
                .model_id(&request.model)
                .content_type("application/json")
                .accept("application/json")
                .body(aws_smithy_types::Blob::new(payload))
                .send()
                .await
                .map_err(super::bedrock::classify)?;
            let (vector, n) = parse(out.body().as_ref(), request.encoding_format.as_deref())?;
            vectors.push(vector);
            tokens = tokens.saturating_add(n);
        }
        Ok(Embeddings {
            vectors,
            model: request.model.clone(),
            prompt_tokens: tokens,
            rate_limit: None,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_body_takes_titans_sizes_only() {
        assert_eq!(body("hi", None).unwrap(), json!({"inputText": "hi"}));
        assert_eq!(
            body("hi", Some(256)).unwrap(),
            json!({"inputText": "hi", "dimensions": 256})
        );
        assert_eq!(
            body("hi", Some(300)).unwrap_err().kind,
            ErrorKind::InvalidRequest
        );
    }

    #[test]
    fn titans_documented_answer_parses_as_floats_or_base64() {
        let answer = br#"{"embedding": [0.5, -0.25, 0.125], "inputTextTokenCount": 7,
            "embeddingsByType": {"float": [0.5, -0.25, 0.125]}}"#;
        let (v, n) = parse(answer, None).unwrap();
        assert_eq!((v, n), (json!([0.5, -0.25, 0.125]), 7));
        let (v, _) = parse(answer, Some("base64")).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        let floats: Vec<f32> = bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(floats, [0.5, -0.25, 0.125]);
        assert_eq!(parse(b"{}", None).unwrap_err().kind, ErrorKind::ServerError);
    }
}

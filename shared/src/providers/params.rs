//! The sampling parameters beyond `temperature` and `max_tokens`, and which provider's
//! wire format can carry each. The gateway refuses (or, when asked, drops) a parameter
//! the chosen provider would otherwise ignore, so a caller never believes a `seed` was
//! honoured when it was not.

use super::ChatRequest;
use crate::provider::Provider;

/// At most this many stop sequences (OpenAI's limit).
pub const MAX_STOP: usize = 4;
/// At most this many bytes per stop sequence.
pub const MAX_STOP_BYTES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    TopP,
    Stop,
    Seed,
    PresencePenalty,
    FrequencyPenalty,
}

impl Param {
    pub const ALL: [Param; 5] = [
        Param::TopP,
        Param::Stop,
        Param::Seed,
        Param::PresencePenalty,
        Param::FrequencyPenalty,
    ];

    /// The name in OpenAI's Chat Completions API (what the refusal and the dropped
    /// header name).
    pub fn name(self) -> &'static str {
        match self {
            Param::TopP => "top_p",
            Param::Stop => "stop",
            Param::Seed => "seed",
            Param::PresencePenalty => "presence_penalty",
            Param::FrequencyPenalty => "frequency_penalty",
        }
    }

    /// The name in `POST /api/llm-generate`'s camelCase body.
    pub fn camel(self) -> &'static str {
        match self {
            Param::TopP => "topP",
            Param::Stop => "stop",
            Param::Seed => "seed",
            Param::PresencePenalty => "presencePenalty",
            Param::FrequencyPenalty => "frequencyPenalty",
        }
    }

    /// Whether `provider`'s API has a field for it. Anthropic's Messages API and
    /// Bedrock's Converse API have nucleus sampling and stop sequences only.
    pub fn honoured_by(self, provider: Provider) -> bool {
        match provider {
            Provider::Anthropic | Provider::Bedrock => matches!(self, Param::TopP | Param::Stop),
            Provider::OpenAi
            | Provider::Google
            | Provider::AzureOpenAi
            | Provider::Groq
            | Provider::OpenRouter
            | Provider::Fireworks
            | Provider::Mistral
            | Provider::DeepSeek
            | Provider::Together
            | Provider::Ollama => true,
        }
    }

    fn set_in(self, req: &ChatRequest) -> bool {
        match self {
            Param::TopP => req.top_p.is_some(),
            Param::Stop => !req.stop.is_empty(),
            Param::Seed => req.seed.is_some(),
            Param::PresencePenalty => req.presence_penalty.is_some(),
            Param::FrequencyPenalty => req.frequency_penalty.is_some(),
        }
    }

    fn clear(self, req: &mut ChatRequest) {
        match self {
            Param::TopP => req.top_p = None,
            Param::Stop => req.stop.clear(),
            Param::Seed => req.seed = None,
            Param::PresencePenalty => req.presence_penalty = None,
            Param::FrequencyPenalty => req.frequency_penalty = None,
        }
    }
}

/// The parameters `req` sets that `provider` cannot honour, in a fixed order.
pub fn unhonoured(provider: Provider, req: &ChatRequest) -> Vec<Param> {
    Param::ALL
        .into_iter()
        .filter(|p| p.set_in(req) && !p.honoured_by(provider))
        .collect()
}

/// Removes the parameters `provider` cannot honour; returns what was removed.
pub fn drop_unhonoured(provider: Provider, req: &mut ChatRequest) -> Vec<Param> {
    let dropped = unhonoured(provider, req);
    for p in &dropped {
        p.clear(req);
    }
    dropped
}

/// `stop` as OpenAI takes it: one string or a list.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

/// The sampling parameters as a caller gave them, before any provider is chosen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
}

impl Sampling {
    /// Checks the ranges; on failure, the parameter and why (never the value itself).
    pub fn validate(&self) -> Result<(), (Param, String)> {
        if self.top_p.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return Err((Param::TopP, "must be between 0 and 1".into()));
        }
        for (param, v) in [
            (Param::PresencePenalty, self.presence_penalty),
            (Param::FrequencyPenalty, self.frequency_penalty),
        ] {
            if v.is_some_and(|v| !(-2.0..=2.0).contains(&v)) {
                return Err((param, "must be between -2 and 2".into()));
            }
        }
        if self.stop.len() > MAX_STOP
            || self
                .stop
                .iter()
                .any(|s| s.is_empty() || s.len() > MAX_STOP_BYTES)
        {
            return Err((
                Param::Stop,
                format!("at most {MAX_STOP} sequences, each 1 to {MAX_STOP_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_and_bedrock_refuse_seed_and_penalties_only() {
        let req = ChatRequest {
            top_p: Some(0.5),
            stop: vec!["END".into()],
            seed: Some(7),
            presence_penalty: Some(0.1),
            frequency_penalty: Some(0.2),
            ..ChatRequest::default()
        };
        for p in [Provider::Anthropic, Provider::Bedrock] {
            assert_eq!(
                unhonoured(p, &req),
                [Param::Seed, Param::PresencePenalty, Param::FrequencyPenalty]
            );
        }
        for p in [
            Provider::OpenAi,
            Provider::Google,
            Provider::AzureOpenAi,
            Provider::Groq,
        ] {
            assert!(unhonoured(p, &req).is_empty());
        }
        let mut dropped = req.clone();
        drop_unhonoured(Provider::Anthropic, &mut dropped);
        assert_eq!(dropped.seed, None);
        assert_eq!(dropped.presence_penalty, None);
        assert_eq!(dropped.top_p, Some(0.5));
        assert_eq!(dropped.stop, ["END"]);
        assert!(unhonoured(Provider::Anthropic, &ChatRequest::default()).is_empty());
    }

    #[test]
    fn ranges() {
        let ok = Sampling {
            top_p: Some(1.0),
            stop: vec!["a".into(); 4],
            seed: Some(i64::MIN),
            presence_penalty: Some(-2.0),
            frequency_penalty: Some(2.0),
        };
        assert!(ok.validate().is_ok());
        let bad = [
            (
                Sampling {
                    top_p: Some(1.5),
                    ..Sampling::default()
                },
                Param::TopP,
            ),
            (
                Sampling {
                    presence_penalty: Some(-2.1),
                    ..Sampling::default()
                },
                Param::PresencePenalty,
            ),
            (
                Sampling {
                    frequency_penalty: Some(3.0),
                    ..Sampling::default()
                },
                Param::FrequencyPenalty,
            ),
            (
                Sampling {
                    stop: vec!["a".into(); 5],
                    ..Sampling::default()
                },
                Param::Stop,
            ),
            (
                Sampling {
                    stop: vec!["x".repeat(257)],
                    ..Sampling::default()
                },
                Param::Stop,
            ),
        ];
        for (s, p) in bad {
            assert_eq!(s.validate().unwrap_err().0, p);
        }
    }
}

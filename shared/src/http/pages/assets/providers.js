// Display names of the built-in providers; an unknown id is shown as it is.
const NAMES = {
  anthropic: 'Anthropic',
  openai: 'OpenAI',
  google: 'Google',
  bedrock: 'Bedrock',
  azure_openai: 'Azure OpenAI',
  groq: 'Groq',
  mistral: 'Mistral',
  together: 'Together',
  fireworks: 'Fireworks',
  deepseek: 'DeepSeek',
  openrouter: 'OpenRouter',
  ollama: 'Ollama',
};

export function providerName(id) {
  return NAMES[id] || id;
}

/** What each provider's key looks like, as a placeholder. */
export const KEY_SHAPES = {
  anthropic: 'sk-ant-…',
  openai: 'sk-…',
  google: 'AIza…',
  bedrock: '<access key id>:<secret access key>',
  groq: 'gsk_…',
  deepseek: 'sk-…',
  openrouter: 'sk-or-…',
  fireworks: 'fw_…',
};

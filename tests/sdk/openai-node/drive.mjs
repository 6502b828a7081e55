// Drives flowstream's OpenAI-compatible routes with the unchanged `openai` npm SDK.
// Usage: node drive.mjs <base_url> <api_key> <model> <question>
// Prints one JSON object: what each call of each API answered, blocking and streaming.
import OpenAI from "openai";

const [baseURL, apiKey, model, question] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });
const result = {};

const completion = await client.chat.completions.create({
  model,
  messages: [
    { role: "system", content: "Be brief." },
    { role: "user", content: question },
  ],
});
result.chatBlocking = {
  object: completion.object,
  text: completion.choices[0].message.content,
  finishReason: completion.choices[0].finish_reason,
  usage: completion.usage,
};

const chunks = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: question }],
  stream: true,
  stream_options: { include_usage: true },
});
const deltas = [];
let finishReason = null;
let usage = null;
for await (const chunk of chunks) {
  for (const choice of chunk.choices) {
    if (choice.delta.content) deltas.push(choice.delta.content);
    if (choice.finish_reason) finishReason = choice.finish_reason;
  }
  if (chunk.usage) usage = chunk.usage;
}
result.chatStreaming = { deltas, finishReason, usage };

const response = await client.responses.create({ model, input: question });
result.responsesBlocking = {
  object: response.object,
  status: response.status,
  text: response.output_text,
  usage: response.usage,
};

const events = await client.responses.create({ model, input: question, stream: true });
const types = [];
const textDeltas = [];
let completed = null;
for await (const event of events) {
  types.push(event.type);
  if (event.type === "response.output_text.delta") textDeltas.push(event.delta);
  if (event.type === "response.completed") completed = event.response;
}
result.responsesStreaming = {
  types,
  deltas: textDeltas,
  status: completed?.status,
  usage: completed?.usage,
};

try {
  await client.chat.completions.create({
    model: "no-such-workflow-model",
    messages: [{ role: "user", content: question }],
  });
  result.missingModel = { status: null };
} catch (error) {
  result.missingModel = { status: error.status, code: error.code, message: error.message };
}

process.stdout.write(JSON.stringify(result));

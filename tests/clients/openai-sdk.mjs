// Drives the real OpenAI SDK through the proxy, as an agent would (OPENAI_BASE_URL, OPENAI_API_KEY = the client token),
// with the organization header an SDK sends when configured (OPENAI_ORG_ID). Prints one JSON line per observation.
import OpenAI from 'openai';

const scenario = process.argv[2];
const client = new OpenAI();
const say = (what) => console.log(JSON.stringify(what));
const messages = [{ role: 'user', content: 'Say hello.' }];

async function attempt(label, run) {
  const started = performance.now();
  try {
    say({ label, ok: true, ...(await run()), ms: Math.round(performance.now() - started) });
  } catch (error) {
    say({ label, ok: false, status: error.status ?? null, message: error.error?.message ?? error.message, ms: Math.round(performance.now() - started) });
  }
}

switch (scenario) {
  case 'all':
    await attempt('chat', async () => {
      const { data, response } = await client.chat.completions.create({ model: 'gpt-4o', messages }).withResponse();
      return { text: data.choices[0].message.content, key: response.headers.get('x-afp-key') };
    });
    await attempt('chat-stream', async () => {
      let text = '';
      let chunks = 0;
      let usage = 0;
      for await (const chunk of await client.chat.completions.create({ model: 'gpt-4o', messages, stream: true })) {
        chunks++;
        if (chunk.choices.length === 0 || 'usage' in chunk) usage++;
        text += chunk.choices[0]?.delta?.content ?? '';
      }
      return { text, chunks, usage };
    });
    await attempt('chat-stream-usage', async () => {
      let text = '';
      let chunks = 0;
      let usage = null;
      const options = { model: 'gpt-4o', messages, stream: true, stream_options: { include_usage: true } };
      for await (const chunk of await client.chat.completions.create(options)) {
        chunks++;
        usage = chunk.usage ?? usage;
        text += chunk.choices[0]?.delta?.content ?? '';
      }
      return { text, chunks, usage };
    });
    await attempt('responses-stream', async () => {
      let text = '';
      const types = [];
      for await (const event of await client.responses.create({ model: 'gpt-4o', input: 'Say hello.', stream: true })) {
        types.push(event.type);
        if (event.type === 'response.output_text.delta') text += event.delta;
      }
      return { text, last: types.at(-1) };
    });
    await attempt('embeddings', async () => ({ dimensions: (await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' })).data[0].embedding.length }));
    await attempt('models', async () => {
      const ids = [];
      for await (const model of client.models.list()) ids.push(model.id);
      return { models: ids };
    });
    break;
  default:
    throw new Error(`unknown scenario ${scenario}`);
}

process.exit(0);

// Drives the real Anthropic TypeScript SDK through the proxy, one scenario per run, as an agent would.
// Reads ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY (the client token) like any agent; prints one JSON line per observation
// on stdout, and reads a line on stdin wherever the test changes the world in the middle (a key revoked mid-session).
import Anthropic from '@anthropic-ai/sdk';
import { createInterface } from 'node:readline';

const scenario = process.argv[2];
const client = new Anthropic(); // defaults: the SDK's own retries (2) and timeouts, as agents run it
const say = (what) => console.log(JSON.stringify(what));
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const waitForTest = async (label) => { say({ waiting: label }); await lines.next(); };
const request = { model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Say hello.' }] };

async function call(label) {
  const started = performance.now();
  try {
    const { data, response } = await client.messages.create(request).withResponse();
    say({ label, ok: true, text: data.content.map((b) => b.text).join(''), key: response.headers.get('x-afp-key'), ms: Math.round(performance.now() - started) });
  } catch (error) {
    say({ label, ok: false, status: error.status ?? null, type: error.constructor.name, message: error.error?.error?.message ?? error.message, requestId: error.requestID ?? null, ms: Math.round(performance.now() - started) });
  }
}

switch (scenario) {
  case 'plain':
    await call('plain');
    break;
  case 'stream': {
    // One line per event as it arrives: the test releases the next event only after it sees this one.
    const stream = client.messages.stream(request);
    let index = 0;
    for await (const event of stream) say({ event: index++, type: event.type });
    say({ text: (await stream.finalMessage()).content.map((b) => b.text).join('') });
    break;
  }
  case 'count-tokens':
    say({ inputTokens: (await client.messages.countTokens({ model: request.model, messages: request.messages })).input_tokens });
    break;
  case 'models': {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    say({ models: ids });
    break;
  }
  case 'revoked-mid-session':
    await call('before');
    await waitForTest('revoke the primary');
    await call('after');
    await call('again');
    break;
  case 'every-key-revoked':
  case 'wrong-token':
    await call(scenario);
    break;
  default:
    throw new Error(`unknown scenario ${scenario}`);
}

process.exit(0);

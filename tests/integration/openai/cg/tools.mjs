// Tool calling through the openai SDK on the Qwen3 (Hermes) and Llama 3.1
// templates and on the ChatML fallback (generic JSON envelope): forced
// calls, named calls, streaming deltas, a full two-turn loop, runTools.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { client, weatherTool, timeTool, checkCall, ask } from './common.mjs';

for (const model of ['qwen3', 'llama', 'plain']) {
  test(`${model}: tool_choice required forces a valid call`, async () => {
    const r = await client.chat.completions.create({ model, messages: ask, tools: [weatherTool, timeTool], tool_choice: 'required', parallel_tool_calls: false, max_tokens: 600, seed: 1 });
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(c.message));
    assert.equal(c.message.tool_calls.length, 1);
    assert.equal(c.message.content, null);
    checkCall(c.message.tool_calls[0], c.message.tool_calls[0].function.name);
    // parallel calls allowed: every complete call is valid, ids unique (a
    // random model may go on calling until max_tokens)
    const p = await client.chat.completions.create({ model, messages: ask, tools: [weatherTool, timeTool], tool_choice: 'required', max_tokens: 400, seed: 2 });
    const pc = p.choices[0];
    assert.ok(['tool_calls', 'length'].includes(pc.finish_reason));
    const calls = pc.message.tool_calls ?? [];
    if (pc.finish_reason === 'tool_calls') assert.ok(calls.length >= 1);
    // cut by max_tokens, the last call keeps its partial arguments (as OpenAI)
    const complete = pc.finish_reason === 'length' ? calls.slice(0, -1) : calls;
    for (const call of complete) checkCall(call, call.function.name);
    assert.equal(new Set(calls.map((t) => t.id)).size, calls.length, 'ids are unique');
  });

  test(`${model}: a named function, one call without parallel_tool_calls`, async () => {
    const r = await client.chat.completions.create({ model, messages: ask, tools: [weatherTool, timeTool], tool_choice: { type: 'function', function: { name: 'get_time' } }, parallel_tool_calls: false, max_tokens: 600, n: 2 });
    for (const c of r.choices) {
      assert.equal(c.finish_reason, 'tool_calls');
      assert.equal(c.message.tool_calls.length, 1);
      checkCall(c.message.tool_calls[0], 'get_time');
    }
  });
}

for (const model of ['qwen3', 'llama']) {
  test(`${model}: streamed tool calls: id, type, name first, then argument fragments; no markup in content`, async () => {
    const stream = await client.chat.completions.create({ model, messages: ask, tools: [weatherTool], tool_choice: 'required', parallel_tool_calls: false, max_tokens: 600, stream: true, temperature: 0 });
    const calls = [];
    let content = '', finish = null;
    for await (const ch of stream) {
      const c = ch.choices[0];
      if (!c) continue;
      content += c.delta?.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
      for (const d of c.delta?.tool_calls ?? []) {
        if (!calls[d.index]) {
          assert.match(d.id, /^call_/);
          assert.equal(d.type, 'function');
          assert.equal(d.function.name, 'get_weather');
          calls[d.index] = { id: d.id, args: d.function.arguments ?? '' };
        } else {
          assert.equal(d.id, undefined);
          calls[d.index].args += d.function?.arguments ?? '';
        }
      }
    }
    assert.equal(finish, 'tool_calls');
    assert.ok(calls.length >= 1);
    for (const c of calls) checkCall({ id: c.id, type: 'function', function: { name: 'get_weather', arguments: c.args } }, 'get_weather');
    assert.ok(!/tool_call|"name"/.test(content), `markup leaked into content: ${content}`);
    // the same request, not streamed, gives the same calls (greedy)
    const r = await client.chat.completions.create({ model, messages: ask, tools: [weatherTool], tool_choice: 'required', parallel_tool_calls: false, max_tokens: 600, temperature: 0 });
    assert.deepEqual(r.choices[0].message.tool_calls.map((t) => JSON.parse(t.function.arguments)), calls.map((c) => JSON.parse(c.args)));
  });

  test(`${model}: a full two-turn tool loop`, async () => {
    const first = await client.chat.completions.create({ model, messages: ask, tools: [weatherTool], tool_choice: 'required', parallel_tool_calls: false, max_tokens: 600 });
    const msg = first.choices[0].message;
    assert.ok(msg.tool_calls.length >= 1);
    const messages = [...ask, msg];
    for (const call of msg.tool_calls) messages.push({ role: 'tool', tool_call_id: call.id, content: JSON.stringify({ temp: 21, sky: 'clear' }) });
    assert.equal(messages[1].content, null, 'the SDK sends content null back');
    const second = await client.chat.completions.create({ model, messages, tools: [weatherTool], max_tokens: 16 });
    const c = second.choices[0];
    assert.ok(['stop', 'length', 'tool_calls'].includes(c.finish_reason));
    if (c.finish_reason !== 'tool_calls') assert.equal(typeof c.message.content, 'string');
    // tool_choice none: tools are shown to the model, nothing is parsed
    const none = await client.chat.completions.create({ model, messages, tools: [weatherTool], tool_choice: 'none', max_tokens: 16 });
    assert.equal(none.choices[0].message.tool_calls, undefined);
    assert.notEqual(none.choices[0].finish_reason, 'tool_calls');
  });
}

test('runTools calls the function with parsed arguments and sends the result back', async () => {
  const seen = [];
  const runner = client.chat.completions.runTools({
    model: 'qwen3', messages: ask, max_tokens: 600, parallel_tool_calls: false,
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
    tools: [{
      type: 'function',
      function: {
        name: 'get_weather', description: weatherTool.function.description, parameters: weatherTool.function.parameters,
        parse: JSON.parse,
        function: (args) => { seen.push(args); return { temp: 20 }; },
      },
    }],
  });
  await runner.done();
  assert.equal(seen.length, 1);
  assert.ok(['c', 'f'].includes(seen[0].unit));
  const toolMsgs = runner.messages.filter((m) => m.role === 'tool');
  assert.equal(toolMsgs.length, 1);
  assert.equal(JSON.parse(toolMsgs[0].content).temp, 20);
});

test('tool_choice auto: output is content or well-formed calls, never broken markup', async () => {
  for (const model of ['qwen3', 'llama']) {
    const r = await client.chat.completions.create({ model, messages: ask, tools: [weatherTool], max_tokens: 60, n: 4, seed: 9 });
    for (const c of r.choices) {
      if (c.finish_reason === 'tool_calls') for (const call of c.message.tool_calls) checkCall(call, 'get_weather');
      else assert.equal(c.message.tool_calls, undefined);
    }
  }
});

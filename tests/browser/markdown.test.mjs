// markdown.test.mjs - the playground's Markdown renderer
// (console/markdown.js) is safe and renders what it claims: no model text
// ever becomes markup, links keep only http(s)/mailto targets, code
// blocks (also an unterminated one, mid-stream) keep their text verbatim.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderMarkdown } from '../../console/markdown.js';

test('HTML in the text is escaped, never markup', () => {
  const h = renderMarkdown('<script>alert(1)</script> <img src=x onerror=alert(1)> "q" \'s\'');
  assert.ok(!h.includes('<script') && !h.includes('<img'), h);
  assert.match(h, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  assert.match(h, /&quot;q&quot; &#39;s&#39;/);
});

test('links: http(s) and mailto only, opened without referrer; javascript: and data: become text', () => {
  assert.equal(renderMarkdown('[a](https://x.org/?a=1&b=2)'),
    '<p><a href="https://x.org/?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">a</a></p>');
  assert.equal(renderMarkdown('[a](javascript:alert(1))'), '<p>a)</p>');
  assert.equal(renderMarkdown('[b](JavaScript:alert`1`)'), '<p>b</p>');
  assert.equal(renderMarkdown('[c](data:text/html,hi)'), '<p>c</p>');
  assert.ok(!renderMarkdown('[x](" onmouseover="alert(1))').includes('onmouseover="'));
});

test('code blocks keep their text; emphasis, lists and headings render', () => {
  assert.equal(renderMarkdown('```js\nconst a = 1 < 2 && **b**;\n```'),
    '<pre class="code" data-lang="js"><span class="lang">js</span><code>const a = 1 &lt; 2 &amp;&amp; **b**;</code></pre>');
  // A fence still open (a stream in progress) runs to the end.
  assert.equal(renderMarkdown('x\n```\nopen'), '<p>x</p><pre class="code"><code>open</code></pre>');
  assert.equal(renderMarkdown('**bold** and *it* and `a*b*c`'), '<p><strong>bold</strong> and <em>it</em> and <code>a*b*c</code></p>');
  assert.equal(renderMarkdown('- one\n- two\n\n1. first\n2. second'), '<ul><li>one</li><li>two</li></ul><ol><li>first</li><li>second</li></ol>');
  assert.equal(renderMarkdown('# Title'), '<h3>Title</h3>');
  assert.equal(renderMarkdown('a\nb\n\nc'), '<p>a<br>b</p><p>c</p>');
  assert.equal(renderMarkdown('snake_case_name'), '<p>snake_case_name</p>');
});

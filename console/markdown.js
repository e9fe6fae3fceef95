// markdown.js - a small, safe Markdown renderer for the playground's
// streamed answers.
//
// Safety first: the source is HTML-escaped before anything else, so no
// tag or attribute of the model's text ever reaches the page; the only
// markup is what this file adds. Links keep only http(s): and mailto:
// targets (javascript:, data: and the rest become plain text) and open
// in a new tab without a referrer.
//
// Covered: fenced code blocks (``` with an optional language; an open
// fence at the end -- a stream in progress -- runs to the end), inline
// code, headings (# .. ####), bullet and numbered lists, block quotes,
// paragraphs, **bold**, *italic* / _italic_, [text](url). Not covered:
// tables, nested lists, images (shown as their link).

export function escapeHtml(s) {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const SAFE_URL = /^(https?:\/\/|mailto:)/i;

// Inline spans of one already-escaped line.
function inline(s) {
  const codes = [];
  // Inline code first, out of the way of emphasis (\u0000 never occurs in
  // escaped text, so the placeholders cannot be forged).
  s = s.replace(/`([^`]+)`/g, (_, c) => { codes.push(c); return `\u0000${codes.length - 1}\u0000`; });
  s = s.replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, (m, text, url) => {
    // url is escaped already (&amp; etc.): decode only to test the scheme.
    const plain = url.replace(/&amp;/g, '&').replace(/&#39;/g, "'").replace(/&quot;/g, '"');
    if (!SAFE_URL.test(plain.trim())) return text;
    return `<a href="${url}" target="_blank" rel="noopener noreferrer">${text}</a>`;
  });
  s = s.replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>');
  s = s.replace(/__([^_]+)__/g, '<strong>$1</strong>');
  s = s.replace(/(^|[^*])\*([^*\s][^*]*)\*/g, '$1<em>$2</em>');
  s = s.replace(/(^|[^\w_])_([^_\s][^_]*)_(?!\w)/g, '$1<em>$2</em>');
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => `<code>${codes[Number(i)]}</code>`);
}

// Markdown text -> HTML string (safe to assign to innerHTML).
export function renderMarkdown(src) {
  const lines = escapeHtml(String(src ?? '')).split('\n');
  const out = [];
  let para = [];
  let list = null; // 'ul' | 'ol'
  const flushPara = () => {
    if (para.length) out.push(`<p>${para.map(inline).join('<br>')}</p>`);
    para = [];
  };
  const closeList = () => {
    if (list) out.push(`</${list}>`);
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^\s*```\s*([\w+#.-]*)\s*$/);
    if (fence) {
      flushPara();
      closeList();
      const code = [];
      i++;
      while (i < lines.length && !/^\s*```\s*$/.test(lines[i])) code.push(lines[i++]);
      const lang = fence[1] ? ` data-lang="${fence[1]}"` : '';
      const label = fence[1] ? `<span class="lang">${fence[1]}</span>` : '';
      out.push(`<pre class="code"${lang}>${label}<code>${code.join('\n')}</code></pre>`);
      continue;
    }
    const h = line.match(/^(#{1,4})\s+(.*)$/);
    const ul = line.match(/^\s*[-*+]\s+(.*)$/);
    const ol = line.match(/^\s*\d+[.)]\s+(.*)$/);
    const bq = line.match(/^&gt;\s?(.*)$/);
    if (h) {
      flushPara();
      closeList();
      const n = h[1].length + 2; // # -> h3: the page has its own h1/h2
      out.push(`<h${Math.min(n, 6)}>${inline(h[2])}</h${Math.min(n, 6)}>`);
    } else if (ul || ol) {
      flushPara();
      const kind = ul ? 'ul' : 'ol';
      if (list !== kind) { closeList(); out.push(`<${kind}>`); list = kind; }
      out.push(`<li>${inline((ul || ol)[1])}</li>`);
    } else if (bq) {
      flushPara();
      closeList();
      out.push(`<blockquote>${inline(bq[1])}</blockquote>`);
    } else if (!line.trim()) {
      flushPara();
      closeList();
    } else {
      closeList();
      para.push(line);
    }
  }
  flushPara();
  closeList();
  return out.join('');
}

// A small Markdown renderer for replies: the text is HTML-escaped first, so model output and
// cards can never inject markup; only the tags made here reach the page.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

function inline(escaped) {
  const codes = [];
  let s = escaped.replace(/`([^`\n]+)`/g, (_, code) => {
    codes.push(code);
    return `\u0000${codes.length - 1}\u0000`;
  });
  s = s
    .replace(/\*\*([^*\n]+?)\*\*/g, "<strong>$1</strong>")
    .replace(/__([^_\n]+?)__/g, "<strong>$1</strong>")
    .replace(/(^|[^*\w])\*([^*\s](?:[^*\n]*?[^*\s])?)\*(?!\*)/g, '$1<em class="action">$2</em>')
    .replace(/(^|[^_\w])_([^_\s](?:[^_\n]*?[^_\s])?)_(?![_\w])/g, "$1<em>$2</em>")
    .replace(/~~([^~\n]+?)~~/g, "<del>$1</del>")
    .replace(/(&quot;|“)([^\n]*?)(&quot;|”)/g, '<span class="speech">$1$2$3</span>')
    .replace(/\bhttps?:\/\/[^\s<]+[^\s<.,;:!?)\]]/g,
      (url) => `<a href="${url}" target="_blank" rel="noopener noreferrer">${url}</a>`);
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => `<code>${codes[Number(i)]}</code>`);
}

/** Markdown (a safe subset) to HTML: paragraphs, line breaks, *actions*, bold, code, lists. */
export function renderMarkdown(text) {
  const blocks = [];
  const fenced = escapeHtml(text ?? "").replace(/```[^\n]*\n?([\s\S]*?)(```|$)/g, (_, code) => {
    blocks.push(`<pre><code>${code.replace(/\n$/, "")}</code></pre>`);
    return `\n\u0001${blocks.length - 1}\u0001\n`;
  });
  const out = [];
  let list = null;
  let para = [];
  const flushPara = () => {
    if (para.length) out.push(`<p>${para.map(inline).join("<br>")}</p>`);
    para = [];
  };
  const flushList = () => {
    if (list) out.push(`<${list.tag}>${list.items.map((i) => `<li>${inline(i)}</li>`).join("")}</${list.tag}>`);
    list = null;
  };
  for (const line of fenced.split("\n")) {
    const block = line.match(/^\u0001(\d+)\u0001$/);
    const bullet = line.match(/^\s*[-+] (.*)$/) || line.match(/^\s*\* (?!.*\*\s*$)(.*)$/);
    const numbered = line.match(/^\s*\d+[.)] (.*)$/);
    const heading = line.match(/^(#{1,6}) (.*)$/);
    const quote = line.match(/^&gt; ?(.*)$/);
    if (block) {
      flushPara(); flushList();
      out.push(blocks[Number(block[1])]);
    } else if (bullet || numbered) {
      flushPara();
      const tag = bullet ? "ul" : "ol";
      if (!list || list.tag !== tag) { flushList(); list = { tag, items: [] }; }
      list.items.push((bullet || numbered)[1]);
    } else if (heading) {
      flushPara(); flushList();
      const level = Math.min(heading[1].length + 2, 6);
      out.push(`<h${level}>${inline(heading[2])}</h${level}>`);
    } else if (quote) {
      flushPara(); flushList();
      out.push(`<blockquote>${inline(quote[1])}</blockquote>`);
    } else if (!line.trim()) {
      flushPara(); flushList();
    } else {
      flushList();
      para.push(line);
    }
  }
  flushPara(); flushList();
  return out.join("");
}

// The text an element holds, as a reader (or an editor's model) sees it — not `innerText`, which
// counts an empty paragraph of a contenteditable composer (`<div><br></div>`) as two or three
// line breaks, and leaves out emoji drawn as images.
//
// - every block (any element not displayed inline) is a line of its own; an empty one is an
//   empty line;
// - `<br>` breaks the line, except the placeholder `<br>` that only holds an empty line open
//   (nothing follows it in its block);
// - an image counts as its `alt` text; an element not displayed counts as nothing;
// - white space is kept where the element preserves it (`white-space: pre…`), else collapsed;
// - an element matching `links` (a link the site rewrote, e.g. to t.co) is given as
//   U+E000 + what it shows + U+E001, so that it can be compared with the link that was typed.
//
// Used by the engine to read back the composer and to read posts, and by the sandbox's composer
// to decide what it publishes, so both follow one model of a text. Called with `this` = root.
function (links) {
  const root = this;
  const lines = [''];
  let started = false;
  let needBreak = false;
  const inline = (el) => getComputedStyle(el).display.startsWith('inline');
  const add = (text) => {
    if (needBreak) {
      lines.push('');
      needBreak = false;
    }
    lines[lines.length - 1] += text;
    started = true;
  };
  const placeholder = (br) => {
    let block = br.parentNode;
    while (block !== root && inline(block)) block = block.parentNode;
    const after = document.createRange();
    after.setStartAfter(br);
    after.setEnd(block, block.childNodes.length);
    return after.toString() === '' && !after.cloneContents().querySelector('br, img');
  };
  const walk = (node) => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        const pre = getComputedStyle(node).whiteSpace.startsWith('pre')
          || getComputedStyle(node).whiteSpace === 'break-spaces';
        let text = pre ? child.data : child.data.replace(/\s+/g, ' ');
        // Collapsed white space at the start of a line is not shown.
        if (!pre && (needBreak || /(^| )$/.test(lines[lines.length - 1]))) {
          text = text.replace(/^ /, '');
        }
        if (text !== '') add(text);
        continue;
      }
      if (child.nodeType !== Node.ELEMENT_NODE) continue;
      if (getComputedStyle(child).display === 'none') continue;
      if (links && child.matches(links)) {
        add('\uE000' + child.innerText + '\uE001');
      } else if (child.nodeName === 'BR') {
        if (placeholder(child)) {
          if (needBreak) add('');
          started = true;
        } else {
          add('');
          lines.push('');
        }
      } else if (child.nodeName === 'IMG') {
        add(child.getAttribute('alt') || '');
      } else if (inline(child)) {
        walk(child);
      } else {
        if (started) needBreak = true;
        walk(child);
        if (started) needBreak = true;
      }
    }
  };
  walk(root);
  return lines.join('\n');
}

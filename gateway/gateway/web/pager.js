// Infinite scroll over the API's cursor pages: the next page loads as the list's end nears.

import { h } from "./dom.js";

/**
 * Fill `list` with `render(item)` (null: left out) for each item of `load(cursor)`'s pages
 * ({items, next_cursor}), a page at a time while its end is within a screen of the viewport.
 * Returns the element to place after the list and `stop()` for leaving the page.
 */
export function pager({ list, load, render, empty }) {
  let cursor = null;
  let done = false;
  let busy = false;
  let near = false;
  const status = h("p", { class: "pager-status" });
  const sentinel = h("div", { class: "sentinel", "aria-hidden": "true" });
  const footer = h("div", { class: "pager" }, status, sentinel);

  async function more() {
    if (busy || done) return;
    busy = true;
    status.replaceChildren("Loading…");
    try {
      const page = await load(cursor);
      list.append(...page.items.map(render).filter(Boolean));
      cursor = page.next_cursor;
      done = cursor === null;
      status.replaceChildren(done && list.children.length === 0 ? empty : "");
    } catch (error) {
      near = false;
      const retry = h("button", { type: "button", class: "link", onclick: more }, "Try again");
      status.replaceChildren(`${error.message} `, retry);
    } finally {
      busy = false;
    }
    if (near) more();
  }

  const watcher = new IntersectionObserver(
    (entries) => {
      near = entries.some((entry) => entry.isIntersecting);
      if (near) more();
    },
    { rootMargin: "0px 0px 100% 0px" },
  );
  watcher.observe(sentinel);
  return { footer, stop: () => watcher.disconnect() };
}

// The home feed: infinite scroll down, and its first page asked again every few seconds so
// new posts appear at the top and deleted ones leave, as the feed's 5-second bound allows.

import { api } from "../api.js";
import { h } from "../dom.js";
import { pager } from "../pager.js";
import { postCard } from "../postcard.js";

const REFRESH_MS = 2000;

const newer = (a, b) => BigInt(a) > BigInt(b);

export function feed(root, _params, page) {
  page.title("Home");
  const cards = new Map(); // post_id -> its article, in the page
  const posts = h("div", { class: "posts" });
  const render = (post) => {
    if (cards.has(post.post_id)) return null; // the refresh below showed it first
    const card = postCard(post);
    cards.set(post.post_id, card);
    return card;
  };
  const { footer, stop } = pager({
    list: posts,
    load: (cursor) => api("GET", "/api/feed", { params: cursor ? { cursor } : {} }),
    render,
    empty: h(
      "span",
      {},
      "Nothing here yet. Search for people to follow, or ",
      h("a", { href: "/new" }, "share a photo"),
      ".",
    ),
  });
  root.append(h("section", { "aria-label": "Feed", class: "feed" }, posts, footer));

  async function refresh() {
    if (document.hidden) return;
    const { items, next_cursor } = await api("GET", "/api/feed").catch(() => ({ items: null }));
    if (!items) return;
    const fresh = new Set(items.map((post) => post.post_id));
    // Shown posts within the fresh page's span that it no longer has were deleted (or
    // their author unfollowed); with no next page, the span reaches the end.
    const oldest = next_cursor === null ? "0" : (items.at(-1)?.post_id ?? "0");
    for (const [id, card] of cards) {
      if (!fresh.has(id) && !newer(oldest, id)) {
        card.remove();
        cards.delete(id);
      }
    }
    const top = posts.querySelector("article")?.dataset.postId ?? "0";
    const arrived = items.filter((post) => !cards.has(post.post_id) && newer(post.post_id, top));
    if (arrived.length) footer.querySelector(".pager-status").replaceChildren();
    posts.prepend(...arrived.map(render));
  }

  const timer = setInterval(refresh, REFRESH_MS);
  page.onLeave(() => {
    clearInterval(timer);
    stop();
  });
}

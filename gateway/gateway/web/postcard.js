// A post as an <article>: author, photos, Like, counts, caption and time.

import { api } from "./api.js";
import { placeholder } from "./blurhash.js";
import { h, icon, plural, toast, when } from "./dom.js";

const WIDTHS = ["small", "medium", "large"];
// Instagram's bounds: a photo is shown between 4:5 (tall) and 1.91:1 (wide), cropped to fit.
const TALLEST = 4 / 5;
const WIDEST = 1.91;

export function altText(post) {
  return post.caption || `Photo by ${post.author.username}`;
}

/** One photo at the width the layout needs (`srcset`), over its BlurHash until it loads. */
function photo(media, alt) {
  const { variants } = media;
  const widths = WIDTHS.filter((name) => variants[name]);
  const image = h("img", {
    alt,
    src: variants.medium?.url ?? variants[widths.at(-1)]?.url,
    srcset: widths.map((name) => `${variants[name].url} ${variants[name].width}w`).join(", "),
    sizes: "(min-width: 30rem) 30rem, 100vw",
    width: media.width,
    height: media.height,
    loading: "lazy",
    decoding: "async",
  });
  const frame = h("div", { class: "photo" }, image);
  const blurred = placeholder(media.blurhash);
  if (blurred) frame.style.backgroundImage = `url("${blurred}")`;
  const shown = () => image.classList.add("loaded");
  if (image.complete && image.naturalWidth) shown();
  else image.addEventListener("load", shown, { once: true });
  return frame;
}

/** The post's photos side by side, scrolled one at a time, with "2 / 3" when several;
 * all are shown in the first one's proportions (within Instagram's bounds). */
function photos(post) {
  const alt = altText(post);
  const strip = h("div", { class: "photos" }, post.media.map((m) => photo(m, alt)));
  const [first] = post.media;
  const ratio = Math.min(WIDEST, Math.max(TALLEST, first.width / first.height));
  strip.style.aspectRatio = String(ratio);
  if (post.media.length < 2) return strip;
  const counter = h("p", { class: "photo-count" }, `1 / ${post.media.length}`);
  strip.addEventListener("scroll", () => {
    const index = Math.round(strip.scrollLeft / strip.clientWidth) + 1;
    counter.textContent = `${index} / ${post.media.length}`;
  });
  return h("div", { class: "carousel" }, strip, counter);
}

/** The Like toggle and the like count beside it. */
export function likeControl(post) {
  const count = h("span", { class: "count" }, plural(post.likes_count, "like"));
  const button = h(
    "button",
    { type: "button", class: "like", "aria-pressed": String(Boolean(post.viewer?.liked)) },
    icon("heart"),
    h("span", {}, "Like"),
  );
  button.addEventListener("click", async () => {
    const liking = button.getAttribute("aria-pressed") !== "true";
    button.disabled = true;
    try {
      const result = await api(liking ? "POST" : "DELETE", `/api/post/${post.post_id}/like`);
      button.setAttribute("aria-pressed", String(result.liked));
      count.textContent = plural(result.likes_count, "like");
    } catch (error) {
      toast(error.message);
    } finally {
      button.disabled = false;
    }
  });
  return h("div", { class: "likes" }, button, count);
}

/** An <article> for `post`; `extra` elements (comments, Delete) go after its caption. */
export function postCard(post, ...extra) {
  const author = `/u/${encodeURIComponent(post.author.username)}`;
  const link = `/p/${post.post_id}`;
  const comments = h(
    "a",
    { href: link, class: "comments-link" },
    icon("comment"),
    h("span", {}, plural(post.comments_count, "comment")),
  );
  return h(
    "article",
    { class: "post", "data-post-id": post.post_id },
    h(
      "header",
      { class: "post-head" },
      h("a", { href: author, class: "author" }, post.author.username),
      post.location && h("span", { class: "place" }, post.location),
    ),
    photos(post),
    h("div", { class: "actions" }, likeControl(post), comments),
    post.caption &&
      h(
        "p",
        { class: "caption" },
        h("strong", {}, post.author.username),
        " ",
        post.caption,
      ),
    h("a", { href: link, class: "posted" }, when(post.created_at)),
    ...extra,
  );
}

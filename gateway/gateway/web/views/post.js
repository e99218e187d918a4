// A post's page: the post, Delete for its author, and its comments with a field to add one.

import { api, signedInUser } from "../api.js";
import { h, plural, toast, when } from "../dom.js";
import { pager } from "../pager.js";
import { postCard } from "../postcard.js";

export function notFound(root, page, heading, text) {
  page.title(heading);
  root.append(h("div", { class: "card empty" }, h("h1", {}, heading), h("p", {}, text)));
}

function commentItem(comment, post, onRemoved) {
  const me = signedInUser();
  const mine = me && (comment.author.user_id === me.user_id || post.user_id === me.user_id);
  const item = h(
    "li",
    { class: "comment" },
    h(
      "a",
      { href: `/u/${encodeURIComponent(comment.author.username)}`, class: "author" },
      comment.author.username,
    ),
    " ",
    h("span", { class: "text" }, comment.text),
    " ",
    when(comment.created_at),
  );
  if (mine) {
    const remove = async () => {
      try {
        await api("DELETE", `/api/comments/${comment.comment_id}`);
        item.remove();
        onRemoved();
      } catch (error) {
        toast(error.message);
      }
    };
    const button = h("button", { type: "button", class: "link", onclick: remove }, "Delete comment");
    item.append(" ", button);
  }
  return item;
}

function commentsSection(post, page, counted) {
  let count = post.comments_count;
  const heading = h("h2", { class: "visually-hidden" }, "Comments");
  const changed = (by) => {
    count += by;
    counted(count);
  };
  const list = h("ul", { class: "comments" });
  const shown = new Set(); // a comment added here may come again in a later page
  const render = (comment) => {
    if (shown.has(comment.comment_id)) return null;
    shown.add(comment.comment_id);
    return commentItem(comment, post, () => changed(-1));
  };
  const { footer, stop } = pager({
    list,
    load: (cursor) =>
      api("GET", `/api/post/${post.post_id}/comments`, { params: cursor ? { cursor } : {} }),
    render,
    empty: "",
  });
  page.onLeave(stop);
  const input = h("input", {
    id: "comment-text",
    name: "text",
    maxlength: 2200,
    autocomplete: "off",
    placeholder: "Add a comment…",
    required: true,
  });
  const form = h(
    "form",
    { class: "add-comment" },
    h("label", { for: "comment-text", class: "visually-hidden" }, "Add a comment"),
    input,
    h("button", { type: "submit", class: "link" }, "Post"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    try {
      const made = await api("POST", `/api/post/${post.post_id}/comments`, { json: { text } });
      list.append(render(made));
      input.value = "";
      changed(1);
    } catch (error) {
      toast(error.message);
    }
  });
  return h("section", { class: "comments-section" }, heading, list, footer, form);
}

function deleteButton(post, page) {
  const remove = async () => {
    if (!window.confirm("Delete this post? This cannot be undone.")) return;
    try {
      await api("DELETE", `/api/post/${post.post_id}`);
      toast("Post deleted.");
      page.go(`/u/${encodeURIComponent(post.author.username)}`);
    } catch (error) {
      toast(error.message);
    }
  };
  return h("button", { type: "button", class: "danger", onclick: remove }, "Delete");
}

export async function postPage(root, { postId }, page) {
  page.title("Post");
  let post;
  try {
    post = await api("GET", `/api/post/${encodeURIComponent(postId)}`);
  } catch (error) {
    if (error.status !== 404) throw error;
    notFound(root, page, "Post not found", "It may have been deleted.");
    return;
  }
  page.title(post.caption || `Photo by ${post.author.username}`);
  const own = signedInUser()?.user_id === post.user_id;
  const counted = (count) => {
    card.querySelector(".comments-link span").textContent = plural(count, "comment");
  };
  const card = postCard(
    post,
    own && deleteButton(post, page),
    commentsSection(post, page, counted),
  );
  root.append(h("div", { class: "single" }, card));
}

// A profile (/u/{username}): counts, Follow/Unfollow, a grid of posts; and the lists of
// followers and following (/u/{username}/followers, /following).

import { api } from "../api.js";
import { h, plural, toast } from "../dom.js";
import { pager } from "../pager.js";
import { altText } from "../postcard.js";
import { notFound } from "./post.js";

const profileUrl = (username) => `/u/${encodeURIComponent(username)}`;

async function findUser(username) {
  try {
    return await api("GET", `/api/users/by-username/${encodeURIComponent(username)}`);
  } catch (error) {
    if (error.status === 404) return null;
    throw error;
  }
}

function avatar(user, size) {
  const image = user.avatar?.[size];
  if (!image) return h("span", { class: "avatar blank", "aria-hidden": "true" }, user.username[0]);
  return h("img", { class: "avatar", src: image.url, alt: "", width: 150, height: 150 });
}

function fullName(user) {
  return [user.first_name, user.last_name].filter(Boolean).join(" ");
}

function followButton(user, onChange) {
  const following = user.viewer.following;
  const toggle = async () => {
    button.disabled = true;
    try {
      await api(following ? "DELETE" : "POST", `/api/users/${user.user_id}/follow`);
      onChange();
    } catch (error) {
      toast(error.message);
      button.disabled = false;
    }
  };
  const button = h(
    "button",
    { type: "button", class: following ? "secondary" : "primary", onclick: toggle },
    following ? "Unfollow" : "Follow",
  );
  return button;
}

function summary(user, refresh) {
  const url = profileUrl(user.username);
  return h(
    "header",
    { class: "profile-head" },
    avatar(user, "small"),
    h(
      "div",
      { class: "who" },
      h("h1", {}, user.username),
      user.viewer && followButton(user, refresh),
      h(
        "ul",
        { class: "counts" },
        h("li", {}, plural(user.posts_count, "post")),
        h("li", {}, h("a", { href: `${url}/followers` }, plural(user.followers_count, "follower"))),
        h("li", {}, h("a", { href: `${url}/following` }, `${user.following_count} following`)),
      ),
      fullName(user) && h("p", { class: "name" }, fullName(user)),
      user.bio && h("p", { class: "bio" }, user.bio),
      user.location && h("p", { class: "place" }, user.location),
    ),
  );
}

// A grid tile is a square: the 150-pixel square, or the 320-pixel-wide variant cropped to one.
const TILE_WIDTHS = ["thumbnail", "small"];

function tile(post) {
  const { variants } = post.media[0];
  const widths = TILE_WIDTHS.filter((name) => variants[name]);
  const image = h("img", {
    src: variants[widths[0]].url,
    srcset: widths.map((name) => `${variants[name].url} ${variants[name].width}w`).join(", "),
    sizes: "(min-width: 58rem) 19rem, 33vw",
    alt: altText(post),
    loading: "lazy",
    width: 150,
    height: 150,
  });
  return h(
    "li",
    {},
    h(
      "a",
      { href: `/p/${post.post_id}`, class: "tile" },
      image,
      post.media.length > 1 && h("span", { class: "several" }, `${post.media.length} photos`),
    ),
  );
}

export async function profile(root, { username }, page) {
  const user = await findUser(username);
  if (!user) return notFound(root, page, "User not found", `No one is called ${username}.`);
  page.title(`${user.username}`);
  const head = summary(user, () => page.redraw());
  const grid = h("ul", { class: "grid", "aria-label": "Posts" });
  const { footer, stop } = pager({
    list: grid,
    load: (cursor) =>
      api("GET", `/api/users/${user.user_id}/posts`, { params: cursor ? { cursor } : {} }),
    render: tile,
    empty: "No posts yet.",
  });
  page.onLeave(stop);
  root.append(h("div", { class: "profile" }, head, grid, footer));
}

function personItem(user) {
  return h(
    "li",
    { class: "person" },
    avatar(user, "thumbnail"),
    h("a", { href: profileUrl(user.username) }, user.username),
    fullName(user) && h("span", { class: "name" }, fullName(user)),
  );
}

export function peopleList(root, load, page) {
  const list = h("ul", { class: "people" });
  const { footer, stop } = pager({ list, load, render: personItem, empty: "No one yet." });
  page.onLeave(stop);
  root.append(list, footer);
}

export async function people(root, { username, relation }, page) {
  const user = await findUser(username);
  if (!user) return notFound(root, page, "User not found", `No one is called ${username}.`);
  const heading = relation === "followers" ? "Followers" : "Following";
  page.title(`${heading} · ${user.username}`);
  root.append(
    h(
      "h1",
      { class: "list-heading" },
      h("a", { href: profileUrl(user.username) }, user.username),
      ` · ${heading}`,
    ),
  );
  peopleList(
    root,
    (cursor) =>
      api("GET", `/api/users/${user.user_id}/${relation}`, { params: cursor ? { cursor } : {} }),
    page,
  );
}

// Photogram's web client: routes each page (the gateway answers index.html for all of them,
// gateway/webclient.py PAGES) to its view, and follows links without reloading.

import { signedInUser } from "./api.js";
import { drawBar } from "./bar.js";
import { h } from "./dom.js";
import { logIn, signUp } from "./views/auth.js";
import { feed } from "./views/feed.js";
import { newPost } from "./views/newpost.js";
import { notifications } from "./views/notifications.js";
import { notFound, postPage } from "./views/post.js";
import { people, profile } from "./views/profile.js";

// [pattern, view, who may see it]: "anyone", "guest" (signed out) or "member" (signed in).
const ROUTES = [
  [/^\/$/, (root, params, page) => (signedInUser() ? feed : signUp)(root, params, page), "anyone"],
  [/^\/signup$/, signUp, "guest"],
  [/^\/login$/, logIn, "guest"],
  [/^\/new$/, newPost, "member"],
  [/^\/notifications$/, notifications, "member"],
  [/^\/p\/(?<postId>[^/]+)$/, postPage, "member"],
  [/^\/u\/(?<username>[^/]+)$/, profile, "member"],
  [/^\/u\/(?<username>[^/]+)\/(?<relation>followers|following)$/, people, "member"],
];

const main = document.getElementById("main");
let bar = drawBar(document.getElementById("bar"), go);
let signedIn = Boolean(signedInUser());
const leaving = [];

function match(path) {
  for (const [pattern, view, audience] of ROUTES) {
    const found = pattern.exec(path);
    if (!found) continue;
    try {
      const params = Object.fromEntries(
        Object.entries(found.groups ?? {}).map(([k, v]) => [k, decodeURIComponent(v)]),
      );
      return { view, audience, params };
    } catch {
      return null; // a malformed %-escape names nothing
    }
  }
  return null;
}

/** Draw the page for the current URL, after the previous page's cleanup. */
async function draw() {
  for (const cleanup of leaving.splice(0)) cleanup();
  if (Boolean(signedInUser()) !== signedIn) {
    signedIn = !signedIn;
    bar.stop();
    bar = drawBar(document.getElementById("bar"), go);
  }
  const path = location.pathname;
  const route = match(path);
  if (route?.audience === "member" && !signedInUser()) return go("/login", { replace: true });
  if (route?.audience === "guest" && signedInUser()) return go("/", { replace: true });
  for (const tab of document.querySelectorAll(".tabs a")) {
    if (tab.pathname === path) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  // A fresh root per page: a slow view that finishes after the reader moved on draws
  // into a detached element, not over the next page.
  const root = h("div", { class: "view" });
  main.replaceChildren(root);
  const page = {
    title: (text) => {
      document.title = `${text} · Photogram`;
    },
    onLeave: (cleanup) => leaving.push(cleanup),
    go,
    redraw: draw,
    unreadChanged: () => bar.unreadChanged(),
  };
  try {
    if (!route) notFound(root, page, "Page not found", "There is nothing at this address.");
    else await route.view(root, route.params, page);
  } catch (error) {
    const retry = h("button", { type: "button", class: "secondary", onclick: draw }, "Try again");
    root.replaceChildren(h("div", { class: "card empty" }, h("p", {}, error.message), retry));
  }
}

/** Open `path` in the client (history entry and all). */
export function go(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  window.scrollTo(0, 0);
  draw();
  bar.unreadChanged();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || link.target) return;
  const url = new URL(link.href);
  if (url.origin !== location.origin || !match(url.pathname)) return;
  event.preventDefault();
  go(url.pathname + url.search);
});
window.addEventListener("popstate", draw);
// Signing out (here, by an ended session, or in another tab) changes what each page shows.
window.addEventListener("photogram:signed-out", draw);
window.addEventListener("storage", () => {
  if (Boolean(signedInUser()) !== signedIn) draw();
});

draw();

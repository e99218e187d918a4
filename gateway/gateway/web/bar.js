// The bar on every page: the brand, Search, the main links, the unread count and Log out.

import { api, logOut, signedInUser } from "./api.js";
import { h } from "./dom.js";

const UNREAD_MS = 5000;
const SEARCH_DELAY_MS = 200;

function searchBox(go) {
  const input = h("input", {
    id: "search",
    type: "search",
    name: "q",
    autocomplete: "off",
    placeholder: "Search",
  });
  const results = h("ul", { class: "results", hidden: true });
  const box = h(
    "form",
    { role: "search", class: "search" },
    h("label", { for: "search", class: "visually-hidden" }, "Search"),
    input,
    results,
  );
  const close = () => {
    results.hidden = true;
  };
  let timer = 0;
  let asked = "";
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const q = input.value.trim();
      asked = q;
      if (!q) return close();
      const found = await api("GET", "/api/users/search", { params: { q, limit: 8 } }).catch(
        () => ({ items: [] }),
      );
      if (asked !== q) return; // a later search is under way
      results.replaceChildren(
        ...(found.items.length
          ? found.items.map((user) =>
              h("li", {}, h("a", { href: `/u/${encodeURIComponent(user.username)}` }, user.username)),
            )
          : [h("li", { class: "none" }, "No one found.")]),
      );
      results.hidden = false;
    }, SEARCH_DELAY_MS);
  });
  box.addEventListener("submit", (event) => {
    event.preventDefault();
    const first = results.querySelector("a");
    if (first) go(first.getAttribute("href"));
  });
  box.addEventListener("click", (event) => {
    if (event.target.closest("a")) {
      input.value = "";
      close();
    }
  });
  input.addEventListener("keydown", (event) => event.key === "Escape" && close());
  box.addEventListener("focusout", (event) => box.contains(event.relatedTarget) || close());
  return box;
}

/** Draw the bar for the signed-in user (or none); returns `unreadChanged()` and `stop()`. */
export function drawBar(bar, go) {
  const user = signedInUser();
  const brand = h("a", { href: "/", class: "brand" }, "Photogram");
  if (!user) {
    bar.replaceChildren(brand);
    return { unreadChanged() {}, stop() {} };
  }
  const notificationsLink = h("a", { href: "/notifications" }, "Notifications");
  const leave = async () => {
    await logOut();
    go("/login");
  };
  bar.replaceChildren(
    brand,
    searchBox(go),
    h("button", { type: "button", class: "secondary small", onclick: leave }, "Log out"),
    h(
      "nav",
      { "aria-label": "Main", class: "tabs" },
      h("a", { href: "/" }, "Home"),
      h("a", { href: "/new" }, "New post"),
      notificationsLink,
      h("a", { href: `/u/${encodeURIComponent(user.username)}` }, "Profile"),
    ),
  );

  async function unreadChanged() {
    const { count } = await api("GET", "/api/notifications/unread-count").catch(() => ({}));
    if (count === undefined) return;
    const badge = count
      ? h("span", { class: "badge" }, String(count), h("span", { class: "visually-hidden" }, " unread"))
      : "";
    notificationsLink.replaceChildren("Notifications", " ", badge);
  }
  unreadChanged();
  const timer = setInterval(() => document.hidden || unreadChanged(), UNREAD_MS);
  return { unreadChanged, stop: () => clearInterval(timer) };
}

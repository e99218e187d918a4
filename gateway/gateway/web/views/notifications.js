// The caller's notifications, newest first; opening the page marks them read.

import { api } from "../api.js";
import { h, when } from "../dom.js";
import { pager } from "../pager.js";

const SAYS = {
  follow: "started following you.",
  like: "liked your post.",
  comment: "commented on your post.",
};

function item(notification) {
  const { actor, post_id: postId } = notification;
  const said = SAYS[notification.type] ?? "did something.";
  return h(
    "li",
    { class: notification.read ? "notification" : "notification unread" },
    h("a", { href: `/u/${encodeURIComponent(actor.username)}`, class: "author" }, actor.username),
    " ",
    postId ? h("a", { href: `/p/${postId}` }, said) : said,
    " ",
    when(notification.created_at),
  );
}

export function notifications(root, _params, page) {
  page.title("Notifications");
  const list = h("ul", { class: "notifications" });
  let marked = false;
  const { footer, stop } = pager({
    list,
    load: async (cursor) => {
      const found = await api("GET", "/api/notifications", { params: cursor ? { cursor } : {} });
      const newest = found.items[0];
      if (!marked && newest && !newest.read) {
        marked = true;
        await api("POST", "/api/notifications/mark-read", {
          json: { up_to: newest.notification_id },
        });
        page.unreadChanged();
      }
      return found;
    },
    render: item,
    empty: "No notifications yet.",
  });
  page.onLeave(stop);
  root.append(h("h1", { class: "list-heading" }, "Notifications"), list, footer);
}

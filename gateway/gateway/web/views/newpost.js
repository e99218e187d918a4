// A new post: 1 to 10 photos, a caption and a location, sent with upload progress.

import { upload } from "../api.js";
import { h } from "../dom.js";

const MAX_FILES = 10;
const ACCEPT = "image/jpeg,image/png,image/webp,image/heic,image/heif,.heic,.heif";

function previews(files, urls) {
  for (const url of urls.splice(0)) URL.revokeObjectURL(url);
  return Array.from(files, (file) => {
    const url = URL.createObjectURL(file);
    urls.push(url);
    return h("li", {}, h("img", { src: url, alt: file.name }));
  });
}

export function newPost(root, _params, page) {
  page.title("New post");
  const urls = [];
  page.onLeave(() => previews([], urls));
  const files = h("input", { id: "photos", name: "file", type: "file", accept: ACCEPT, multiple: true });
  const chosen = h("ul", { class: "previews" });
  files.addEventListener("change", () => chosen.replaceChildren(...previews(files.files, urls)));
  const caption = h("textarea", { id: "caption", name: "caption", rows: 3, maxlength: 2200 });
  const location = h("input", { id: "location", name: "location", maxlength: 100 });
  const progress = h("progress", { max: 1, value: 0, "aria-label": "Upload progress" });
  const percent = h("span", { class: "percent" });
  const sending = h("p", { class: "progress", hidden: true }, progress, percent);
  const alert = h("p", { class: "error", role: "alert" });
  const share = h("button", { type: "submit", class: "primary" }, "Share");
  const form = h(
    "form",
    { class: "card new-post" },
    h("h1", {}, "New post"),
    h("p", { class: "field" }, h("label", { for: "photos" }, "Photos"), files),
    chosen,
    h("p", { class: "field" }, h("label", { for: "caption" }, "Caption"), caption),
    h("p", { class: "field" }, h("label", { for: "location" }, "Location"), location),
    sending,
    alert,
    share,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    const count = files.files.length;
    if (count < 1 || count > MAX_FILES) {
      alert.textContent = `Choose 1 to ${MAX_FILES} photos.`;
      return;
    }
    const body = new FormData();
    for (const file of files.files) body.append("file", file);
    if (caption.value.trim()) body.append("caption", caption.value.trim());
    if (location.value.trim()) body.append("location", location.value.trim());
    share.disabled = true;
    sending.hidden = false;
    try {
      const post = await upload(body, (done) => {
        progress.value = done;
        percent.textContent = `${Math.round(done * 100)} %`;
      });
      page.go(`/p/${post.post_id}`);
    } catch (error) {
      alert.textContent = error.message;
      sending.hidden = true;
    } finally {
      share.disabled = false;
    }
  });
  root.append(form);
}

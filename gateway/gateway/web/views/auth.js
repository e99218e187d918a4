// Sign up and log in: each keeps the answer's tokens as the session, then opens the feed.

import { api, keep } from "../api.js";
import { h } from "../dom.js";

/** A labelled input: field("Email", {type: "email", name: "email"}). */
export function field(label, attrs) {
  const id = `field-${attrs.name}`;
  return h("p", { class: "field" }, h("label", { for: id }, label), h("input", { id, ...attrs }));
}

function authForm({ heading, fields, action, submit, other, page }) {
  const alert = h("p", { class: "error", role: "alert" });
  const button = h("button", { type: "submit", class: "primary" }, action);
  const form = h("form", { class: "card auth", novalidate: true }, fields, alert, button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    button.disabled = true;
    try {
      keep(await submit(Object.fromEntries(new FormData(form))));
      page.go("/");
    } catch (error) {
      alert.textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });
  return h(
    "div",
    { class: "auth-page" },
    h("h1", { class: "brand-large" }, "Photogram"),
    h("p", { class: "lead" }, heading),
    form,
    h("p", { class: "card other" }, other),
  );
}

const username = (autocomplete) => ({
  name: "username",
  autocomplete,
  autocapitalize: "none",
  spellcheck: "false",
  required: true,
});

export function signUp(root, _params, page) {
  page.title("Sign up");
  root.append(
    authForm({
      heading: "Sign up to see photos from your friends.",
      fields: [
        field("Username", { ...username("username"), minlength: 3, maxlength: 30 }),
        field("Email", { type: "email", name: "email", autocomplete: "email", required: true }),
        field("Password", {
          type: "password",
          name: "password",
          autocomplete: "new-password",
          minlength: 8,
          required: true,
        }),
      ],
      action: "Sign up",
      submit: (body) => api("POST", "/api/auth/signup", { json: body }),
      other: ["Have an account? ", h("a", { href: "/login" }, "Log in")],
      page,
    }),
  );
}

export function logIn(root, _params, page) {
  page.title("Log in");
  root.append(
    authForm({
      heading: "Log in with your username or email.",
      fields: [
        field("Username", { ...username("username"), placeholder: "username or email" }),
        field("Password", {
          type: "password",
          name: "password",
          autocomplete: "current-password",
          required: true,
        }),
      ],
      action: "Log in",
      submit: ({ username: login, password }) =>
        api("POST", "/api/auth/login", { json: { login, password } }),
      other: ["New to Photogram? ", h("a", { href: "/signup" }, "Sign up")],
      page,
    }),
  );
}

// Small DOM helpers: every text goes in as a text node, never as HTML.

/** Make an element: h("a", {href: "/"}, "Home"). `on…` attributes are listeners. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

const SVG = "http://www.w3.org/2000/svg";
const ICONS = {
  heart:
    "M12 21s-7.5-4.6-9.6-9.3C.9 8.3 3.1 4.5 6.8 4.5c2.2 0 3.9 1.2 5.2 3 1.3-1.8 3-3 5.2-3 " +
    "3.7 0 5.9 3.8 4.4 7.2C19.5 16.4 12 21 12 21z",
  comment: "M4 5h16v11H9l-5 4z",
};

/** A decorative icon (hidden from assistive technology: the text beside it names things). */
export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", `icon icon-${name}`);
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

export function plural(count, word) {
  return `${count.toLocaleString()} ${count === 1 ? word : `${word}s`}`;
}

const UNITS = [
  ["year", 365 * 86400],
  ["week", 7 * 86400],
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
];
const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

/** "3 minutes ago", "just now": how long ago an RFC 3339 time was. */
export function timeAgo(iso) {
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  for (const [unit, size] of UNITS) {
    if (seconds >= size) return relative.format(-Math.floor(seconds / size), unit);
  }
  return "just now";
}

/** A <time> element showing how long ago, with the full date as its tooltip. */
export function when(iso) {
  return h("time", { datetime: iso, title: new Date(iso).toLocaleString() }, timeAgo(iso));
}

let toastTimer = 0;

/** Say something briefly in the page's status line (read out by screen readers). */
export function toast(message) {
  const line = document.getElementById("toast");
  line.textContent = message;
  line.classList.add("shown");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => line.classList.remove("shown"), 4000);
}

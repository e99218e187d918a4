// The public API (/api) with the session's tokens: refreshed once on a 401, then retried.

const SESSION_KEY = "photogram.session";

/** A problem answer (RFC 9457), or a request that never reached the server (status 0). */
export class ApiError extends Error {
  constructor(status, problem = {}) {
    super(describe(status, problem));
    this.status = status;
    this.problem = problem;
  }
}

function describe(status, problem) {
  const first = problem.errors?.[0];
  if (first) {
    const field = first.loc?.at(-1);
    return field ? `${field}: ${first.msg}` : first.msg;
  }
  return problem.detail || problem.title || `The server answered ${status}.`;
}

/** The signed-in session ({access_token, refresh_token, user}), or null. */
export function session() {
  try {
    return JSON.parse(localStorage.getItem(SESSION_KEY));
  } catch {
    return null;
  }
}

export function signedInUser() {
  return session()?.user ?? null;
}

/** Keep a signup, login or refresh answer as the session. */
export function keep(auth) {
  const { access_token, refresh_token, user } = auth;
  localStorage.setItem(SESSION_KEY, JSON.stringify({ access_token, refresh_token, user }));
}

function forget() {
  localStorage.removeItem(SESSION_KEY);
  window.dispatchEvent(new Event("photogram:signed-out"));
}

let refreshing = null;

/** Trade the refresh token for new tokens; true when there is a usable session after. */
async function refreshed(staleToken) {
  const current = session();
  if (!current) return false;
  // Another request (or tab) refreshed already: a refresh token is single-use, and using a
  // spent one ends the whole session.
  if (current.access_token !== staleToken) return true;
  refreshing ??= (async () => {
    const response = await fetch("/api/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ refresh_token: current.refresh_token }),
    });
    if (response.status === 401) {
      forget();
      return false;
    }
    keep(await answer(response));
    return true;
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function answer(response) {
  if (response.status === 204) return null;
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** Call the API: api("GET", "/api/feed", {params: {cursor}}), api("POST", path, {json}). */
export async function api(method, path, { json, params } = {}) {
  const query = params ? `?${new URLSearchParams(params)}` : "";
  for (let attempt = 0; ; attempt++) {
    const token = session()?.access_token;
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (json !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path + query, {
        method,
        headers,
        body: json === undefined ? undefined : JSON.stringify(json),
      });
    } catch {
      throw new ApiError(0, { detail: "Could not reach Photogram. Check your connection." });
    }
    if (response.status === 401 && token) {
      if (attempt === 0 && (await refreshed(token))) continue;
      forget();
    }
    return answer(response);
  }
}

/** A retry-safe key for one upload (crypto.randomUUID needs a secure origin; this not). */
function idempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function send(form, { token, key, onProgress }) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/api/upload");
    request.setRequestHeader("Authorization", `Bearer ${token}`);
    request.setRequestHeader("Idempotency-Key", key);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", () => {
      let body = {};
      try {
        body = JSON.parse(request.responseText);
      } catch {
        // an empty or non-JSON answer: the status says enough
      }
      resolve({ status: request.status, body });
    });
    request.addEventListener("error", () =>
      reject(new ApiError(0, { detail: "The upload did not reach Photogram." })),
    );
    request.send(form);
  });
}

/** Upload a post (multipart `file` parts, caption, location), reporting progress 0..1. */
export async function upload(form, onProgress) {
  const key = idempotencyKey();
  for (let attempt = 0; ; attempt++) {
    const token = session()?.access_token;
    const { status, body } = await send(form, { token, key, onProgress });
    if (status === 401 && attempt === 0 && (await refreshed(token))) continue;
    if (status === 401) forget();
    if (status !== 201) throw new ApiError(status, body);
    return body;
  }
}

/** Forget the session, then end it on the server too (its tokens stop working at once). */
export async function logOut() {
  const current = session();
  forget();
  if (!current) return;
  await fetch("/api/auth/logout", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: current.refresh_token }),
  }).catch(() => {});
}

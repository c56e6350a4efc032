// The daemon's HTTP API: same-origin requests, the API key in a header, one error type.

const KEY_NAME = "companion.apiKey";
let sessionKey = null;
let askForKey = null; // set by main.js: () => Promise<void>, resolves when a key was entered

export class ApiError extends Error {
  constructor(status, message, code = "") {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function apiKey() {
  return sessionKey ?? localStorage.getItem(KEY_NAME) ?? "";
}

export function setApiKey(key, remember) {
  sessionKey = key;
  if (remember) localStorage.setItem(KEY_NAME, key);
  else localStorage.removeItem(KEY_NAME);
}

export function forgetApiKey() {
  sessionKey = null;
  localStorage.removeItem(KEY_NAME);
}

export function onKeyNeeded(handler) {
  askForKey = handler;
}

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  const key = apiKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function errorFrom(response) {
  let message = `${response.status} ${response.statusText}`;
  let code = "";
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    const err = body.error ?? body;
    message = typeof err === "string" ? err : err.message ?? message;
    code = err.code ?? err.type ?? "";
  } catch {
    if (text.trim()) message = text.trim().slice(0, 500);
  }
  return new ApiError(response.status, message, code);
}

/** fetch() with the key; on 401 asks for a key (again, while it is wrong) and tries again. */
async function send(method, path, { json, body, signal, accept } = {}) {
  const init = { method, headers: headers(accept ? { Accept: accept } : {}), signal, credentials: "same-origin" };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body; // FormData or Blob: the browser sets the type
  }
  const response = await fetch(path, init);
  if (response.status === 401 && askForKey) {
    const problem = (await errorFrom(response)).message;
    await askForKey(apiKey() ? `That key was refused: ${problem}` : problem);
    return send(method, path, { json, body, signal, accept });
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

async function parsed(response) {
  const type = response.headers.get("Content-Type") || "";
  if (response.status === 204) return null;
  return type.includes("json") ? response.json() : response.text();
}

export const api = {
  get: async (path, opts) => parsed(await send("GET", path, opts)),
  post: async (path, json, opts = {}) => parsed(await send("POST", path, { ...opts, json })),
  put: async (path, json, opts = {}) => parsed(await send("PUT", path, { ...opts, json })),
  patch: async (path, json, opts = {}) => parsed(await send("PATCH", path, { ...opts, json })),
  del: async (path, opts) => parsed(await send("DELETE", path, opts)),
  upload: async (method, path, file, fields = {}) => {
    const form = new FormData();
    form.append("file", file, file.name);
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    return parsed(await send(method, path, { body: form }));
  },
  /** A file from the API as a Blob (exports, avatars), with the key. */
  blob: async (path) => (await send("GET", path, { accept: "*/*" })).blob(),
};

/** Query string from an object, skipping empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

/**
 * POST a generating request and read its Server-Sent Events.
 * Calls onToken(text) for each piece and onOther(name, data) for other events (a spoken
 * sentence's "audio"); resolves with the "done" event's data; rejects with ApiError on an
 * "error" event or an HTTP error.
 */
export async function streamTurn(path, json, onToken, signal, onOther) {
  let done = null;
  await streamEvents(path, json, (name, payload) => {
    if (name === "token") onToken(payload.text);
    else if (name === "done") done = payload;
    else if (onOther) onOther(name, payload);
  }, signal);
  return done;
}

/** POST a generating request and call onEvent(name, data) for each of its Server-Sent Events;
 * rejects with ApiError on an "error" event or an HTTP error. */
export async function streamEvents(path, json, onEvent, signal) {
  const response = await send("POST", path, { json: { ...json, stream: true }, signal, accept: "text/event-stream" });
  await readEvents(response, (name, payload) => {
    if (name === "error") throw new ApiError(500, payload.message, payload.code);
    onEvent(name, payload);
  });
}

/** Read a Server-Sent Events body to its end: onEvent(name, data, id) for each event with data. */
export async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      let id = null;
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        else if (line.startsWith("id:")) id = line.slice(3).trim();
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")), id);   // comments and retry: lines have none
    }
  }
}

/**
 * POST a request answered with newline-delimited JSON (Ollama's streams, such as /api/pull) and
 * call onLine(object) for each line; rejects with ApiError on an HTTP error or an {error} line.
 */
export async function streamLines(path, json, onLine, signal) {
  const response = await send("POST", path, { json, signal, accept: "application/x-ndjson" });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const take = (line) => {
    if (!line.trim()) return;
    const payload = JSON.parse(line);
    if (payload.error) throw new ApiError(502, payload.error);
    onLine(payload);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n")) >= 0) {
      take(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 1);
    }
  }
  take(buffer + decoder.decode());
}

/** Object URLs for images the API serves (they need the key, so <img src> cannot fetch them). */
const imageCache = new Map();

export async function imageUrl(path) {
  if (!imageCache.has(path)) {
    imageCache.set(path, api.blob(path).then((b) => URL.createObjectURL(b)).catch(() => "/static/icon.svg"));
  }
  return imageCache.get(path);
}

export function forgetImage(prefix) {
  for (const [path, url] of imageCache) {
    if (path.startsWith(prefix)) {
      imageCache.delete(path);
      url.then((u) => u.startsWith("blob:") && URL.revokeObjectURL(u));
    }
  }
}

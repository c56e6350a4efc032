// The live events (GET /api/events): what changes anywhere shows in every open tab.
// One stream per tab, read with fetch() (EventSource cannot send the API key); it reconnects
// with Last-Event-ID and so gets what it missed, or a "resync" when that is too much.

import { apiKey, readEvents } from "./api.js";

const handlers = new Set();
let lastId = null;
let generating = null;     // what generates now, anywhere: {what, chat_id, companion_id} or null
let idleWaiters = [];

/** Call handler(name, data) for every live event; returns a function that stops it. */
export function onLive(handler) {
  handlers.add(handler);
  return () => handlers.delete(handler);
}

/** What the model generates now (in this tab or another client), or null. */
export function generatingNow() {
  return generating;
}

/** Resolves when no generation runs (at once when none does). */
export function whenIdle() {
  if (!generating) return Promise.resolve();
  return new Promise((resolve) => idleWaiters.push(resolve));
}

function setGenerating(value) {
  generating = value;
  if (!generating) {
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function dispatch(name, data) {
  if (name === "hello") setGenerating(data.generating);
  else if (name === "generation.started") setGenerating(data);
  else if (name === "generation.finished" || name === "generation.aborted") setGenerating(null);
  for (const handler of handlers) {
    try {
      handler(name, data);
    } catch (err) {
      console.error(err);
    }
  }
}

async function readStream() {
  const headers = { Accept: "text/event-stream" };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (lastId) headers["Last-Event-ID"] = lastId;
  const response = await fetch("/api/events", { headers, credentials: "same-origin", cache: "no-store" });
  if (!response.ok) throw new Error(`events: ${response.status}`);
  await readEvents(response, (name, data, id) => {
    if (id) lastId = id;
    dispatch(name, data);
  });
}

/** Subscribe for as long as the page is open, coming back after a drop (1 s, then slower). */
export async function startLive() {
  let delay = 1000;
  for (;;) {
    const opened = Date.now();
    try {
      await readStream();
    } catch {
      // the daemon restarted, the network dropped, or every stream slot is taken: try again
    }
    if (Date.now() - opened > 10000) delay = 1000;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 30000);
  }
}

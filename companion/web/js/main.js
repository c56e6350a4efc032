// The page's entry point: the views by URL hash, the API key prompt, the model status.

import { api, onKeyNeeded, setApiKey } from "./api.js";
import { showChat } from "./chat.js";
import { onLive, startLive } from "./live.js";
import { showChats } from "./chats.js";
import { showCompanions } from "./companions.js";
import { showGroups } from "./groups.js";
import { showLorebooks } from "./lorebooks.js";
import { showMemory } from "./memory.js";
import { showSettings } from "./settings.js";
import { companionById } from "./state.js";
import { clear, el } from "./ui.js";
import { stopVoice } from "./voice.js";

const VIEWS = {
  chat: showChat,
  companions: showCompanions,
  groups: showGroups,
  chats: showChats,
  memory: showMemory,
  lorebooks: showLorebooks,
  settings: showSettings,
};

const root = document.getElementById("view");
let rendering = Promise.resolve();

async function route() {
  const name = (location.hash.slice(1).split("/")[0] || "chat");
  const show = VIEWS[name] || showChat;
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("current", link.dataset.view === name);
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.getElementById("nav").classList.remove("open");
  document.body.dataset.view = name;
  if (name === "chat") markRead();
  else stopVoice();          // leaving the chat: nothing goes on speaking or recording
  rendering = rendering.then(async () => {
    try {
      await show(root);
    } catch (err) {
      clear(root, el("div", { class: "panel error-panel" }, el("h1", {}, "Something went wrong"),
        el("p", { class: "error" }, err.message || String(err)),
        el("button", { type: "button", onclick: route }, "Try again")));
    }
  });
  await rendering;
}

// --- the API key prompt: shown when the daemon answers 401 ------------------------------------

let keyPrompt = null;

function askForKey(message) {
  if (keyPrompt) return keyPrompt;
  const dialog = document.getElementById("key-dialog");
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  const error = document.getElementById("key-error");
  error.hidden = !message;
  error.textContent = message || "";
  input.value = "";
  keyPrompt = new Promise((resolve) => {
    form.onsubmit = (e) => {
      e.preventDefault();
      setApiKey(input.value.trim(), document.getElementById("key-remember").checked);
      dialog.close();
      keyPrompt = null;
      resolve();
    };
    dialog.oncancel = (e) => e.preventDefault(); // nothing works without it
  });
  dialog.showModal();
  input.focus();
  return keyPrompt;
}

onKeyNeeded(askForKey);

// --- model status ----------------------------------------------------------------------------

const STATUS_TEXT = { ready: "ready", loading: "loading…", failed: "failed" };

function showModel(model) {
  const pill = document.getElementById("model-status");
  const name = model.name || (model.path || "").split(/[\\/]/).pop() || "model";
  pill.textContent = `${name}: ${STATUS_TEXT[model.state] || model.state}`;
  pill.dataset.state = model.state;
  pill.title = model.error || `${name} (${model.state})`;
}

async function pollStatus() {
  let delay = 30000;
  try {
    const status = await api.get("/api/status");
    const model = status.model;
    showModel(model);
    if (model.state !== "ready" && model.state !== "failed") delay = 2000;
  } catch {
    delay = 10000;
  }
  setTimeout(pollStatus, delay);
}

// --- messages the companion wrote first: an unread badge, a notification when allowed -----------

let unread = 0;

function showUnread() {
  const badge = document.getElementById("unread");
  badge.textContent = String(unread);
  badge.hidden = unread === 0;
  document.title = unread ? `(${unread}) companion` : "companion";
}

function markRead() {
  if (document.visibilityState === "visible" && document.body.dataset.view === "chat" && unread) {
    unread = 0;
    showUnread();
  }
}

function notify(message) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const companion = companionById(message.companion_id);
  const note = new Notification(companion ? companion.name : "companion", { body: message.text.slice(0, 200), tag: `message-${message.id}` });
  note.onclick = () => { window.focus(); location.hash = "#chat"; note.close(); };
}

onLive((name, data) => {
  if (name === "model.state") showModel(data);
  if (name === "message.created" && data.message.initiated) {
    if (document.visibilityState !== "visible" || document.body.dataset.view !== "chat") {
      unread += 1;
      showUnread();
    }
    if (document.visibilityState !== "visible") notify(data.message);
  }
});
document.addEventListener("visibilitychange", markRead);

// --- start -----------------------------------------------------------------------------------

document.getElementById("menu-toggle").addEventListener("click", () => {
  const nav = document.getElementById("nav");
  nav.classList.toggle("open");
  document.getElementById("menu-toggle").setAttribute("aria-expanded", String(nav.classList.contains("open")));
});
window.addEventListener("hashchange", route);
route().then(pollStatus);
startLive();

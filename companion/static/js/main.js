// The page's entry point: the views by URL hash, the API key prompt, the model status.

import { api, onKeyNeeded, setApiKey } from "./api.js";
import { showChat } from "./chat.js";
import { showChats } from "./chats.js";
import { showCompanions } from "./companions.js";
import { showLorebooks } from "./lorebooks.js";
import { showMemory } from "./memory.js";
import { showSettings } from "./settings.js";
import { clear, el } from "./ui.js";

const VIEWS = {
  chat: showChat,
  companions: showCompanions,
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

async function pollStatus() {
  let delay = 30000;
  try {
    const status = await api.get("/api/status");
    const pill = document.getElementById("model-status");
    const model = status.model;
    pill.textContent = `${model.name || "model"}: ${STATUS_TEXT[model.state] || model.state}`;
    pill.dataset.state = model.state;
    pill.title = model.error || `${model.name} (${model.state})`;
    if (model.state !== "ready" && model.state !== "failed") delay = 2000;
  } catch {
    delay = 10000;
  }
  setTimeout(pollStatus, delay);
}

// --- start -----------------------------------------------------------------------------------

document.getElementById("menu-toggle").addEventListener("click", () => {
  const nav = document.getElementById("nav");
  nav.classList.toggle("open");
  document.getElementById("menu-toggle").setAttribute("aria-expanded", String(nav.classList.contains("open")));
});
window.addEventListener("hashchange", route);
route().then(pollStatus);

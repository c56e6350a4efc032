// The chat view: the active chat's messages, streaming replies, stop, edit, delete,
// regenerate, swipes, copy, what a reply used (memories and lore), and voice: a message spoken,
// replies spoken as they stream, the microphone for the message box.

import { api, imageUrl, qs, streamEvents, streamTurn } from "./api.js";
import { generatingNow, onLive, whenIdle } from "./live.js";
import { renderMarkdown } from "./markdown.js";
import { activeCompanion, activeGroup, avatarPath, companionById, loadCompanions, loadGroups, state } from "./state.js";
import { attempt, clear, confirmAction, copyText, el, formatDate, modal, toast } from "./ui.js";
import { canListen, canSpeak, loadVoice, micButton, playerRoot, queueSpeech, setSpeakReplies, speakButton, speakReplies,
  stopPlayback, stopVoice, unlockAudio } from "./voice.js";

const PAGE = 200;

let view = null;    // { root, list, chat, messages, persona, companion }
let busy = false;   // a reply is generating in this tab
let waiting = false; // a message waits for another client's reply to end
let stopLive = null;
let reloadTimer = 0;

export async function showChat(root) {
  await loadCompanions();
  const group = (await loadGroups()) && activeGroup();
  const companion = group ? null : activeCompanion();
  let chat;
  if (group) {
    const chats = await api.get(`/api/groups/${group.id}/chats${qs({ limit: 200 })}`);
    chat = chats.items.find((c) => c.id === group.active_chat_id) || chats.items[0] || (await api.post(`/api/groups/${group.id}/chats`, {}));
  } else {
    const chats = await api.get(`/api/chats${qs({ companion_id: companion.id, limit: 200 })}`);
    chat = chats.items.find((c) => c.active) || chats.items[0] || (await api.post("/api/chats", { companion_id: companion.id }));
  }
  const title = group ? group.name : companion.name;
  const personas = await api.get("/api/personas?limit=200");
  const persona = personas.items.find((p) => p.active) || { name: "You" };
  const userAvatars = await personaAvatars(personas.items);
  await loadVoice();

  const list = el("div", { id: "messages", class: "messages", "aria-live": "polite" });
  const prompt = el("textarea", { id: "prompt", rows: 2, placeholder: `Message ${title}…`, "aria-label": "Message" });
  const send = el("button", { type: "submit", id: "send", class: "primary" }, "Send");
  const stop = el("button", { type: "button", id: "stop", class: "danger", hidden: true, onclick: stopGenerating }, "Stop");
  const composer = el("form", { id: "composer", class: "composer" }, prompt, canListen() ? micButton(prompt) : null, send, stop);
  composer.addEventListener("submit", (e) => { e.preventDefault(); sendMessage(); });
  prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendMessage(); }
  });

  const liveStatus = el("p", { id: "live-status", class: "live-status muted", hidden: true, "aria-live": "polite" });
  const header = el("div", { class: "chat-header" },
    el("h1", { id: "chat-title" }, chat.title || `Chat with ${title}`),
    el("div", { class: "row" }, canSpeak() ? speakToggle() : null,
      el("button", { type: "button", id: "new-chat", onclick: () => (group ? newGroupChat(group) : newChat(companion)) }, "New chat")));
  const speakBar = group ? el("div", { id: "speak-bar", class: "row wrap speak-bar" }, el("span", { class: "muted" }, "Let speak:"),
    group.members.filter((m) => !m.muted || group.strategy === "manual").map((m) => el("button", {
      type: "button", class: "let-speak", dataset: { id: m.companion_id }, onclick: () => letSpeak(m) }, m.name))) : null;
  const section = el("section", { class: "chat" }, header, list, liveStatus, speakBar, composer);
  stopVoice();
  playerRoot(section);
  clear(root, section);
  view = { root, list, chat, companion, group, persona, personas: new Map(personas.items.map((p) => [p.id, p])), userAvatars, prompt, send, stop, liveStatus, messages: [], used: new Map(), avatars: new Map() };
  if (stopLive) stopLive();
  stopLive = onLive(liveEvent);
  showOthers();
  await reload();
  prompt.focus();
}

/** "Speak replies": each reply is read aloud, sentence by sentence, while it is written. */
function speakToggle() {
  const box = el("input", { type: "checkbox", id: "speak-replies", checked: speakReplies(), onchange: () => {
    setSpeakReplies(box.checked);
    if (box.checked) unlockAudio();
    else stopPlayback();
  } });
  return el("label", { class: "inline speak-toggle", title: "Read each reply aloud while it is written" }, box, "Speak replies");
}

/** What a generating request adds when replies are spoken. */
function speaking() {
  return canSpeak() && speakReplies() ? { speak: true } : {};
}

/** A stored message with words can be spoken (not one still streaming). */
function canSpeakIt(m) {
  return canSpeak() && Number.isInteger(m.id) && Boolean(m.text?.trim());
}

/** Show what changed elsewhere, but not under a message being edited: that waits for Save or Cancel. */
function liveReload() {
  if (!view.list.isConnected || busy || waiting) return;
  if (view.list.querySelector(".editing")) {
    view.stale = true;
    return;
  }
  reload();
}

async function reload() {
  view.stale = false;
  const items = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await api.get(`/api/chats/${view.chat.id}/messages${qs({ limit: PAGE, offset })}`);
    items.push(...page.items);
    if (items.length >= page.total || !page.items.length) break;
  }
  view.messages = items;
  await renderAll();
}

async function renderAll() {
  const first = view.companion || companionById(view.group.members[0].companion_id);
  const avatar = await imageUrl(avatarPath(first));
  for (const m of view.group?.members || []) {
    const c = companionById(m.companion_id);
    if (c) view.avatars.set(c.id, await imageUrl(avatarPath(c)));
  }
  clear(view.list, view.messages.map((m, i) => messageElement(m, i === view.messages.length - 1, avatar)));
  if (state.jumpTo) {
    const target = view.list.querySelector(`[data-id="${Number(state.jumpTo)}"]`);
    state.jumpTo = null;
    if (target) {
      target.scrollIntoView({ block: "center" });
      target.classList.add("flash");
      return;
    }
  }
  view.list.scrollTop = view.list.scrollHeight;
}

/** The personas' avatars (thumbnails) by persona id, for those that have one. */
async function personaAvatars(personas) {
  const withAvatar = personas.filter((p) => p.avatar_url);
  const urls = await Promise.all(withAvatar.map((p) => imageUrl(avatarPath(p))));
  return new Map(withAvatar.map((p, i) => [p.id, urls[i]]));
}

/** Who said an ai message: the companion, or in a group the member who spoke. */
function speakerName(companionId) {
  if (!view.group) return view.companion.name;
  return view.group.members.find((x) => x.companion_id === companionId)?.name || companionById(companionId)?.name || "?";
}

function messageElement(m, isLast, avatar) {
  const speaker = m.ai ? null : view.personas.get(m.user_id) || view.persona;   // who wrote it
  const name = m.ai ? speakerName(m.companion_id) : speaker.name;
  avatar = (m.ai && view.avatars.get(m.companion_id)) || avatar;
  const userAvatar = m.ai ? null : view.userAvatars.get(speaker.id);
  const text = el("div", { class: "text" });
  text.innerHTML = renderMarkdown(m.text); // escaped by renderMarkdown: no markup from the text
  const canSwipe = m.ai && !m.greeting && isLast;
  const swipeNav = m.ai && (m.swipes.length > 1 || canSwipe) ? el("div", { class: "swipe-nav" },
    el("button", { type: "button", class: "swipe-left icon-button", "aria-label": "Previous alternative",
      disabled: m.swipe_id === 0, onclick: () => swipe(m, m.swipe_id - 1) }, "‹"),
    el("span", { class: "swipe-count" }, `${m.swipe_id + 1}/${m.swipes.length}`),
    el("button", { type: "button", class: "swipe-right icon-button", "aria-label": "Next alternative",
      disabled: m.swipe_id >= m.swipes.length - 1 && !canSwipe,
      onclick: () => (m.swipe_id >= m.swipes.length - 1 ? regenerate(m) : swipe(m, m.swipe_id + 1)) }, "›")) : null;
  const used = view.used.get(m.id);
  const actions = el("div", { class: "actions" },
    el("button", { type: "button", class: "copy", onclick: () => copyText(m.text) }, "Copy"),
    el("button", { type: "button", class: "edit", onclick: () => editMessage(m, article) }, "Edit"),
    el("button", { type: "button", class: "delete", onclick: () => deleteMessage(m) }, "Delete"),
    m.ai && canSpeakIt(m) ? speakButton(m.id) : null,
    canSwipe ? el("button", { type: "button", class: "regenerate", onclick: () => regenerate(m) }, "Regenerate") : null,
    m.ai && !m.greeting ? el("button", { type: "button", class: "context", onclick: () => showContext(m.id) },
      used ? `Used ${used.memories} memories, ${used.lore} lore` : "Context") : null);
  const article = el("article", { class: `message ${m.ai ? "ai" : "user"}`, dataset: { id: m.id } },
    m.ai || userAvatar ? el("img", { class: "avatar", src: m.ai ? avatar : userAvatar, alt: "" })
      : el("div", { class: "avatar initial", "aria-hidden": "true" }, name.slice(0, 1).toUpperCase()),
    el("div", { class: "bubble" },
      el("div", { class: "meta" }, el("span", { class: "name" }, name), el("time", { datetime: m.date }, formatDate(m.date))),
      text, swipeNav, actions));
  return article;
}

/** What happens elsewhere (another tab, a client, the companion writing first) shows here. */
function liveEvent(name, data) {
  if (!view || !view.list.isConnected) return;
  if (name === "hello" || name.startsWith("generation.")) showOthers();
  if (busy) return;                 // this tab's own reply: reloaded when it ends
  const here = (name.startsWith("message.") && data.chat_id === view.chat.id)
    || (name === "chat.changed" && data.id === view.chat.id) || name === "resync"
    || (name.startsWith("generation.") && name !== "generation.started" && data.chat_id === view.chat.id);
  if (here) {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(liveReload, 100);
  }
}

/** "Sarah is writing…" while a generation runs elsewhere; Send says it waits. */
function showOthers() {
  const other = busy ? null : generatingNow();
  view.liveStatus.hidden = !other;
  if (other) {
    const speaker = view.group ? speakerName(other.companion_id)
      : other.companion_id === view.companion.id ? view.companion.name : "The model";
    view.liveStatus.textContent = other.chat_id === view.chat.id
      ? `${speaker} is writing${other.what === "initiative" ? " to you" : ""}…`
      : "Another reply is being generated…";
  }
  view.send.textContent = waiting ? "Waiting…" : "Send";
  view.send.disabled = busy || waiting;
}

function setBusy(on) {
  busy = on;
  view.send.disabled = on;
  view.stop.hidden = !on;
  view.root.querySelector(".chat").classList.toggle("busy", on);
  showOthers();
}

/** Wait while another client's reply is generated (instead of meeting a 429). */
async function waitForOthers() {
  if (!generatingNow()) return;
  waiting = true;
  showOthers();
  try {
    await whenIdle();
  } finally {
    waiting = false;
    showOthers();
  }
}

/** Stream a turn into a message's text element; the chat is reloaded after. */
/** Run a generating request with the chat busy: its error as a toast, the chat reloaded after. */
async function whileGenerating(work, cleanup) {
  setBusy(true);
  try {
    await work();
  } catch (err) {
    toast(err.status === 429 ? "Another reply is being generated; try again in a moment." : err.message, "error");
  } finally {
    cleanup();
    setBusy(false);
    if (view.list.isConnected) await reload();
  }
}

async function stream(path, body, target) {
  let acc = "";
  let frame = 0;
  const paint = () => { frame = 0; target.innerHTML = renderMarkdown(acc); view.list.scrollTop = view.list.scrollHeight; };
  target.closest(".message")?.classList.add("streaming");
  const list = view.list;
  await whileGenerating(async () => {
    let done = null;
    for (let attemptNo = 0; ; attemptNo += 1) {
      try {
        done = await streamTurn(path, { ...body, ...speaking(), chat_id: view.chat.id }, (piece) => {
          acc += piece;
          if (!frame) frame = requestAnimationFrame(paint);
        }, undefined, (name, data) => {
          if (name === "audio" && list.isConnected && speakReplies()) queueSpeech(data);   // not once the chat was left or it was turned off
        });
        break;
      } catch (err) {
        if (err.status !== 429 || attemptNo >= 5) throw err;
        setBusy(false);     // another client took the model first: wait for it, then try again
        waiting = true;
        showOthers();
        await new Promise((resolve) => setTimeout(resolve, 500));
        await whenIdle();
        waiting = false;
        setBusy(true);
      }
    }
    if (done?.message) view.used.set(done.message.id, { memories: done.memories.length, lore: done.lore.length });
  }, () => frame && cancelAnimationFrame(frame));
}

async function sendMessage() {
  const text = view.prompt.value.trim();
  if (!text || busy || waiting) return;
  stopPlayback();            // the last reply stops speaking: a new one comes
  if (speaking().speak) unlockAudio();
  if (generatingNow()) {
    await waitForOthers();
    if (!view.list.isConnected) return;
    clearTimeout(reloadTimer);
    await reload();          // what the other reply said, before this message goes under it
  }
  view.prompt.value = "";
  const now = new Date().toISOString();
  if (view.group) {
    view.list.append(messageElement({ id: "pending", ai: false, user_id: view.persona.id, text, swipes: [text], swipe_id: 0, date: now }, false, ""));
    view.list.scrollTop = view.list.scrollHeight;
    return groupTurn(`/api/groups/${view.group.id}/turn`, { text });
  }
  const avatar = await imageUrl(avatarPath(view.companion));
  view.list.append(messageElement({ id: "pending", ai: false, user_id: view.persona.id, text, swipes: [text], swipe_id: 0, date: now }, false, avatar));
  const reply = messageElement({ id: "streaming", ai: true, text: "", swipes: [""], swipe_id: 0, greeting: true, date: now }, false, avatar);
  reply.querySelector(".actions").hidden = true;
  view.list.append(reply);
  view.list.scrollTop = view.list.scrollHeight;
  await stream("/api/prompt", { prompt: text }, reply.querySelector(".text"));
}

/** A group turn: each member's reply streams into its own message, one after another. */
async function groupTurn(path, body) {
  let target = null;
  let acc = "";
  let frame = 0;
  const paint = () => { frame = 0; if (target) target.innerHTML = renderMarkdown(acc); view.list.scrollTop = view.list.scrollHeight; };
  const list = view.list;
  await whileGenerating(() => streamEvents(path, { ...body, ...speaking(), chat_id: view.chat.id }, (name, data) => {
      if (name === "audio" && list.isConnected && speakReplies()) queueSpeech(data);
      else if (name === "speaker") {
        acc = "";
        const article = messageElement({ id: "streaming", ai: true, companion_id: data.companion_id, text: "", swipes: [""],
          swipe_id: 0, greeting: true, date: new Date().toISOString() }, false, "");
        article.querySelector(".actions").hidden = true;
        article.classList.add("streaming");
        view.list.append(article);
        target = article.querySelector(".text");
      } else if (name === "token") {
        acc += data.text;
        if (!frame) frame = requestAnimationFrame(paint);
      } else if (name === "reply") {
        paint();
        target?.closest(".message")?.classList.remove("streaming");
        target = null;
        view.used.set(data.message.id, { memories: data.memories.length, lore: data.lore.length });
      }
    }), () => frame && cancelAnimationFrame(frame));
}

/** "Let X speak": one member of the group replies now. */
async function letSpeak(member) {
  if (busy || waiting) return;
  stopPlayback();
  if (speaking().speak) unlockAudio();
  if (generatingNow()) await waitForOthers();
  await groupTurn(`/api/groups/${view.group.id}/reply`, { companion_id: member.companion_id });
}

async function newGroupChat(group) {
  const chat = await attempt(() => api.post(`/api/groups/${group.id}/chats`, {}));
  if (chat) await showChat(view.root);
}

async function regenerate(m) {
  if (busy || waiting) return;
  if (generatingNow()) return toast("Another reply is being generated; try again when it is done.");
  stopPlayback();
  if (speaking().speak) unlockAudio();
  const article = view.list.querySelector(`[data-id="${m.id}"]`);
  const target = article.querySelector(".text");
  target.textContent = "";
  await stream(`/api/messages/${m.id}/swipes`, {}, target);
}

async function swipe(m, index) {
  if (busy || index < 0 || index >= m.swipes.length) return;
  await attempt(async () => {
    await api.put(`/api/messages/${m.id}/swipe`, { index });
    await reload();
  });
}

async function stopGenerating() {
  await attempt(() => api.post("/api/abort", {}));
}

function editMessage(m, article) {
  const text = article.querySelector(".text");
  const area = el("textarea", { class: "edit-text", rows: Math.min(12, m.text.split("\n").length + 2), "aria-label": "Message text" });
  area.value = m.text;
  const save = el("button", { type: "button", class: "primary save-edit", onclick: async () => {
    if (!area.value.trim()) return toast("A message cannot be empty", "error");
    await attempt(async () => { await api.patch(`/api/messages/${m.id}`, { text: area.value }); await reload(); });
  } }, "Save");
  const cancel = el("button", { type: "button", class: "cancel-edit", onclick: () => (view.stale ? reload() : renderAll()) }, "Cancel");
  text.replaceWith(el("div", { class: "editing" }, area, el("div", { class: "row" }, save, cancel)));
  area.focus();
}

async function deleteMessage(m) {
  if (!(await confirmAction("Delete this message? Its memory is forgotten too."))) return;
  await attempt(async () => { await api.del(`/api/messages/${m.id}`); await reload(); });
}

/** A modal with the memories and lore a reply used. */
export async function showContext(messageId) {
  const context = await attempt(() => api.get(`/api/messages/${messageId}/context`));
  if (!context) return;
  const memories = context.memories.length
    ? el("ul", { class: "plain" }, context.memories.map((m) => el("li", {}, el("p", {}, m.text),
      m.score != null ? el("small", {}, `score ${Number(m.score).toFixed(3)}`) : null)))
    : el("p", { class: "muted" }, "No memories were recalled.");
  const lore = context.lore.length
    ? el("ul", { class: "plain" }, context.lore.map((l) => el("li", {},
      el("strong", {}, `${l.book}: ${l.comment || `entry ${l.entry}`}`), " ",
      el("small", {}, `(${l.reason})`), el("p", {}, l.content ?? ""))))
    : el("p", { class: "muted" }, "No lore entries were active.");
  await modal("What this reply used", el("div", { class: "context-view" }, el("h3", {}, "Memories"), memories, el("h3", {}, "Lore"), lore));
}

/** Start a new chat with a companion, choosing among its greetings when it has several. */
export async function newChat(companion) {
  const greetings = [companion.first_mes, ...(companion.alternate_greetings || [])];
  let greeting_index = 0;
  if (greetings.length > 1) {
    const choices = greetings.map((g, i) => el("label", { class: "greeting-choice" },
      el("input", { type: "radio", name: "greeting", value: i, checked: i === 0 }),
      el("span", {}, g.length > 300 ? `${g.slice(0, 300)}…` : g)));
    const box = el("div", { class: "greetings" }, choices);
    if ((await modal("Choose a greeting", box, [["Cancel", null], ["Start chat", "start", "primary"]])) !== "start") return false;
    greeting_index = Number(box.querySelector("input:checked").value);
  }
  const chat = await attempt(() => api.post("/api/chats", { companion_id: companion.id, greeting_index }));
  if (!chat) return false;
  await attempt(() => api.post(`/api/chats/${chat.id}/activate`, {}));
  if (location.hash === "#chat") await showChat(view.root);
  else location.hash = "#chat";
  return true;
}

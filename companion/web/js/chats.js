// The chats view: a companion's or a group's chats (open, new, rename, delete, export, import)
// and a search across all messages that jumps to the hit.

import { api, qs } from "./api.js";
import { newChat } from "./chat.js";
import { chosenOrActive, companionById, companionPicker, loadGroups, state } from "./state.js";
import { askText, attempt, clear, confirmAction, download, el, fileDrop, formatDate, viewIs } from "./ui.js";

const FORMATS = ["json", "jsonl", "txt", "csv"];
let chosenCompanion = null;
let chosenGroup = null;   // a group's chats instead of the companion's

export async function showChats(root) {
  chosenCompanion = await chosenOrActive(chosenCompanion);
  const groups = await loadGroups();
  if (!viewIs("chats")) return;
  if (chosenGroup && !groups.some((g) => g.id === chosenGroup)) chosenGroup = null;
  const picker = companionPicker("chats-companion", chosenCompanion, (id) => { chosenCompanion = id; chosenGroup = null; showChats(root); });
  const groupPicker = groups.length ? el("select", { id: "chats-group", "aria-label": "Group",
    onchange: (e) => { chosenGroup = e.target.value ? Number(e.target.value) : null; showChats(root); } },
  el("option", { value: "" }, "(a companion's chats)"),
  groups.map((g) => el("option", { value: g.id, selected: g.id === chosenGroup }, `Group: ${g.name}`))) : null;
  if (chosenGroup) picker.disabled = true;
  const base = chosenGroup ? `/api/groups/${chosenGroup}/chats` : "/api/chats";
  const list = el("div", { id: "chat-list", class: "list" });
  const searchBox = el("input", { type: "search", id: "search-input", placeholder: "Search all messages…", "aria-label": "Search" });
  const results = el("div", { id: "search-results", class: "list" });
  const searchForm = el("form", { class: "row", id: "search-form" }, searchBox, el("button", { type: "submit" }, "Search"));
  searchForm.addEventListener("submit", (e) => { e.preventDefault(); search(searchBox.value, results); });

  clear(root, el("section", { class: "panel" },
    el("h1", {}, "Search"), searchForm, results),
  el("section", { class: "panel" },
    el("div", { class: "row spread" }, el("h1", {}, "Chats"),
      el("div", { class: "row" }, picker, groupPicker,
        el("button", { type: "button", class: "primary", id: "chats-new", onclick: async () => {
          if (!chosenGroup) return newChat(companionById(chosenCompanion));
          const chat = await attempt(() => api.post(base, {}));
          if (chat) location.hash = "#chat";
        } }, "New chat"))),
    list,
    fileDrop(chosenGroup ? "Import a SillyTavern group chat (.jsonl)" : "Import a chat: a SillyTavern .jsonl or an exported .json", ".jsonl,.json",
      async (file) => {
        const upload = () => (chosenGroup ? api.upload("POST", `${base}/import`, file)
          : api.upload("POST", "/api/chats/import", file, { companion_id: chosenCompanion }));
        if (await attempt(upload, "Chat imported")) await showChats(root);
      }, "chat-file")));
  await fillChats(list, root, base);
}

async function fillChats(list, root, base) {
  const page = await api.get(`${base}${qs({ companion_id: chosenGroup ? null : chosenCompanion, limit: 200 })}`);
  if (!page.items.length) return clear(list, el("p", { class: "muted" }, "No chats yet."));
  clear(list, page.items.map((chat) => {
    const format = el("select", { "aria-label": "Export format" }, FORMATS.map((f) => el("option", { value: f }, f)));
    return el("article", { class: `item${chat.active ? " active" : ""}`, dataset: { id: chat.id } },
      el("div", { class: "item-main" },
        el("strong", { class: "chat-name" }, chat.title || `Chat ${chat.id}`),
        chat.active ? el("span", { class: "tag" }, "active") : null,
        el("small", { class: "muted" }, ` ${chat.message_count} messages · ${formatDate(chat.last_message_at || chat.created_at)}`)),
      el("div", { class: "row wrap" },
        el("button", { type: "button", class: "primary open-chat", onclick: () => openChat(chat.id) }, "Open"),
        el("button", { type: "button", class: "rename-chat", onclick: async () => {
          const title = await askText("Rename chat", "Title", chat.title);
          if (title !== null && await attempt(() => api.patch(`/api/chats/${chat.id}`, { title }))) await fillChats(list, root, base);
        } }, "Rename"),
        el("label", { class: "story-so-far", title: "Keep this chat's summaries in the prompt as the story so far" },
          el("input", { type: "checkbox", checked: chat.story_so_far, onchange: async (e) => {
            const on = e.target.checked;
            if (!(await attempt(() => api.patch(`/api/chats/${chat.id}`, { story_so_far: on }), on ? "Story so far on" : "Story so far off"))) e.target.checked = !on;
          } }), " Story so far"),
        format,
        el("button", { type: "button", class: "export-chat", onclick: async () => {
          const blob = await attempt(() => api.blob(`/api/chats/${chat.id}/export${qs({ format: format.value })}`));
          if (blob) download(blob, `chat-${chat.id}.${format.value}`);
        } }, "Export"),
        el("button", { type: "button", class: "danger delete-chat", onclick: async () => {
          if (!(await confirmAction("Delete this chat with its messages and their memories?"))) return;
          if (await attempt(() => api.del(`/api/chats/${chat.id}`)) !== undefined) await fillChats(list, root, base);
        } }, "Delete")));
  }));
}

async function openChat(chatId, messageId = null) {
  if (await attempt(() => api.post(`/api/chats/${chatId}/activate`, {}))) {
    state.jumpTo = messageId;
    if (location.hash === "#chat") window.dispatchEvent(new HashChangeEvent("hashchange"));
    else location.hash = "#chat";
  }
}

/** A snippet with the daemon's [match] marks shown as <mark>, built from text nodes. */
function snippet(text) {
  const parts = [];
  const re = /\[([^\]]*)\]/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    parts.push(text.slice(last, m.index), el("mark", {}, m[1]));
    last = re.lastIndex;
  }
  parts.push(text.slice(last));
  return parts;
}

let latestSearch = 0; // only the newest search's results are shown

async function search(query, results) {
  const mine = ++latestSearch;
  if (!query.trim()) return clear(results);
  const page = await attempt(() => api.get(`/api/search${qs({ q: query, limit: 50 })}`));
  if (!page || mine !== latestSearch) return;
  if (!page.items.length) return clear(results, el("p", { class: "muted" }, `Nothing found for “${query}”.`));
  clear(results, el("p", { class: "muted" }, `${page.total} found`), page.items.map((hit) => {
    const companion = companionById(hit.companion_id);
    return el("button", { type: "button", class: "item hit", dataset: { id: hit.id, chat: hit.chat_id },
      onclick: () => openChat(hit.chat_id, hit.id) },
      el("small", { class: "muted" }, `${hit.speaker || (hit.ai ? companion?.name ?? "companion" : "you")} · ${formatDate(hit.created_at)}`),
      el("span", { class: "snippet" }, snippet(hit.snippet)));
  }));
}

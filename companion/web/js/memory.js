// The memory view: a companion's long-term memories (browse, search, add, edit, delete,
// forget all) and the documents it was given.

import { api, qs } from "./api.js";
import { chosenOrActive, companionPicker } from "./state.js";
import { attempt, clear, confirmAction, el, fileDrop, formatDate, toast, viewIs } from "./ui.js";

let chosenCompanion = null;
let query = "";

export async function showMemory(root) {
  chosenCompanion = await chosenOrActive(chosenCompanion);
  if (!viewIs("memory")) return;
  const picker = companionPicker("memory-companion", chosenCompanion, (id) => { chosenCompanion = id; showMemory(root); });
  const list = el("div", { id: "memory-list", class: "list" });
  const searchBox = el("input", { type: "search", id: "memory-search", value: query, placeholder: "Search memories by meaning…", "aria-label": "Search memories" });
  const searchForm = el("form", { class: "row" }, searchBox, el("button", { type: "submit" }, "Search"));
  searchForm.addEventListener("submit", (e) => { e.preventDefault(); query = searchBox.value.trim(); fillMemories(list); });
  const newText = el("textarea", { id: "memory-new", rows: 3, placeholder: "Something to remember…", "aria-label": "New memory" });
  const addForm = el("form", { class: "stack" }, newText, el("div", { class: "row end" }, el("button", { type: "submit", class: "primary" }, "Add memory")));
  addForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!newText.value.trim()) return;
    if (await attempt(() => api.post("/api/memories", { text: newText.value, companion_id: chosenCompanion }), "Remembered")) {
      newText.value = "";
      await fillMemories(list);
    }
  });
  const documents = el("div", { id: "document-list", class: "list" });

  clear(root, el("section", { class: "panel" },
    el("div", { class: "row spread" }, el("h1", {}, "Memory"), picker),
    searchForm, addForm, list,
    el("div", { class: "row end" }, el("button", { type: "button", class: "danger", id: "memory-erase", onclick: async () => {
      if (!(await confirmAction("Forget everything this companion remembers?", "Forget all"))) return;
      const done = await attempt(() => api.del(`/api/memories${qs({ companion_id: chosenCompanion })}`));
      if (done) { toast(`${done.deleted} memories forgotten`); await fillMemories(list); await fillDocuments(documents); }
    } }, "Forget all"))),
  el("section", { class: "panel" }, el("h1", {}, "Documents"),
    el("p", { class: "muted" }, "Text, Markdown, HTML or PDF files become memories, in overlapping chunks."),
    fileDrop("Upload a document: drop it here or choose a file", ".txt,.md,.markdown,.html,.htm,.pdf,text/*,application/pdf",
      async (file) => {
        if (await attempt(() => api.upload("POST", "/api/memories/documents", file, { companion_id: chosenCompanion }), `${file.name} added`)) {
          await fillDocuments(documents);
          await fillMemories(list);
        }
      }, "document-file"),
    documents));
  await Promise.all([fillMemories(list), fillDocuments(documents)]);
}

let latestFill = 0; // only the newest listing is shown (a slow earlier one must not replace it)

async function fillMemories(list) {
  const mine = ++latestFill;
  const page = await api.get(`/api/memories${qs({ companion_id: chosenCompanion, q: query, limit: 100 })}`);
  if (mine !== latestFill) return;
  if (!page.items.length) return clear(list, el("p", { class: "muted" }, query ? "No memory matches." : "No memories yet."));
  const window = page.window ? ` (${page.window.phrase}: ${formatDate(page.window.start)} – ${formatDate(page.window.end)})` : "";
  clear(list, el("p", { class: "muted" }, query ? `Best matches for “${query}”${window}` : `${page.total} memories, newest first`),
    page.items.map((m) => memoryItem(m, list)));
}

function describeSource(m) {
  if (m.source === "summary" && m.first_message_id != null) {
    return `summary of chat ${m.chat_id}, messages ${m.first_message_id}–${m.last_message_id}`;
  }
  return m.source;
}

function memoryItem(m, list) {
  const text = el("p", { class: "memory-text" }, m.display_text ?? m.text);
  const item = el("article", { class: "item memory", dataset: { id: m.id } },
    el("div", { class: "item-main" }, text,
      el("small", { class: "muted" }, `${describeSource(m)} · ${formatDate(m.created_at)}${m.score != null ? ` · score ${m.score.toFixed(3)}` : ""}`)),
    el("div", { class: "row" },
      el("button", { type: "button", class: "edit-memory", onclick: () => {
        const area = el("textarea", { rows: 4, "aria-label": "Memory text" });
        area.value = m.text;
        text.replaceWith(el("div", { class: "stack" }, area, el("div", { class: "row" },
          el("button", { type: "button", class: "primary save-memory", onclick: async () => {
            if (await attempt(() => api.patch(`/api/memories/${m.id}`, { text: area.value }), "Saved")) await fillMemories(list);
          } }, "Save"),
          el("button", { type: "button", onclick: () => fillMemories(list) }, "Cancel"))));
      } }, "Edit"),
      el("button", { type: "button", class: "danger delete-memory", onclick: async () => {
        if (await attempt(() => api.del(`/api/memories/${m.id}`)) !== undefined) item.remove();
      } }, "Delete")));
  return item;
}

async function fillDocuments(box) {
  const page = await api.get(`/api/memories/documents${qs({ companion_id: chosenCompanion, limit: 200 })}`);
  if (!page.items.length) return clear(box, el("p", { class: "muted" }, "No documents."));
  clear(box, page.items.map((d) => el("article", { class: "item", dataset: { id: d.id } },
    el("div", { class: "item-main" }, el("strong", {}, d.name),
      el("small", { class: "muted" }, ` ${d.chunks} chunks · ${Math.ceil(d.size / 1024)} KiB · ${formatDate(d.created_at)}`)),
    el("button", { type: "button", class: "danger", onclick: async () => {
      if (!(await confirmAction(`Forget ${d.name} and all its chunks?`, "Forget"))) return;
      if (await attempt(() => api.del(`/api/memories/documents/${d.id}`)) !== undefined) await fillDocuments(box);
    } }, "Forget"))));
}

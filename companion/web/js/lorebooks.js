// The lorebooks view: list, create, import, export, edit a book and its entries, attach it
// to a companion.

import { api, qs } from "./api.js";
import { companionOptions, loadCompanions, state } from "./state.js";
import { attempt, clear, confirmAction, download, el, field, fileDrop, formValues, viewIs } from "./ui.js";

const EXPORTS = [["character_book", "Character book (V2 card)"], ["sillytavern", "SillyTavern world info"], ["lorebook_v3", "Lorebook V3"]];

export async function showLorebooks(root) {
  await loadCompanions();
  const page = await api.get("/api/lorebooks?limit=200");
  if (!viewIs("lorebooks")) return;
  clear(root, el("section", { class: "panel" },
    el("div", { class: "row spread" }, el("h1", {}, "Lorebooks"),
      el("button", { type: "button", class: "primary", id: "create-lorebook", onclick: async () => {
        const book = await attempt(() => api.post("/api/lorebooks", { name: "New lorebook", entries: [] }));
        if (book) await editBook(root, book.id);
      } }, "New lorebook")),
    fileDrop("Import a lorebook: SillyTavern world info, a card's character_book or lorebook V3 JSON", ".json,application/json",
      async (file) => { if (await attempt(() => api.upload("POST", "/api/lorebooks/import", file), `Imported ${file.name}`)) await showLorebooks(root); },
      "lorebook-file"),
    el("div", { class: "list", id: "lorebook-list" }, page.items.length ? page.items.map((b) => el("article", { class: "item", dataset: { id: b.id } },
      el("div", { class: "item-main" }, el("strong", {}, b.name),
        el("small", { class: "muted" }, ` ${b.entry_count} entries · used by ${b.companion_ids.map(companionName).join(", ") || "no companion"}`)),
      el("div", { class: "row" },
        el("button", { type: "button", class: "primary edit-lorebook", onclick: () => editBook(root, b.id) }, "Edit"),
        el("button", { type: "button", class: "danger", onclick: async () => {
          if (!(await confirmAction(`Delete the lorebook ${b.name}?`))) return;
          if (await attempt(() => api.del(`/api/lorebooks/${b.id}`)) !== undefined) await showLorebooks(root);
        } }, "Delete")))) : el("p", { class: "muted" }, "No lorebooks yet."))));
}

function companionName(id) {
  return state.companions.find((c) => c.id === id)?.name ?? `#${id}`;
}

async function editBook(root, id) {
  const book = await api.get(`/api/lorebooks/${id}`);
  const bookForm = el("form", { class: "editor", id: "lorebook-form" },
    field("Name", "name", book.name, "text", { required: true }),
    field("Description", "description", book.description, "textarea", { rows: 2 }),
    el("div", { class: "row wrap" },
      field("Scan depth (messages; empty: the daemon's default)", "scan_depth", book.scan_depth, "number", { min: 0 }),
      field("Token budget (empty: the daemon's default)", "token_budget", book.token_budget, "number", { min: 0 })),
    el("div", { class: "row end" }, el("button", { type: "submit", class: "primary" }, "Save lorebook")));
  bookForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const values = formValues(bookForm);
    for (const key of ["scan_depth", "token_budget"]) if (values[key] === null) delete values[key];
    await attempt(() => api.patch(`/api/lorebooks/${id}`, values), "Saved");
  });

  const companion = el("select", { "aria-label": "Companion" }, companionOptions());
  const format = el("select", { "aria-label": "Export format" }, EXPORTS.map(([v, label]) => el("option", { value: v }, label)));
  clear(root, el("section", { class: "panel" },
    el("div", { class: "row spread" }, el("h1", {}, book.name),
      el("button", { type: "button", onclick: () => showLorebooks(root) }, "Back")),
    bookForm,
    el("div", { class: "row wrap" }, "Attach to ", companion,
      el("button", { type: "button", id: "attach-lorebook", onclick: () => attempt(
        () => api.post(`/api/companions/${companion.value}/lorebooks`, { lorebook_id: id }), "Attached") }, "Attach"),
      format,
      el("button", { type: "button", onclick: async () => {
        const blob = await attempt(() => api.blob(`/api/lorebooks/${id}/export${qs({ format: format.value })}`));
        if (blob) download(blob, `${book.name.replace(/[^\w.-]+/g, "_")}.json`);
      } }, "Export"))),
  el("section", { class: "panel" },
    el("div", { class: "row spread" }, el("h2", {}, "Entries"),
      el("button", { type: "button", class: "primary", id: "add-entry", onclick: async () => {
        if (await attempt(() => api.post(`/api/lorebooks/${id}/entries`, { keys: ["new"], content: "" }))) await editBook(root, id);
      } }, "Add entry")),
    el("div", { class: "list", id: "entry-list" }, book.entries.map((entry) => entryForm(root, id, entry)))));
}

function entryForm(root, bookId, entry) {
  const form = el("form", { class: "entry editor", dataset: { index: entry.index } },
    field("Keys (comma separated)", "keys", entry.keys.join(", ")),
    field("Secondary keys (comma separated)", "secondary_keys", entry.secondary_keys.join(", ")),
    field("Content", "content", entry.content, "textarea", { rows: 4 }),
    field("Comment", "comment", entry.comment),
    el("div", { class: "row wrap" },
      field("Enabled", "enabled", entry.enabled, "checkbox"),
      field("Constant (always on)", "constant", entry.constant, "checkbox"),
      field("Selective (needs a secondary key)", "selective", entry.selective, "checkbox"),
      field("Case sensitive", "case_sensitive", entry.case_sensitive, "checkbox"),
      field("Order", "insertion_order", entry.insertion_order, "number"),
      el("label", {}, "Position ", el("select", { name: "position" },
        ["before_char", "after_char"].map((p) => el("option", { value: p, selected: entry.position === p }, p.replace("_", " ")))))),
    el("div", { class: "row end" },
      el("button", { type: "button", class: "danger", onclick: async () => {
        if (!(await confirmAction("Delete this entry?"))) return;
        if (await attempt(() => api.del(`/api/lorebooks/${bookId}/entries/${entry.index}`)) !== undefined) await editBook(root, bookId);
      } }, "Delete entry"),
      el("button", { type: "submit", class: "primary" }, "Save entry")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const values = formValues(form);
    const list = (s) => s.split(",").map((k) => k.trim()).filter(Boolean);
    values.keys = list(values.keys);
    values.secondary_keys = list(values.secondary_keys);
    if (values.insertion_order === null) delete values.insertion_order;
    await attempt(() => api.patch(`/api/lorebooks/${bookId}/entries/${entry.index}`, values), "Entry saved");
  });
  return form;
}

// The companions view: list, switch, create, edit every card field, avatar, import, export,
// lorebooks attached, the voice it speaks with.

import { api, forgetImage, imageUrl, qs } from "./api.js";
import { newChat } from "./chat.js";
import { avatarPath, loadCompanions, state } from "./state.js";
import { attempt, clear, confirmAction, download, el, field, fileDrop, formatDate, toast, viewIs } from "./ui.js";
import { loadVoice } from "./voice.js";

const TEXT_FIELDS = [
  ["name", "Name", "text"],
  ["nickname", "Nickname (used for {{char}} when set)", "text"],
  ["description", "Description", "textarea", 8],
  ["personality", "Personality", "textarea", 4],
  ["scenario", "Scenario", "textarea", 4],
  ["first_mes", "First message", "textarea", 6],
  ["mes_example", "Example dialogue", "textarea", 6],
  ["system_prompt", "System prompt ({{original}} keeps the default)", "textarea", 4],
  ["post_history_instructions", "Post-history instructions", "textarea", 3],
  ["creator_notes", "Creator notes", "textarea", 3],
  ["creator", "Creator", "text"],
  ["character_version", "Character version", "text"],
];
const JSON_FIELDS = [["extensions", "Extensions (JSON object)", {}], ["assets", "Assets (JSON list or null)", null],
  ["source", "Source (JSON list or null)", null]];

const SORTS = [["created:asc", "Oldest first"], ["created:desc", "Newest first"], ["name:asc", "Name A–Z"],
  ["name:desc", "Name Z–A"], ["last_chat:desc", "Last chat"], ["modified:desc", "Last changed"]];
const filters = { q: "", tags: new Set(), sort: "created:asc" };   // kept while the page is open

export async function showCompanions(root) {
  await loadCompanions();
  if (!viewIs("companions")) return;
  const list = el("div", { class: "cards", id: "companion-list" });
  clear(root, el("section", { class: "panel" },
    el("div", { class: "row spread" }, el("h1", {}, "Companions"),
      el("button", { type: "button", id: "create-companion", class: "primary", onclick: () => create(root) }, "New companion")),
    fileDrop("Import a character card: drop a PNG or JSON card here, or choose a file", ".png,.json,.webp,.jpg,.jpeg,application/json,image/*",
      (file) => importCard(file, root), "card-file"),
    filterBar(root, list), list));
  await showMatches(root, list);
}

/** The search box, the tags (from every companion's card) to filter by, and the sort. */
function filterBar(root, list) {
  let timer = 0;
  const search = el("input", { type: "search", id: "companion-search", value: filters.q, placeholder: "Search name, description, notes…",
    "aria-label": "Search companions", maxlength: 200 });
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { filters.q = search.value.trim(); showMatches(root, list); }, 200);
  });
  const sort = el("select", { id: "companion-sort", "aria-label": "Sort companions" },
    SORTS.map(([value, label]) => el("option", { value, selected: value === filters.sort }, label)));
  sort.addEventListener("change", () => { filters.sort = sort.value; showMatches(root, list); });
  const known = [...new Set(state.companions.flatMap((c) => c.tags || []))].sort((a, b) => a.localeCompare(b));
  for (const tag of filters.tags) if (!known.includes(tag)) filters.tags.delete(tag);
  const tags = known.map((tag) => el("button", { type: "button", class: "tag tag-filter", "aria-pressed": String(filters.tags.has(tag)),
    dataset: { tag }, onclick: (e) => {
      if (filters.tags.has(tag)) filters.tags.delete(tag); else filters.tags.add(tag);
      e.target.setAttribute("aria-pressed", String(filters.tags.has(tag)));
      showMatches(root, list);
    } }, tag));
  return el("div", { class: "stack filters" }, el("div", { class: "row" }, search, sort),
    tags.length ? el("div", { class: "row wrap", id: "tag-filter", role: "group", "aria-label": "Show companions with all these tags" }, tags) : null);
}

/** The companions that match the filters. */
async function showMatches(root, list) {
  const [sort, order] = filters.sort.split(":");
  const page = await attempt(() => api.get(`/api/companions${qs({ q: filters.q, tags: [...filters.tags].join(","), sort, order, limit: 200 })}`));
  if (!page) return;
  clear(list, page.items.length ? page.items.map((c) => companionCard(c, root)) : el("p", { class: "muted", id: "no-match" }, "No companion matches."));
  for (const img of list.querySelectorAll("img[data-src]")) imageUrl(img.dataset.src).then((u) => { img.src = u; });
}

function companionCard(c, root) {
  return el("article", { class: `card${c.active ? " active" : ""}`, dataset: { id: c.id, name: c.name } },
    el("img", { class: "avatar large", alt: "", dataset: { src: avatarPath(c) } }),
    el("div", { class: "card-body" },
      el("h2", {}, c.name, c.active ? el("span", { class: "tag" }, "active") : null),
      el("p", { class: "muted clamp" }, c.description),
      c.tags?.length ? el("div", { class: "row wrap" }, c.tags.map((t) => el("span", { class: "tag" }, t))) : null,
      el("p", { class: "muted small" }, `${c.chat_count} chat${c.chat_count === 1 ? "" : "s"}`,
        c.last_chat_at ? ` · last ${formatDate(c.last_chat_at)}` : ""),
      el("div", { class: "row wrap" },
        el("button", { type: "button", class: "primary chat-with", onclick: () => activate(c) }, "Chat"),
        el("button", { type: "button", class: "edit-companion", onclick: () => edit(c, root) }, "Edit"),
        c.alternate_greetings?.length ? el("button", { type: "button", class: "new-chat", onclick: () => newChat(c) }, "New chat…") : null,
        el("button", { type: "button", class: "export-json", onclick: () => exportCard(c, "json") }, "Export JSON"),
        el("button", { type: "button", class: "export-png", onclick: () => exportCard(c, "png") }, "Export PNG"),
        el("button", { type: "button", class: "danger delete-companion", onclick: () => remove(c, root) }, "Delete"))));
}

async function activate(c) {
  if (await attempt(() => api.post(`/api/companions/${c.id}/activate`, {}))) location.hash = "#chat";
}

async function importCard(file, root) {
  const created = await attempt(() => api.upload("POST", "/api/companions/import", file), `Imported ${file.name}`);
  if (created) await showCompanions(root);
}

async function exportCard(c, kind) {
  const blob = await attempt(() => api.blob(`/api/companions/${c.id}/card.${kind}`));
  if (blob) download(blob, `${c.name.replace(/[^\w.-]+/g, "_") || "companion"}.${kind}`);
}

async function remove(c, root) {
  if (!(await confirmAction(`Delete ${c.name} with all their chats and memories?`))) return;
  if (await attempt(() => api.del(`/api/companions/${c.id}`), `${c.name} deleted`) !== undefined) await showCompanions(root);
}

async function create(root) {
  const created = await attempt(() => api.post("/api/companions", { name: "New companion" }));
  if (created) { await loadCompanions(); await edit(created, root); }
}

/** A list of strings edited as one textarea each, with add and remove. */
function stringList(name, label, values) {
  const items = el("div", { class: "string-list", dataset: { list: name } });
  const add = (value = "") => {
    const area = el("textarea", { rows: 3, "aria-label": label });
    area.value = value;
    items.append(el("div", { class: "string-item" }, area,
      el("button", { type: "button", class: "icon-button", "aria-label": "Remove", onclick: (e) => e.target.parentElement.remove() }, "✕")));
  };
  (values || []).forEach(add);
  return el("fieldset", {}, el("legend", {}, label), items,
    el("button", { type: "button", class: `add-${name}`, onclick: () => add() }, "Add"));
}

async function edit(c, root) {
  const [fresh, presets, voice] = await Promise.all([api.get(`/api/companions/${c.id}`), api.get("/api/presets?limit=200"), loadVoice()]);
  const form = el("form", { class: "editor", id: "companion-form" },
    TEXT_FIELDS.map(([name, label, type, rows]) => field(label, name, fresh[name], type, rows ? { rows } : {})),
    stringList("alternate_greetings", "Alternate greetings", fresh.alternate_greetings),
    stringList("group_only_greetings", "Group-only greetings", fresh.group_only_greetings),
    field("Tags (comma separated)", "tags", (fresh.tags || []).join(", ")),
    el("fieldset", {}, el("legend", {}, "Memory and style"),
      field("Long-term memories recalled per reply", "long_term_mem", fresh.long_term_mem, "number", { min: 0, max: 100 }),
      field("Recent messages in the prompt", "short_term_mem", fresh.short_term_mem, "number", { min: 0, max: 1000 }),
      field("Roleplay (*actions*)", "roleplay", fresh.roleplay, "checkbox"),
      field("Dialogue tuning (use saved examples)", "dialogue_tuning", fresh.dialogue_tuning, "checkbox"),
      el("label", {}, "Generation preset (its own generation settings win over it)",
        el("select", { name: "preset_id", id: "companion-preset" }, el("option", { value: "" }, "None: the defaults"),
          presets.items.map((p) => el("option", { value: p.id, selected: p.id === fresh.preset_id }, p.name + (p.builtin ? " (built in)" : "")))))),
    el("fieldset", { id: "initiative", dataset: { before: JSON.stringify(fresh.initiative) } }, el("legend", {}, "Writing first"),
      field("Writes to you first after a silence", "initiative_enabled", fresh.initiative.enabled, "checkbox"),
      el("div", { class: "grid" },
        field("Hours of silence", "initiative_silence_hours", fresh.initiative.silence_hours, "number", { min: 0.01, step: "any" }),
        field("Allowed local hours (e.g. 9-21)", "initiative_hours", fresh.initiative.hours),
        field("At most per day", "initiative_max_per_day", fresh.initiative.max_per_day, "number", { min: 0, max: 48, step: 1 }))),
    voiceBox(fresh, voice),
    el("details", {}, el("summary", {}, "Advanced card fields"),
      JSON_FIELDS.map(([name, label]) => field(label, name, JSON.stringify(fresh[name] ?? null, null, 2), "textarea", { rows: 3, class: "mono", dataset: { json: "1" } }))),
    el("div", { class: "row end" },
      el("button", { type: "button", onclick: () => showCompanions(root) }, "Back"),
      el("button", { type: "submit", class: "primary", id: "save-companion" }, "Save")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = collect(form);
    if (!body) return;
    if (await attempt(() => api.patch(`/api/companions/${c.id}`, body), "Saved")) {
      forgetImage(`/api/companions/${c.id}/`);
      await loadCompanions();
    }
  });

  const avatar = el("img", { class: "avatar huge", alt: `${fresh.name}'s avatar` });
  imageUrl(avatarPath(fresh, "full")).then((u) => { avatar.src = u; });
  const avatarBox = el("div", { class: "avatar-edit" }, avatar,
    fileDrop("Change the avatar: drop an image or choose one", "image/*", async (file) => {
      if (await attempt(() => api.upload("PUT", `/api/companions/${c.id}/avatar`, file), "Avatar changed")) {
        forgetImage(`/api/companions/${c.id}/`);
        const updated = (await loadCompanions()).find((x) => x.id === c.id);
        avatar.src = await imageUrl(avatarPath(updated, "full"));
      }
    }, "avatar-file"));

  clear(root, el("section", { class: "panel" },
    el("h1", {}, `Edit ${fresh.name}`), avatarBox, await lorebookBox(fresh), form));
}

/** The voice the companion speaks with (shown only where the daemon can speak). */
function voiceBox(companion, voice) {
  if (!voice?.speak?.available || !companion.voice) return null;
  const chosen = companion.voice.voice || "";
  const voices = voice.speak.voices || [];
  const options = voices.map((v) => el("option", { value: v.name, selected: v.name === chosen },
    `${v.name}${v.language ? ` (${v.language})` : ""}`));
  if (!chosen) options.unshift(el("option", { value: "", selected: true }, `The default${voice.speak.voice ? ` (${voice.speak.voice})` : ""}`));
  else if (!voices.some((v) => v.name === chosen)) options.unshift(el("option", { value: chosen, selected: true }, `${chosen} (not installed)`));
  return el("fieldset", { id: "companion-voice-box", dataset: { before: JSON.stringify(companion.voice) } }, el("legend", {}, "Voice"),
    el("div", { class: "grid" },
      el("label", {}, "Voice", el("select", { name: "voice_name", id: "companion-voice" }, options)),
      field("Speed (1: normal)", "voice_speed", companion.voice.speed ?? voice.speak.speed ?? 1, "number",
        { min: 0.25, max: 4, step: 0.05, id: "companion-voice-speed" })));
}

function collect(form) {
  const body = {};
  for (const [name, , type] of TEXT_FIELDS) body[name] = form.elements[name].value;
  if (!body.name.trim()) { toast("A companion needs a name", "error"); return null; }
  for (const list of form.querySelectorAll(".string-list")) {
    body[list.dataset.list] = [...list.querySelectorAll("textarea")].map((a) => a.value).filter((v) => v.trim());
  }
  body.tags = form.elements.tags.value.split(",").map((t) => t.trim()).filter(Boolean);
  body.long_term_mem = Number(form.elements.long_term_mem.value);
  body.short_term_mem = Number(form.elements.short_term_mem.value);
  body.roleplay = form.elements.roleplay.checked;
  body.dialogue_tuning = form.elements.dialogue_tuning.checked;
  body.preset_id = form.elements.preset_id.value ? Number(form.elements.preset_id.value) : null;
  const before = JSON.parse(form.querySelector("#initiative").dataset.before);
  const initiative = {
    silence_hours: Number(form.elements.initiative_silence_hours.value),
    hours: form.elements.initiative_hours.value.trim(),
    max_per_day: Number(form.elements.initiative_max_per_day.value),
  };
  body.initiative = { enabled: form.elements.initiative_enabled.checked };
  for (const [key, value] of Object.entries(initiative)) if (value !== before[key]) body.initiative[key] = value;  // the rest follow [initiative]
  const voiceFields = form.querySelector("#companion-voice-box");
  if (voiceFields) {   // sent when changed: a companion left alone keeps what it has
    const was = JSON.parse(voiceFields.dataset.before);
    const name = form.elements.voice_name.value;
    const speed = Number(form.elements.voice_speed.value);
    if (name !== (was.voice || "") || speed !== was.speed) body.voice = name ? { voice: name, speed } : { speed };
  }
  for (const [name, , empty] of JSON_FIELDS) {
    const text = form.elements[name].value.trim();
    try {
      body[name] = text ? JSON.parse(text) : empty;
    } catch {
      toast(`${name} is not valid JSON`, "error");
      return null;
    }
  }
  return body;
}

async function lorebookBox(companion) {
  const books = (await api.get("/api/lorebooks?limit=200")).items;
  const attached = books.filter((b) => companion.lorebook_ids.includes(b.id));
  const others = books.filter((b) => !companion.lorebook_ids.includes(b.id));
  const select = el("select", { "aria-label": "Lorebook to attach" },
    others.map((b) => el("option", { value: b.id }, b.name)));
  const reopen = async () => {
    const box = await lorebookBox(await api.get(`/api/companions/${companion.id}`));
    document.getElementById("companion-lorebooks").replaceWith(box);
  };
  return el("fieldset", { id: "companion-lorebooks" }, el("legend", {}, "Lorebooks"),
    attached.length ? el("ul", { class: "plain" }, attached.map((b) => el("li", {}, b.name, " ",
      el("button", { type: "button", onclick: async () => {
        if (await attempt(() => api.del(`/api/companions/${companion.id}/lorebooks/${b.id}`)) !== undefined) await reopen();
      } }, "Detach")))) : el("p", { class: "muted" }, "No lorebook attached."),
    others.length ? el("div", { class: "row" }, select, el("button", { type: "button", onclick: async () => {
      if (await attempt(() => api.post(`/api/companions/${companion.id}/lorebooks`, { lorebook_id: Number(select.value) }))) await reopen();
    } }, "Attach")) : null);
}

// The settings view: user personas, generation settings, the model and its status, the key.

import { api, apiKey, forgetApiKey, forgetImage, imageUrl, streamLines } from "./api.js";
import { avatarPath } from "./state.js";
import { attempt, clear, confirmAction, download, el, field, fileDrop, formValues, toast, viewIs } from "./ui.js";

const GENERATION = [
  ["max_tokens", "Max tokens per reply", { min: 1, max: 32768, step: 1 }],
  ["temperature", "Temperature", { min: 0, max: 5, step: 0.05 }],
  ["top_p", "Top p", { min: 0, max: 1, step: 0.01 }],
  ["top_k", "Top k", { min: 0, max: 100000, step: 1 }],
  ["min_p", "Min p", { min: 0, max: 1, step: 0.01 }],
  ["repeat_penalty", "Repeat penalty", { min: 0, max: 5, step: 0.01 }],
  ["seed", "Seed (-1: random)", { step: 1 }],
];

export async function showSettings(root) {
  const [personas, config, models, status, presets] = await Promise.all([
    api.get("/api/personas?limit=200"), api.get("/api/config"), api.get("/api/models"), api.get("/api/status"),
    api.get("/api/presets?limit=200")]);
  if (!viewIs("settings")) return;
  clear(root, personaPanel(root, personas.items), generationPanel(config.generation), presetPanel(root, presets.items),
    modelPanel(root, config, models.items, status), notificationPanel(root), keyPanel(root));
}

function personaPanel(root, personas) {
  const active = personas.find((p) => p.active) || personas[0];
  const form = el("form", { class: "editor", id: "persona-form" },
    field("Your name ({{user}})", "name", active.name, "text", { required: true }),
    field("About you (persona)", "persona", active.persona, "textarea", { rows: 4 }),
    el("div", { class: "row end" }, el("button", { type: "submit", class: "primary" }, "Save persona")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    await attempt(() => api.patch(`/api/personas/${active.id}`, formValues(form)), "Persona saved");
  });
  const others = personas.filter((p) => p.id !== active.id);
  return el("section", { class: "panel" }, el("h1", {}, "You"),
    personaAvatar(root, active), form,
    others.length ? el("div", { class: "list" }, el("h3", {}, "Other personas"), others.map((p) => el("article", { class: "item" },
      el("div", { class: "item-main" }, el("strong", {}, p.name), el("p", { class: "muted clamp" }, p.persona)),
      el("div", { class: "row" },
        el("button", { type: "button", onclick: async () => {
          if (await attempt(() => api.post(`/api/personas/${p.id}/activate`, {}))) await showSettings(root);
        } }, "Use"),
        el("button", { type: "button", class: "danger", onclick: async () => {
          if (!(await confirmAction(`Delete the persona ${p.name}?`))) return;
          if (await attempt(() => api.del(`/api/personas/${p.id}`)) !== undefined) await showSettings(root);
        } }, "Delete"))))) : null,
    el("div", { class: "row end" }, el("button", { type: "button", id: "new-persona", onclick: async () => {
      const created = await attempt(() => api.post("/api/personas", { name: "New persona", persona: "" }));
      if (created && await attempt(() => api.post(`/api/personas/${created.id}/activate`, {}))) await showSettings(root);
    } }, "New persona")));
}

/** The active persona's avatar (shown on your messages): upload or remove it. */
function personaAvatar(root, persona) {
  const avatarsOf = `/api/personas/${persona.id}/avatar`;
  const picture = persona.avatar_url ? el("img", { class: "avatar huge", id: "persona-avatar", alt: `${persona.name}'s avatar` })
    : el("div", { class: "avatar huge initial", id: "persona-avatar", "aria-hidden": "true" }, persona.name.slice(0, 1).toUpperCase());
  if (persona.avatar_url) imageUrl(avatarPath(persona, "full")).then((u) => { picture.src = u; });
  const changed = async (call, message) => {
    if (await attempt(call, message)) { forgetImage(avatarsOf); await showSettings(root); }
  };
  return el("div", { class: "avatar-edit" }, picture,
    fileDrop("Your avatar (shown on your messages): drop an image or choose one", "image/*",
      (file) => changed(() => api.upload("PUT", avatarsOf, file), "Avatar changed"), "persona-avatar-file"),
    persona.avatar_url ? el("button", { type: "button", id: "remove-persona-avatar",
      onclick: () => changed(() => api.del(avatarsOf), "Avatar removed") }, "Remove avatar") : null);
}

function generationPanel(generation) {
  const form = el("form", { class: "editor", id: "generation-form" },
    el("div", { class: "grid" }, GENERATION.map(([name, label, extra]) => field(label, name, generation[name], "number", extra))),
    field("Stop strings (one per line)", "stop", (generation.stop || []).join("\n"), "textarea", { rows: 2 }),
    el("div", { class: "row end" }, el("button", { type: "submit", class: "primary" }, "Save generation settings")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const values = formValues(form);
    values.stop = values.stop.split("\n").filter((s) => s.length);
    for (const [k, v] of Object.entries(values)) if (v === null) delete values[k];
    await attempt(() => api.put("/api/config", { generation: values }), "Generation settings saved");
  });
  return el("section", { class: "panel" }, el("h1", {}, "Generation"),
    el("p", { class: "muted" }, "Defaults for every companion; a companion's own settings win over them."), form);
}

/** Generation presets: the built-in ones (use, copy, export), your own (also edit, delete), import SillyTavern's. */
function presetPanel(root, presets) {
  const reload = async (result) => { if (result !== undefined && result !== null) await showSettings(root); };
  const summary = (settings) => Object.entries(settings).map(([k, v]) => `${k} ${Array.isArray(v) ? v.length : v}`).join(" · ") || "no settings";
  const item = (p) => el("article", { class: "item preset", dataset: { id: p.id, name: p.name } },
    el("div", { class: "item-main" }, el("strong", {}, p.name), p.builtin ? el("span", { class: "tag" }, "built in") : null,
      el("p", { class: "muted" }, summary(p.settings)),
      p.companion_ids.length ? el("small", { class: "muted" }, `used by ${p.companion_ids.length} companion(s)`) : null),
    el("div", { class: "row" },
      el("button", { type: "button", class: "copy-preset", onclick: async () =>
        reload(await attempt(() => api.post("/api/presets", { name: `${p.name} (copy)`, copy_of: p.id }), "Copied")) }, "Copy"),
      el("button", { type: "button", class: "export-preset", onclick: async () => {
        const blob = await attempt(() => api.blob(`/api/presets/${p.id}/export`));
        if (blob) download(blob, `${p.name.replace(/[^\w.-]+/g, "_") || "preset"}.json`);
      } }, "Export"),
      p.builtin ? null : el("button", { type: "button", class: "edit-preset", onclick: (e) => editPreset(root, p, e.target.closest(".preset")) }, "Edit"),
      p.builtin ? null : el("button", { type: "button", class: "danger delete-preset", onclick: async () => {
        const users = p.companion_ids.length ? ` ${p.companion_ids.length} companion(s) use it and will use no preset.` : "";
        if (await confirmAction(`Delete the preset ${p.name}?${users}`)) reload(await attempt(() => api.del(`/api/presets/${p.id}`), "Deleted"));
      } }, "Delete")));
  return el("section", { class: "panel", id: "presets" }, el("h1", {}, "Presets"),
    el("p", { class: "muted" }, "Named generation settings a companion can use (choose one when you edit it): the defaults above < the preset < the companion's own settings."),
    el("div", { class: "list", id: "preset-list" }, presets.map(item)),
    fileDrop("Import a SillyTavern text-generation preset (.json)", ".json,application/json", async (file) => {
      const made = await attempt(() => api.upload("POST", "/api/presets/import", file));
      if (made) {
        toast(made.ignored.length ? `Imported ${made.name}; kept for export but not used: ${made.ignored.length} settings` : `Imported ${made.name}`);
        await showSettings(root);
      }
    }, "preset-file"));
}

/** Edit a preset of one's own in place: its name and the settings it sets (empty: not set). */
function editPreset(root, preset, article) {
  const form = el("form", { class: "editor preset-form" },
    field("Name", "name", preset.name, "text", { required: true }),
    el("div", { class: "grid" }, GENERATION.map(([name, label, extra]) => field(label, name, preset.settings[name], "number", { ...extra, step: extra.step ?? "any" }))),
    el("div", { class: "row end" }, el("button", { type: "button", onclick: () => showSettings(root) }, "Cancel"),
      el("button", { type: "submit", class: "primary" }, "Save preset")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const { name, ...settings } = formValues(form);
    if (await attempt(() => api.patch(`/api/presets/${preset.id}`, { name, settings }), "Preset saved")) await showSettings(root);
  });
  article.replaceWith(form);
}

function modelPanel(root, config, models, status) {
  const model = status.model;
  const select = el("select", { id: "model-select", "aria-label": "Model" }, models.map((m) =>
    el("option", { value: m.path, selected: m.active }, `${m.name} (${(m.size / 1048576).toFixed(0)} MiB${m.context_length ? `, trained for ${m.context_length} tokens` : ""})`)));
  const nCtx = field(`Context length (tokens; 0: chosen for the model, now ${config.model.n_ctx_in_use})`, "n_ctx",
    config.model.n_ctx, "number", { min: 0, step: 256, title: config.model.n_ctx_reason });
  return el("section", { class: "panel" }, el("h1", {}, "Model"),
    el("p", { id: "model-state" }, "State: ", el("strong", { class: `state-${model.state}` }, model.state),
      ` · ${model.name || "no model"}`, model.error ? el("span", { class: "error" }, ` · ${model.error}`) : null),
    model.prompt_format ? el("p", { id: "prompt-format", class: model.prompt_format === "transcript" ? "warning" : "muted" },
      `Prompt format: ${model.prompt_format} (${model.prompt_format_note})`) : null,
    config.pending_model ? el("p", { class: "muted" }, `Loading ${config.pending_model.path}: ${config.pending_model.state}`) : null,
    config.last_error ? el("p", { class: "error" }, config.last_error) : null,
    el("p", { class: "muted" }, `Embedder: ${status.embedder.name} (${status.embedder.state}) · ${status.counts.memories} memories, ${status.counts.messages} messages`),
    config.model.backend === "local" ? el("div", { class: "stack" }, el("label", {}, "Model file ", select), nCtx,
      el("div", { class: "row end" }, el("button", { type: "button", class: "primary", onclick: async () => {
        const n_ctx = Number(nCtx.querySelector("input").value);
        if (await attempt(() => api.put("/api/config", { model: { path: select.value, n_ctx } }),
          "Loading the model; the current one answers until it is ready")) await showSettings(root);
      } }, "Use this model")), config.model.allow_pull ? pullPanel(root, models) : null)
      : el("p", {}, `Generation runs on ${config.model.base_url} (${config.model.model || "its default model"}).`));
}

const gigabytes = (bytes) => (bytes / 1e9).toFixed(2);

/** "Get a model": pull a GGUF by reference (POST /api/pull, NDJSON progress), then list it, selected. */
function pullPanel(root, models) {
  const input = el("input", { type: "text", id: "pull-ref", class: "wide", required: true, spellcheck: "false",
    placeholder: "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", "aria-label": "Model to get" });
  const bar = el("progress", { id: "pull-progress", max: 1, value: 0, hidden: true });
  const line = el("p", { id: "pull-status", class: "muted", role: "status" },
    "A GGUF from Hugging Face (hf.co/OWNER/REPO:QUANT, OWNER/REPO/FILE.gguf) or an https:// link to a .gguf.");
  const button = el("button", { type: "submit", id: "pull-button" }, "Get");
  const form = el("form", { class: "stack", id: "pull-form" }, el("h3", {}, "Get a model"),
    el("div", { class: "row" }, input, button), bar, line);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    button.disabled = input.disabled = true;
    bar.hidden = false;
    bar.removeAttribute("value");   // indeterminate until the size is known
    line.className = "muted";
    const known = new Set(models.map((m) => m.path));
    try {
      await streamLines("/api/pull", { model: input.value.trim() }, (step) => {
        if (step.total) {
          bar.max = step.total;
          bar.value = step.completed;
          line.textContent = `Downloading: ${gigabytes(step.completed)} of ${gigabytes(step.total)} GB`;
        } else {
          line.textContent = step.status === "verifying sha256 digest" ? "Checking the file…" : step.status;
        }
      });
      toast("Model downloaded: choose it above and press Use this model");
      await showSettings(root);
      const fresh = (await api.get("/api/models")).items.find((m) => !known.has(m.path));
      const select = root.querySelector("#model-select");
      if (fresh && select) select.value = fresh.path;
    } catch (err) {
      line.className = "error";
      line.textContent = err.message || String(err);
      bar.hidden = true;
      button.disabled = input.disabled = false;
    }
  });
  return form;
}

function notificationPanel(root) {
  const supported = "Notification" in window;
  const permission = supported ? Notification.permission : "unsupported";
  return el("section", { class: "panel", id: "notifications" }, el("h1", {}, "Notifications"),
    el("p", { class: "muted" }, "A companion that writes first (turn it on in its settings) can show a system notification while this page is in the background."),
    el("p", { id: "notification-state" }, { granted: "Notifications are allowed.", denied: "Notifications are blocked in this browser's site settings.",
      default: "Notifications are not allowed yet.", unsupported: "This browser has no notifications (a page served over plain http from another machine may not get them)." }[permission]),
    permission === "default" ? el("button", { type: "button", id: "allow-notifications", onclick: async () => {
      await Notification.requestPermission();
      await showSettings(root);
    } }, "Allow notifications") : null);
}

function keyPanel(root) {
  return el("section", { class: "panel" }, el("h1", {}, "API key"),
    el("p", { class: "muted" }, apiKey() ? "This browser sends an API key." : "This browser sends no API key; the page asks for one when the daemon needs it."),
    apiKey() ? el("button", { type: "button", onclick: () => { forgetApiKey(); toast("Key forgotten"); showSettings(root); } }, "Forget the key") : null);
}

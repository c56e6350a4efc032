// The settings view: user personas, generation settings, the model and its status, the key.

import { api, apiKey, forgetApiKey, streamLines } from "./api.js";
import { attempt, clear, confirmAction, el, field, formValues, toast } from "./ui.js";

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
  const [personas, config, models, status] = await Promise.all([
    api.get("/api/personas?limit=200"), api.get("/api/config"), api.get("/api/models"), api.get("/api/status")]);
  clear(root, personaPanel(root, personas.items), generationPanel(config.generation),
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
    form,
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

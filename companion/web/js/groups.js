// The groups view: group chats' groups (two or more companions): create, edit the members,
// their order, who is muted, how talkative each is, the activation strategy; chat; delete.

import { api, imageUrl } from "./api.js";
import { loadCompanions, loadGroups, state } from "./state.js";
import { attempt, clear, confirmAction, el, toast, viewIs } from "./ui.js";

const STRATEGIES = [
  ["natural", "Natural: those named reply first, then others by talkativeness"],
  ["list", "List: every unmuted member, in order"],
  ["manual", "Manual: only the member you ask (\"let X speak\")"],
];

export async function showGroups(root) {
  await loadCompanions();
  await loadGroups();
  if (!viewIs("groups")) return;
  const list = el("div", { class: "cards", id: "group-list" }, state.groups.map((g) => groupCard(g, root)));
  clear(root, el("section", { class: "panel" },
    el("div", { class: "row spread" }, el("h1", {}, "Groups"),
      el("button", { type: "button", id: "create-group", class: "primary", onclick: () => edit(null, root) }, "New group")),
    state.groups.length ? list : el("p", { class: "muted" }, "No group yet: a group chat talks with two or more companions at once.")));
  for (const img of list.querySelectorAll("img[data-src]")) imageUrl(img.dataset.src).then((u) => { img.src = u; });
}

function groupCard(g, root) {
  return el("article", { class: `card${g.active ? " active" : ""}`, dataset: { id: g.id, name: g.name } },
    el("img", { class: "avatar large", alt: "", dataset: { src: `${g.avatar_url}?v=${encodeURIComponent(g.updated_at)}` } }),
    el("div", { class: "card-body" },
      el("h2", {}, g.name, g.active ? el("span", { class: "tag" }, "active") : null),
      el("p", { class: "muted" }, g.members.map((m) => m.name + (m.muted ? " (muted)" : "")).join(", "), ` · ${g.strategy}`),
      el("div", { class: "row wrap" },
        el("button", { type: "button", class: "primary chat-with-group", onclick: () => activate(g) }, "Chat"),
        el("button", { type: "button", class: "edit-group", onclick: () => edit(g, root) }, "Edit"),
        el("button", { type: "button", class: "danger delete-group", onclick: () => remove(g, root) }, "Delete"))));
}

async function activate(g) {
  if (await attempt(() => api.post(`/api/groups/${g.id}/activate`, {}))) location.hash = "#chat";
}

async function remove(g, root) {
  if (!(await confirmAction(`Delete the group ${g.name} with its chats? Its members stay.`))) return;
  if (await attempt(() => api.del(`/api/groups/${g.id}`), `${g.name} deleted`) !== undefined) await showGroups(root);
}

/** The group editor: a new group (g null) or a change of one. */
async function edit(g, root) {
  const presets = (await api.get("/api/presets?limit=200")).items;
  const members = g ? g.members.map((m) => ({ ...m })) : [];
  const preset = el("select", { id: "group-preset", "aria-label": "Generation preset" },
    el("option", { value: "" }, "(none: each member's own settings)"),
    presets.map((p) => el("option", { value: p.id, selected: g?.preset_id === p.id }, p.name)));
  const name = el("input", { id: "group-name", value: g ? g.name : "", required: true, "aria-label": "Group name" });
  const strategy = el("select", { id: "group-strategy", "aria-label": "Who replies" },
    STRATEGIES.map(([value, label]) => el("option", { value, selected: (g?.strategy || "natural") === value }, label)));
  const rows = el("ol", { id: "group-members", class: "plain" });
  const adder = el("select", { id: "group-add-member", "aria-label": "Companion to add" });
  const draw = () => {
    clear(rows, members.map((m, i) => el("li", { class: "row wrap member", dataset: { id: m.companion_id } },
      el("strong", {}, m.name),
      el("label", { class: "inline" }, el("input", { type: "checkbox", class: "member-muted", checked: m.muted,
        onchange: (e) => { m.muted = e.target.checked; } }), " muted"),
      el("label", { class: "inline" }, "talkativeness ", el("input", { type: "number", class: "member-talkativeness",
        min: 0, max: 1, step: 0.1, value: m.talkativeness ?? "", placeholder: "card's",
        onchange: (e) => { m.talkativeness = e.target.value === "" ? null : Number(e.target.value); } })),
      el("button", { type: "button", class: "icon-button", "aria-label": `Move ${m.name} up`, disabled: i === 0,
        onclick: () => { members.splice(i - 1, 0, members.splice(i, 1)[0]); draw(); } }, "↑"),
      el("button", { type: "button", class: "icon-button", "aria-label": `Move ${m.name} down`, disabled: i === members.length - 1,
        onclick: () => { members.splice(i + 1, 0, members.splice(i, 1)[0]); draw(); } }, "↓"),
      el("button", { type: "button", class: "icon-button remove-member", "aria-label": `Remove ${m.name}`,
        onclick: () => { members.splice(i, 1); draw(); } }, "✕"))));
    const ids = new Set(members.map((m) => m.companion_id));
    clear(adder, state.companions.filter((c) => !ids.has(c.id)).map((c) => el("option", { value: c.id }, c.name)));
  };
  draw();
  const add = el("button", { type: "button", id: "group-add", onclick: () => {
    const c = state.companions.find((x) => x.id === Number(adder.value));
    if (c) { members.push({ companion_id: c.id, name: c.name, muted: false, talkativeness: null }); draw(); }
  } }, "Add");
  const save = el("button", { type: "submit", class: "primary", id: "save-group" }, g ? "Save" : "Create group");
  const form = el("form", { class: "editor", id: "group-form" },
    el("label", {}, "Name", name), el("label", {}, "Who replies", strategy),
    el("label", {}, "Generation preset for the members' replies", preset),
    el("fieldset", {}, el("legend", {}, "Members, in order"), rows, el("div", { class: "row" }, adder, add)),
    el("div", { class: "row end" }, el("button", { type: "button", onclick: () => showGroups(root) }, "Back"), save));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (members.length < 2) return toast("A group needs at least two members", "error");
    const body = { name: name.value.trim(), strategy: strategy.value, preset_id: preset.value ? Number(preset.value) : null,
      members: members.map(({ companion_id, muted, talkativeness }) => ({ companion_id, muted, talkativeness })) };
    const done = await attempt(() => (g ? api.patch(`/api/groups/${g.id}`, body) : api.post("/api/groups", body)),
      g ? "Group saved" : "Group created");
    if (done) await showGroups(root);
  });
  clear(root, el("section", { class: "panel" }, el("h1", {}, g ? `Edit ${g.name}` : "New group"), form));
  name.focus();
}

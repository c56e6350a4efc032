// What several views share: the companions and the active one.

import { api, imageUrl } from "./api.js";

export const state = {
  companions: [],
  groups: [],
  jumpTo: null, // a message id the chat view should scroll to once
};

export async function loadCompanions() {
  const page = await api.get("/api/companions?limit=200");
  state.companions = page.items;
  showActive();
  return state.companions;
}

export async function loadGroups() {
  const page = await api.get("/api/groups?limit=200");
  state.groups = page.items;
  showActive();
  return state.groups;
}

/** The group the page talks to, when one is active (else a single companion is). */
export function activeGroup() {
  return state.groups.find((g) => g.active) || null;
}

export function activeCompanion() {
  return state.companions.find((c) => c.active) || state.companions[0] || null;
}

export function companionById(id) {
  return state.companions.find((c) => c.id === id) || null;
}

/** The active companion's name and avatar in the top bar. */
export async function showActive() {
  const group = activeGroup();
  const companion = activeCompanion();
  const name = document.getElementById("top-name");
  const avatar = document.getElementById("top-avatar");
  name.textContent = group ? group.name : companion ? companion.name : "companion";
  if (group || companion) {
    avatar.src = await imageUrl(group ? `${group.avatar_url}?v=${encodeURIComponent(group.updated_at)}` : avatarPath(companion));
    avatar.hidden = false;
  }
}

export function avatarPath(companion, size = "thumb") {
  return `${companion.avatar_url}?size=${size}&v=${encodeURIComponent(companion.updated_at || "")}`;
}

/** A <select id=...> of the companions, the given (or active) one chosen; onChange(id). */
export function companionPicker(id, selected, onChange) {
  const select = document.createElement("select");
  select.id = id;
  select.setAttribute("aria-label", "Companion");
  select.append(...companionOptions(selected));
  select.addEventListener("change", () => onChange(Number(select.value)));
  return select;
}

/** Fresh companions; the given id when it still exists, else the active companion's. */
export async function chosenOrActive(id) {
  await loadCompanions();
  return companionById(id) ? id : activeCompanion()?.id;
}

/** <option>s of the companions, the given (or active) one chosen. */
export function companionOptions(selected) {
  const chosen = selected ?? activeCompanion()?.id;
  return state.companions.map((c) => {
    const option = document.createElement("option");
    option.value = c.id;
    option.textContent = c.name + (c.active ? " (active)" : "");
    option.selected = c.id === chosen;
    return option;
  });
}

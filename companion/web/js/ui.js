// DOM helpers: elements built with textContent (never from strings), toasts, dialogs, downloads.

/** el("button", {class: "x", onclick: f}, "text", child) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "value") node.value = value;
    else if (key === "checked") node.checked = Boolean(value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, value);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Whether the page still shows this view: a view drawn again after an await (a save, a reload)
 * draws nothing once the person has gone to another one, so it never covers the view shown now. */
export function viewIs(name) {
  return document.body.dataset.view === name;
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const item = el("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 3500);
}

/** Run an async action; show its error as a toast instead of failing silently. */
export async function attempt(action, success) {
  try {
    const result = await action();
    if (success) toast(success);
    return result;
  } catch (err) {
    toast(err.message || String(err), "error");
    return undefined;
  }
}

/** A modal with a title, content and buttons; resolves with the button's value (or null). */
export function modal(title, content, buttons = [["Close", null]]) {
  const dialog = document.getElementById("modal");
  return new Promise((resolve) => {
    const form = el("form", { method: "dialog" },
      el("h2", {}, title), content,
      el("div", { class: "row end" }, buttons.map(([label, value, cls]) =>
        el("button", { type: "submit", value: value ?? "", class: cls || "", dataset: { value: value ?? "" } }, label))));
    clear(dialog, form);
    const done = (value) => { dialog.close(); resolve(value); };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const value = e.submitter?.dataset.value;
      if (value && !form.reportValidity()) return;
      done(value || null);
    });
    dialog.addEventListener("cancel", () => resolve(null), { once: true });
    dialog.showModal();
  });
}

export async function confirmAction(question, label = "Delete") {
  return (await modal("Are you sure?", el("p", {}, question), [["Cancel", null], [label, "yes", "danger"]])) === "yes";
}

/** Ask for one line of text; resolves with it or null. */
export async function askText(title, label, value = "") {
  const input = el("input", { type: "text", value, required: true, class: "wide", "aria-label": label });
  const answer = await modal(title, el("label", {}, label, input), [["Cancel", null], ["Save", "save", "primary"]]);
  return answer ? input.value : null;
}

export function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = el("textarea", { class: "offscreen" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast("Copied");
}

export function formatDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** A labelled field: input (type), textarea ("textarea") or checkbox ("checkbox"). */
export function field(label, name, value, type = "text", extra = {}) {
  let input;
  if (type === "textarea") {
    input = el("textarea", { name, rows: extra.rows || 4, ...extra });
    input.value = value ?? "";
  } else if (type === "checkbox") {
    input = el("input", { type: "checkbox", name, checked: value, ...extra });
    return el("label", { class: "inline" }, input, " ", label);
  } else {
    input = el("input", { type, name, value: value ?? "", ...extra });
  }
  return el("label", {}, label, input);
}

/** Values of a form's named fields, numbers as numbers, checkboxes as booleans. */
export function formValues(form) {
  const values = {};
  for (const input of form.querySelectorAll("[name]")) {
    if (input.type === "checkbox") values[input.name] = input.checked;
    else if (input.type === "number") values[input.name] = input.value === "" ? null : Number(input.value);
    else values[input.name] = input.value;
  }
  return values;
}

/** A file chooser that also accepts files dropped on it. */
export function fileDrop(label, accept, onFile, id) {
  const input = el("input", { type: "file", accept, id, onchange: () => { if (input.files[0]) onFile(input.files[0]); input.value = ""; } });
  const zone = el("label", { class: "drop" }, el("span", {}, label), input);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files[0]) onFile(e.dataTransfer.files[0]);
  });
  return zone;
}

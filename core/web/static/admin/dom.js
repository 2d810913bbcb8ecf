// A tiny element builder: h("button", {type: "button", onclick: f}, "text", child, ...).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A labelled control: <div><label for=id>text</label>control</div>. */
export function field(text, control) {
  return h("div", {}, h("label", { for: control.id }, text), control);
}

/** A <select> with options [{value, label}] (strings allowed). */
export function select(id, options, value = "") {
  const el = h("select", { id, name: id });
  for (const option of options) {
    const o = typeof option === "string" ? { value: option, label: option } : option;
    el.append(h("option", { value: o.value, selected: o.value === value }, o.label));
  }
  return el;
}

export function show(el, visible) {
  el.hidden = !visible;
}

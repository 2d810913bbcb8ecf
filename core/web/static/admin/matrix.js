// Role × field matrix: who may read/write each field and call each operation, own grants
// apart from inherited ones, each role's row scope; toggling a cell changes the role's
// policy through grantPermission/revokePermission (audited, with a reason).

import { allows, data, keyMatch, mutations } from "./api.js";
import { alarm, confirmChanges, failed, say } from "./app.js";
import { field, h, select } from "./dom.js";

const QUERY = `{
  policies { role inherits scope permissions { object action }
             effectivePermissions { object action } }
  policyObjects { object kind typeName fieldName description }
}`;
const filters = { role: "", type: "", text: "" };

/** Apply grants then revokes (so a failure half-way never takes more away than asked). */
export async function applyChanges(changes, reason) {
  const ordered = [...changes].sort((a, b) => (a.op === b.op ? 0 : a.op === "grant" ? -1 : 1));
  const calls = ordered.map((c) => ({
    field: `${c.op}Permission`,
    input: { role: c.role, object: c.object, action: c.action, reason },
  }));
  await mutations(calls, "PermissionInput", "permission { object }");
}

export function describe(change) {
  return `${change.op} ${change.role}: ${change.action} on ${change.object}`;
}

/** The state of one cell: own (exact line or a wildcard of its own), inherited or none. */
function cellState(policy, object, action) {
  const exact = policy.permissions.find((p) => p.object === object && p.action === action);
  if (exact) return { kind: "own", line: exact.object };
  const wildcard = policy.permissions.find((p) => p.action === action && keyMatch(object, p.object));
  if (wildcard) return { kind: "own", line: wildcard.object };
  if (allows(policy.effectivePermissions, object, action)) return { kind: "inherited" };
  return { kind: "none" };
}

/** The ancestors of ``role`` that grant ``action`` on ``object`` themselves. */
function grantors(byRole, role, object, action, seen = new Set()) {
  const found = [];
  for (const parent of byRole[role].inherits) {
    if (seen.has(parent) || !byRole[parent]) continue;
    seen.add(parent);
    const own = byRole[parent].permissions.find(
      (p) => p.action === action && keyMatch(object, p.object)
    );
    if (own) found.push(`${parent} (${own.object})`);
    found.push(...grantors(byRole, parent, object, action, seen));
  }
  return found;
}

/** The roles that inherit ``role``, directly or not. */
function heirs(byRole, role) {
  const found = new Set();
  let grew = true;
  while (grew) {
    grew = false;
    for (const [name, policy] of Object.entries(byRole)) {
      if (!found.has(name) && policy.inherits.some((p) => p === role || found.has(p))) {
        found.add(name);
        grew = true;
      }
    }
  }
  return [...found].sort();
}

/** The changes that toggle one cell, or a string saying why it cannot be toggled here. */
function toggle(model, role, object, action) {
  const policy = model.byRole[role];
  const state = cellState(policy, object, action);
  if (state.kind === "none") return [{ op: "grant", role, object, action }];
  if (state.kind === "inherited") {
    const from = grantors(model.byRole, role, object, action).join(", ");
    return `${role} inherits ${action} on ${object} from ${from}: change it there (its other heirs change too).`;
  }
  if (state.line === object) return [{ op: "revoke", role, object, action }];
  if (state.line === "*") {
    return `${role} may ${action} everything ('*'): narrow that with explicit grants first.`;
  }
  // A wildcard of its own (Type.*): replace it by every other object of the type.
  const type = state.line.slice(0, -2);
  const others = model.objects
    .filter((o) => o.typeName === type && o.object !== object)
    .filter((o) => (action === "call") === (o.kind === "OPERATION"))
    .filter((o) => !policy.permissions.some((p) => p.object === o.object && p.action === action));
  return [
    ...others.map((o) => ({ op: "grant", role, object: o.object, action })),
    { op: "revoke", role, object: state.line, action },
  ];
}

async function load() {
  const result = await data(QUERY);
  const byRole = Object.fromEntries(result.policies.map((p) => [p.role, p]));
  return { roles: result.policies.map((p) => p.role), byRole, objects: result.policyObjects };
}

const LABELS = { read: "R", write: "W", call: "call" };

function renderTable(model) {
  const roles = filters.role ? [filters.role] : model.roles;
  const text = filters.text.toLowerCase();
  const objects = model.objects.filter(
    (o) =>
      (!filters.type || o.typeName === filters.type) &&
      (!text || o.object.toLowerCase().includes(text))
  );
  const head = h(
    "tr",
    {},
    h("th", { scope: "col" }, "Field or operation"),
    roles.map((r) =>
      h(
        "th",
        { scope: "col" },
        r,
        h(
          "span",
          { class: "scope" },
          `scope ${model.byRole[r].scope}`,
          model.byRole[r].inherits.length ? ` · inherits ${model.byRole[r].inherits.join(", ")}` : ""
        )
      )
    )
  );
  const body = h("tbody");
  let group = null;
  for (const o of objects) {
    if (o.typeName !== group) {
      group = o.typeName;
      body.append(
        h("tr", { class: "group" }, h("th", { scope: "rowgroup", colspan: roles.length + 1 }, group))
      );
    }
    const actions = o.kind === "OPERATION" ? ["call"] : ["read", "write"];
    body.append(
      h(
        "tr",
        {},
        h("th", { scope: "row", title: o.description || "" }, o.object),
        roles.map((r) =>
          h(
            "td",
            { class: "cell" },
            actions.map((a) => {
              const state = cellState(model.byRole[r], o.object, a);
              const how =
                state.kind === "own"
                  ? state.line === o.object
                    ? "own grant"
                    : `own grant through ${state.line}`
                  : state.kind === "inherited"
                    ? "inherited"
                    : "not granted";
              return h(
                "button",
                {
                  type: "button",
                  class: `perm ${state.kind}`,
                  "data-role": r,
                  "data-object": o.object,
                  "data-action": a,
                  "aria-pressed": state.kind !== "none" ? "true" : "false",
                  "aria-label": `${r}: ${a} ${o.object}, ${how}`,
                  title: `${r}: ${a} ${o.object} — ${how}`,
                },
                state.kind === "none" ? "–" : LABELS[a]
              );
            })
          )
        )
      )
    );
  }
  if (!objects.length) {
    body.append(h("tr", {}, h("td", { colspan: roles.length + 1 }, "Nothing matches the filters.")));
  }
  return h(
    "div",
    { class: "table-wrap" },
    h("table", { id: "matrix-table" }, h("caption", { class: "hint" }, `${objects.length} objects`), h("thead", {}, head), body)
  );
}

export async function matrixPage(page) {
  let model = await load();
  const types = [...new Set(model.objects.map((o) => o.typeName))].sort();
  const roleFilter = select("filter-role", [{ value: "", label: "All roles" }, ...model.roles], filters.role);
  const typeFilter = select("filter-type", [{ value: "", label: "All types" }, ...types], filters.type);
  const textFilter = h("input", { id: "filter-text", type: "search", value: filters.text, placeholder: "e.g. annualRevenue" });
  const tableSlot = h("div");
  const redraw = () => tableSlot.replaceChildren(renderTable(model));
  const reload = async () => {
    model = await load();
    redraw();
  };
  roleFilter.addEventListener("change", () => { filters.role = roleFilter.value; redraw(); });
  typeFilter.addEventListener("change", () => { filters.type = typeFilter.value; redraw(); });
  textFilter.addEventListener("input", () => { filters.text = textFilter.value; redraw(); });

  const run = async (title, intro, changes) => {
    const reason = await confirmChanges(title, intro, changes.map(describe));
    if (reason === null) return say("Cancelled; nothing changed.");
    try {
      await applyChanges(changes, reason);
      await reload();
      say(`Applied ${changes.length} change(s): ${changes.map(describe).join("; ")}`);
    } catch (error) {
      failed(error);
      await reload().catch(failed);
    }
  };

  tableSlot.addEventListener("click", async (event) => {
    const button = event.target.closest("button.perm");
    if (!button) return;
    const { role, object, action } = button.dataset;
    const changes = toggle(model, role, object, action);
    if (typeof changes === "string") {
      alarm("");
      say(changes);
      return;
    }
    const granting = changes.length === 1 && changes[0].op === "grant";
    const others = heirs(model.byRole, role);
    await run(
      granting ? `Grant ${action} on ${object} to ${role}?` : `Take ${action} on ${object} from ${role}?`,
      `These policy changes apply from their next request to every user with role ${role}` +
        (others.length ? ` and with the roles inheriting it (${others.join(", ")})` : "") +
        ":",
      changes
    );
  });

  // Bulk: copy a role (its effective permissions and scope), grant a whole type.
  const copyFrom = select("copy-from", model.roles);
  const copyTo = h("input", { id: "copy-to", required: true, pattern: "[a-z][a-z0-9_]{0,63}", placeholder: "new_role" });
  const copyForm = h("form", {}, field("Copy role", copyFrom), field("to new role", copyTo), h("button", { type: "submit" }, "Copy…"));
  copyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const source = model.byRole[copyFrom.value];
    const target = copyTo.value.trim();
    if (model.byRole[target]) return alarm(`Role ${target} already exists.`);
    const changes = [
      ...source.effectivePermissions.map((p) => ({ op: "grant", role: target, object: p.object, action: p.action })),
      { op: "grant", role: target, object: "Customer", action: `scope:${source.scope}` },
    ];
    await run(`Create role ${target} as a copy of ${source.role}?`, "Its permissions, inherited ones included, and its row scope:", changes);
  });
  const typeRole = select("type-role", model.roles);
  const typeName = select("type-name", types.filter((t) => t !== "Query" && t !== "Mutation"));
  const typeAction = select("type-action", ["read", "write"]);
  const typeForm = h("form", {}, field("Grant role", typeRole), field("action", typeAction), field("on every field of", typeName), h("button", { type: "submit" }, "Grant…"));
  typeForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const change = { op: "grant", role: typeRole.value, object: `${typeName.value}.*`, action: typeAction.value };
    await run(`Grant ${change.action} on all of ${typeName.value}?`, "This policy change:", [change]);
  });

  page.replaceChildren(
    h("h2", {}, "Roles & fields"),
    h("p", { class: "legend hint" },
      h("span", {}, h("span", { class: "perm own" }, "R"), " own grant"),
      h("span", {}, h("span", { class: "perm inherited" }, "R"), " inherited from a parent role"),
      h("span", {}, h("span", { class: "perm" }, "–"), " not granted"),
      "Activate a cell to grant or revoke; you will see the exact change first."),
    h("div", { class: "toolbar", role: "search" }, field("Role", roleFilter), field("Type", typeFilter), field("Search", textFilter)),
    h("div", { class: "bulk" }, h("fieldset", {}, h("legend", {}, "Copy a role"), copyForm), h("fieldset", {}, h("legend", {}, "Grant a whole type"), typeForm)),
    tableSlot
  );
  redraw();
}

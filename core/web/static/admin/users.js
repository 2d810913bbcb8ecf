// Users and roles: list and filter, add a user, change roles, deactivate (after seeing what
// the deactivation does to their customers: interim owners and the requests it opens).

import { allows, data, mutations } from "./api.js";
import { alarm, confirmChanges, failed, say, session } from "./app.js";
import { field, h, select } from "./dom.js";

const USERS = `{
  users(first: 100) { totalCount edges { node {
    id name email team active roles accountCount manager { id } } } }
}`;
const ROLES = "{ policies { role } }";
const CREATE = `mutation ($input: CreateUserInput!) { createUser(input: $input) { user { id } } }`;
const DEACTIVATE = `mutation ($input: DeactivateUserInput!) {
  deactivateUser(input: $input) {
    dryRun requests { id }
    releases { customer { id name } interimOwner { id name } opensRequest }
  }
}`;
const filters = { text: "", role: "", activeOnly: true };

async function changeRoles(user, wanted) {
  const have = new Set(user.roles || []);
  const parts = [
    ...[...wanted].filter((r) => !have.has(r)).map((r) => ["assign", r]),
    ...[...have].filter((r) => !wanted.has(r)).map((r) => ["unassign", r]),
  ];
  if (!parts.length) return say("No change.");
  const reason = await confirmChanges(
    `Change ${user.id}'s roles?`,
    "Effective on their next request:",
    parts.map(([op, r]) => `${op} ${r}`)
  );
  if (reason === null) return say("Cancelled; nothing changed.");
  const calls = parts.map(([op, role]) => ({
    field: `${op}Role`,
    input: { userId: user.id, role, reason },
  }));
  await mutations(calls, "RoleInput", "user { id }");
  say(`Roles of ${user.id} changed: ${parts.map(([op, r]) => `${op} ${r}`).join(", ")}.`);
}

async function deactivate(user) {
  const preview = (await data(DEACTIVATE, { input: { userId: user.id, dryRun: true } })).deactivateUser;
  const lines = preview.releases.map((r) => {
    const name = r.customer ? `${r.customer.name} (${r.customer.id})` : "a customer outside your scope";
    const next = r.interimOwner ? `interim owner ${r.interimOwner.id}` : "no interim owner (stays unowned)";
    const request = r.opensRequest ? "opens an OWNER_LEFT request" : "a request is already pending";
    return `${name}: ${next}; ${request}`;
  });
  const reason = await confirmChanges(
    `Deactivate ${user.id}?`,
    lines.length
      ? `They can no longer sign in. Their ${lines.length} customer(s):`
      : "They can no longer sign in. They own no customers.",
    lines.length ? lines : ["(no customers)"]
  );
  if (reason === null) return say("Cancelled; nothing changed.");
  const done = (await data(DEACTIVATE, { input: { userId: user.id, reason } })).deactivateUser;
  say(`${user.id} deactivated; ${done.requests.length} OWNER_LEFT request(s) opened.`);
}

export async function usersPage(page) {
  // Offer only the actions the viewer's own policies allow.
  const may = (op) => allows(session.viewer.permissions, op, "call");
  const canChangeRoles = may("Mutation.assignRole") && may("Mutation.unassignRole");
  let users = (await data(USERS, {}, { partial: true })).users;
  let roles = [];
  try {
    roles = (await data(ROLES)).policies.map((p) => p.role).filter((r) => r !== "staff");
  } catch (error) {
    roles = [...new Set(users.edges.flatMap((e) => e.node.roles || []))].sort();
  }
  const text = h("input", { id: "users-text", type: "search", value: filters.text, placeholder: "id, name or team" });
  const role = select("users-role", [{ value: "", label: "Any role" }, ...roles], filters.role);
  const active = h("input", { id: "users-active", type: "checkbox", checked: filters.activeOnly });
  const body = h("tbody");
  const count = h("p", { class: "hint" });
  const reload = async () => {
    users = (await data(USERS, {}, { partial: true })).users;
    draw();
  };
  const act = (work) => async () => {
    try {
      await work();
    } catch (error) {
      failed(error);
    }
    await reload().catch(failed);
  };
  const draw = () => {
    const t = filters.text.toLowerCase();
    const shown = users.edges
      .map((e) => e.node)
      .filter((u) => !filters.activeOnly || u.active)
      .filter((u) => !filters.role || (u.roles || []).includes(filters.role))
      .filter((u) => !t || [u.id, u.name, u.team].some((v) => v && v.toLowerCase().includes(t)));
    count.textContent = `${shown.length} shown of ${users.totalCount} users.`;
    body.replaceChildren(
      ...shown.map((u) => {
        const boxes = roles.map((r) =>
          h("label", {}, h("input", { type: "checkbox", value: r, checked: (u.roles || []).includes(r), disabled: !u.active }), r)
        );
        const save = h("button", { type: "button", class: "secondary", disabled: !u.active }, "Save roles…");
        save.addEventListener(
          "click",
          act(() => changeRoles(u, new Set(boxes.map((b) => b.firstChild).filter((c) => c.checked).map((c) => c.value))))
        );
        const off = h("button", { type: "button", class: "danger", disabled: !u.active }, "Deactivate…");
        off.addEventListener("click", act(() => deactivate(u)));
        return h(
          "tr",
          { "data-user": u.id },
          h("th", { scope: "row" }, u.id),
          h("td", {}, u.name || ""),
          h("td", {}, u.team || ""),
          h("td", {}, u.manager ? u.manager.id : ""),
          h("td", {}, u.active ? "active" : "deactivated"),
          h("td", {}, u.accountCount ?? ""),
          h("td", { class: "roles-edit" },
            canChangeRoles ? [h("fieldset", { "aria-label": `Roles of ${u.id}` }, boxes), save] : (u.roles || []).join(", ")),
          h("td", {}, may("Mutation.deactivateUser") ? off : "")
        );
      })
    );
  };
  text.addEventListener("input", () => { filters.text = text.value; draw(); });
  role.addEventListener("change", () => { filters.role = role.value; draw(); });
  active.addEventListener("change", () => { filters.activeOnly = active.checked; draw(); });

  const nu = {
    id: h("input", { id: "new-id", required: true, autocomplete: "off" }),
    name: h("input", { id: "new-name", required: true, autocomplete: "off" }),
    email: h("input", { id: "new-email", type: "email", autocomplete: "off" }),
    team: h("input", { id: "new-team", autocomplete: "off" }),
    managerId: h("input", { id: "new-manager", autocomplete: "off" }),
    role: select("new-role", [{ value: "", label: "(none)" }, ...roles]),
  };
  const add = h(
    "form",
    { class: "toolbar", id: "add-user" },
    field("User id", nu.id), field("Name", nu.name), field("E-mail", nu.email),
    field("Team", nu.team), field("Manager id", nu.managerId), field("Role", nu.role),
    h("div", {}, h("button", { type: "submit" }, "Add user"))
  );
  add.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = { id: nu.id.value.trim(), name: nu.name.value.trim(), roles: nu.role.value ? [nu.role.value] : [] };
    for (const key of ["email", "team", "managerId"]) if (nu[key].value.trim()) input[key] = nu[key].value.trim();
    try {
      await data(CREATE, { input });
      say(`User ${input.id} added.`);
      alarm("");
      add.reset();
      await reload();
    } catch (error) {
      failed(error);
    }
  });
  page.replaceChildren(
    h("h2", {}, "Users and roles"),
    h("div", { class: "toolbar", role: "search" }, field("Filter", text), field("Role", role),
      h("div", {}, h("label", { for: "users-active" }, active, " Active only"))),
    count,
    h("div", { class: "table-wrap" }, h("table", { id: "users-table" },
      h("thead", {}, h("tr", {}, ["Id", "Name", "Team", "Manager", "Status", "Customers", "Roles", ""].map((t) => h("th", { scope: "col" }, t)))),
      body)),
    ...(may("Mutation.createUser") ? [h("h3", {}, "Add a user"), add] : [])
  );
  draw();
}

// "See as": run the customer query with another role's or user's permission view and row
// scope (header X-Baton-See-As; read-only and audited by the server) and show what it sees.

import { data, request } from "./api.js";
import { failed, say } from "./app.js";
import { field, h, select } from "./dom.js";

const SETUP = `{
  policies { role scope }
  users(first: 100, filter: {active: true}) { edges { node { id name roles } } }
  policyObjects { kind typeName fieldName leaf }
  plugins { name specialNeedsType }
}`;
const CUSTOMERS = `query ($search: String) {
  customers(first: 100, filter: {search: $search}, orderBy: {field: NAME, direction: ASC}) {
    edges { node { id name } }
  }
}`;

function show(value) {
  if (value === null || value === undefined) return "—";
  if (Array.isArray(value)) return `${value.length} item(s)`;
  if (typeof value === "object") return value.__typename || "(object)";
  return String(value);
}

/** The customer's fields to show, each with its path under ``customer``: its own fields, then
 * each plugin's special needs (``specialNeeds.banking.riskTolerance``). */
function customerFields(setup) {
  const own = setup.policyObjects
    .filter((o) => o.kind === "FIELD" && o.typeName === "Customer")
    .map((o) => ({ path: [o.fieldName], leaf: o.leaf }));
  const plugins = setup.plugins
    .filter((p) => p.specialNeedsType)
    .flatMap((p) =>
      setup.policyObjects
        .filter((o) => o.kind === "FIELD" && o.typeName === p.specialNeedsType)
        .map((o) => ({ path: ["specialNeeds", p.name, o.fieldName], leaf: o.leaf }))
    );
  return [...own, ...plugins].map((f) => ({ ...f, label: f.path.join(".") }));
}

/** A selection set for the fields' paths: ``a b { c } specialNeeds { banking { d } }``. */
function selection(fields) {
  const tree = {};
  for (const f of fields) {
    let node = tree;
    f.path.forEach((part, i) => {
      if (i === f.path.length - 1) node[part] = f.leaf ? true : { __typename: true };
      else node = node[part] = node[part] || {};
    });
  }
  const print = (node) =>
    Object.entries(node)
      .map(([name, sub]) => (sub === true ? name : `${name} { ${print(sub)} }`))
      .join(" ");
  return print(tree);
}

function valueAt(customer, path) {
  return path.reduce((node, part) => (node === null || node === undefined ? node : node[part]), customer);
}

export async function seeAsPage(page) {
  const setup = await data(SETUP);
  const fields = customerFields(setup);
  const identities = [
    ...setup.policies.map((p) => ({ value: `role:${p.role}`, label: `role ${p.role} (scope ${p.scope})` })),
    ...setup.users.edges.map(({ node }) => ({
      value: `user:${node.id}`,
      label: `user ${node.id} — ${node.name || ""} (${(node.roles || []).join(", ")})`,
    })),
  ];
  const identity = select("see-as-identity", identities, "role:finance");
  const search = h("input", { id: "see-as-search", type: "search", placeholder: "part of the name" });
  const customer = select("see-as-customer", []);
  const fillCustomers = async () => {
    const found = await data(CUSTOMERS, { search: search.value.trim() || null });
    customer.replaceChildren(
      ...found.customers.edges.map(({ node }) => h("option", { value: node.id }, `${node.name} (${node.id})`))
    );
  };
  search.addEventListener("change", () => fillCustomers().catch(failed));
  const result = h("div", { id: "see-as-result" });
  const form = h(
    "form",
    { class: "toolbar" },
    field("See as", identity),
    field("Find customer", search),
    field("Customer", customer),
    h("div", {}, h("button", { type: "submit" }, "Show"))
  );
  const query = `query ($id: ID!) { customer(id: $id) { id ${selection(fields)} } }`;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!customer.value) return say("Pick a customer first.");
    try {
      const answer = await request(query, { id: customer.value }, { seeAs: identity.value });
      result.replaceChildren(renderResult(identity.value, customer.value, fields, answer));
      say(`Shown as ${identity.value}; this look was recorded in the audit log.`);
    } catch (error) {
      failed(error);
    }
  });
  page.replaceChildren(
    h("h2", {}, "See as"),
    h(
      "p",
      { class: "hint" },
      "The customer exactly as that role or user reads it: the server runs the query with their " +
        "permissions and customer scope, read-only, and audits who looked as whom. A role owns no " +
        "customers, so a role scoped OWN or TEAM sees none: pick one of its users instead."
    ),
    form,
    result
  );
  await fillCustomers();
}

function renderResult(who, id, fields, answer) {
  const errors = answer.errors || [];
  const customer = answer.data && answer.data.customer;
  if (!customer) {
    const codes = errors.map((e) => e.extensions.code).join(", ");
    return h(
      "p",
      { class: "absent" },
      `As ${who}, customer ${id} is absent (${codes || "no data"}): outside this identity's scope or not allowed.`
    );
  }
  const denied = new Map(
    errors
      .filter((e) => e.path && e.path[0] === "customer" && e.extensions.code === "FORBIDDEN_FIELD")
      .map((e) => [e.path.slice(1).join("."), e.extensions.object])
  );
  const visible = fields.filter((f) => !denied.has(f.label)).length;
  return h(
    "div",
    {},
    h("p", {}, `As ${who}: ${visible} of ${fields.length} fields visible, ${denied.size} redacted.`),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "see-as-table" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Value"), h("th", { scope: "col" }, "Status"))),
        h(
          "tbody",
          {},
          // what the identity reads first, then what is withheld from it
          [...fields].sort((a, b) => denied.has(a.label) - denied.has(b.label)).map((f) =>
            h(
              "tr",
              { "data-field": f.label },
              h("th", { scope: "row" }, f.label),
              h("td", {}, denied.has(f.label) ? "" : show(valueAt(customer, f.path))),
              denied.has(f.label)
                ? h("td", { class: "redacted" }, "redacted (FORBIDDEN_FIELD)")
                : h("td", { class: "visible" }, "visible")
            )
          )
        )
      )
    )
  );
}

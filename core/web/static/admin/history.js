// Policy history: the audit entries of policy changes, newest first, and the audit chain's
// verification (as `baton audit verify`).

import { data } from "./api.js";
import { failed } from "./app.js";
import { h } from "./dom.js";

const ENTRY = "edges { node { id at action entityType entityId reason actor { id name } changes { field before after redacted } } }";
const QUERY = `{
  roles: auditLog(first: 100, filter: {entityType: "Role"}) { ${ENTRY} }
  assigned: auditLog(first: 50, filter: {action: "assignRole"}) { ${ENTRY} }
  unassigned: auditLog(first: 50, filter: {action: "unassignRole"}) { ${ENTRY} }
}`;
const CHAIN = "{ auditChain { ok entries headSeq headHash badSeq reason } }";

function value(v) {
  if (v === null || v === undefined) return "—";
  return typeof v === "string" ? v : JSON.stringify(v);
}

function chainStatus(chain) {
  if (chain.ok) {
    return h(
      "p",
      { id: "chain-status", class: "ok" },
      `Audit chain verified: ${chain.entries} entries intact; head #${chain.headSeq} `,
      h("code", {}, chain.headHash)
    );
  }
  return h(
    "p",
    { id: "chain-status", class: "bad" },
    `Audit chain BROKEN at entry #${chain.badSeq}: ${chain.reason}. ${chain.entries} entries before it are intact.`
  );
}

export async function historyPage(page) {
  const result = await data(QUERY);
  const all = [...result.roles.edges, ...result.assigned.edges, ...result.unassigned.edges]
    .map((e) => e.node)
    .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : b.id.localeCompare(a.id)));
  const looks = h("input", { type: "checkbox", id: "show-looks" });
  const chainSlot = h("div", {}, h("button", { type: "button", id: "verify-chain" }, "Verify the audit chain"));
  chainSlot.querySelector("button").addEventListener("click", async () => {
    try {
      chainSlot.replaceChildren(chainStatus((await data(CHAIN)).auditChain));
    } catch (error) {
      failed(error);
    }
  });
  const body = h("tbody");
  const draw = () => {
    const shown = all.filter((e) => looks.checked || e.action !== "seeAs");
    body.replaceChildren(
      ...shown.map((e) =>
        h(
          "tr",
          {},
          h("td", {}, h("time", { datetime: e.at }, e.at.replace("T", " ").slice(0, 19))),
          h("td", {}, e.actor ? e.actor.id : "system"),
          h("td", {}, e.action),
          h("td", {}, `${e.entityType} ${e.entityId}`),
          h(
            "td",
            { class: "mono" },
            e.changes.map((c) =>
              h("div", {}, c.redacted ? `${c.field}: (redacted)` : `${c.field}: ${value(c.before)} → ${value(c.after)}`)
            )
          ),
          h("td", {}, e.reason || "")
        )
      )
    );
    if (!shown.length) body.append(h("tr", {}, h("td", { colspan: 6 }, "No policy changes yet.")));
  };
  looks.addEventListener("change", draw);
  draw();
  page.replaceChildren(
    h("h2", {}, "Policy history"),
    chainSlot,
    h("p", { class: "hint" }, "Grants, revocations and role assignments, newest first (the latest 100 role changes)."),
    h("div", { class: "toolbar" }, h("label", { for: "show-looks" }, looks, " Include “see as” looks")),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "history-table" },
        h(
          "thead",
          {},
          h("tr", {}, ["When (UTC)", "Who", "Action", "What", "Change", "Why"].map((t) => h("th", { scope: "col" }, t)))
        ),
        body
      )
    )
  );
}

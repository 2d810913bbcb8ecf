// The console's shell: sign-in, who you are, navigation, messages and the confirm dialog.

import { ApiError, allows, data, setToken, token } from "./api.js";
import { h } from "./dom.js";
import { historyPage } from "./history.js";
import { matrixPage } from "./matrix.js";
import { seeAsPage } from "./seeas.js";
import { usersPage } from "./users.js";

const $ = (id) => document.getElementById(id);

// Each page, and the operations the viewer must be allowed to call to use it.
const PAGES = {
  matrix: { render: matrixPage, needs: ["Query.policies", "Query.policyObjects"] },
  "see-as": { render: seeAsPage, needs: ["Query.seeAs", "Query.policies", "Query.customers"] },
  history: { render: historyPage, needs: ["Query.auditLog"] },
  users: { render: usersPage, needs: ["Query.users"] },
};

export const session = { viewer: null };

export function say(message) {
  $("status").textContent = message;
}

export function alarm(message) {
  const alert = $("alert");
  alert.textContent = message;
  alert.hidden = !message;
}

/** Report a failed request: an expired token sends you back to sign in. */
export function failed(error) {
  if (error instanceof ApiError && error.kind === "auth") {
    signOut(error.message);
    return;
  }
  alarm(error instanceof ApiError ? error.message : `Unexpected error: ${error.message}`);
}

/** Ask to confirm ``changes`` (a list of strings) with a reason; resolves to the reason or
 * null when cancelled. */
export function confirmChanges(title, intro, changes) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-body").replaceChildren(
    h("p", {}, intro),
    h("ul", { class: "changes" }, changes.map((c) => h("li", {}, c)))
  );
  const reason = $("confirm-reason");
  reason.value = "";
  return new Promise((resolve) => {
    const done = (value) => {
      $("confirm-form").removeEventListener("submit", submit);
      $("confirm-cancel").removeEventListener("click", cancel);
      dialog.removeEventListener("cancel", cancel);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const submit = (event) => {
      event.preventDefault();
      if (!reason.value.trim()) {
        reason.focus();
        return;
      }
      done(reason.value.trim());
    };
    const cancel = (event) => {
      event.preventDefault();
      done(null);
    };
    $("confirm-form").addEventListener("submit", submit);
    $("confirm-cancel").addEventListener("click", cancel);
    dialog.addEventListener("cancel", cancel);
    dialog.showModal();
    reason.focus();
  });
}

function allowedPages() {
  const permissions = session.viewer.permissions;
  return Object.keys(PAGES).filter((name) =>
    PAGES[name].needs.every((op) => allows(permissions, op, "call"))
  );
}

async function route() {
  if (!session.viewer) return;
  const pages = allowedPages();
  for (const link of document.querySelectorAll("#nav a[data-page]")) {
    link.hidden = !pages.includes(link.dataset.page);
  }
  const wanted = location.hash.slice(1) || pages[0];
  const page = $("page");
  alarm("");
  say("");
  for (const link of document.querySelectorAll("#nav a[data-page]")) {
    if (link.dataset.page === wanted) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!pages.includes(wanted)) {
    const roles = session.viewer.roles.join(", ") || "none";
    page.replaceChildren(
      h("h2", {}, "Not available"),
      h(
        "p",
        {},
        pages.length
          ? `Your roles (${roles}) do not allow this page. Pick another above.`
          : `Your roles (${roles}) allow none of the console's pages; ask an admin.`
      )
    );
    return;
  }
  // Each visit renders into its own slot, so a slow page left behind cannot overwrite the next.
  const slot = h("div", {}, h("p", {}, "Loading…"));
  page.replaceChildren(slot);
  try {
    await PAGES[wanted].render(slot);
  } catch (error) {
    if (!slot.isConnected) return;
    slot.replaceChildren(h("h2", {}, "Could not load this page"));
    failed(error);
  }
}

async function signIn() {
  const viewer = await data(
    "{ viewer { user { id name } roles scope permissions { object action } } }"
  );
  session.viewer = viewer.viewer;
  const { user, roles } = session.viewer;
  $("whoami-text").textContent = `Signed in as ${user.name || user.id} (${user.id}) · roles: ${
    roles.join(", ") || "none"
  }`;
  $("sign-in").hidden = true;
  $("whoami").hidden = false;
  $("nav").hidden = false;
  await route();
}

export function signOut(message = "") {
  setToken("");
  session.viewer = null;
  $("whoami").hidden = true;
  $("nav").hidden = true;
  $("page").replaceChildren();
  $("sign-in").hidden = false;
  alarm(message);
  say(message ? "" : "Signed out.");
  $("token").focus();
}

async function start() {
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    setToken($("token").value.trim());
    $("token").value = "";
    alarm("");
    try {
      await signIn();
      say("Signed in.");
    } catch (error) {
      if (error instanceof ApiError && error.kind === "auth") signOut(error.message);
      else failed(error);
    }
  });
  $("sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", route);
  if (!token()) {
    signOut();
    say("");
    return;
  }
  try {
    await signIn();
  } catch (error) {
    if (error instanceof ApiError && error.kind === "auth") signOut(error.message);
    else {
      $("sign-in").hidden = false;
      failed(error);
    }
  }
}

start();

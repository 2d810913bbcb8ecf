// The console's only way to the server: the public GraphQL API at /graphql.

const TOKEN_KEY = "baton.token";

export class ApiError extends Error {
  /** kind: "auth" (HTTP 401), "forbidden", "network", "server" or "graphql". */
  constructor(kind, message, errors = []) {
    super(message);
    this.kind = kind;
    this.errors = errors;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** POST a GraphQL operation; resolves to {data, errors}. Throws ApiError when the request
 * itself fails (no answer, 401, 403, other HTTP errors). ``seeAs`` sets X-Baton-See-As. */
export async function request(query, variables = {}, { seeAs } = {}) {
  const headers = {
    "Content-Type": "application/json",
    Authorization: `Bearer ${token()}`,
  };
  if (seeAs) headers["X-Baton-See-As"] = seeAs;
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables }),
    });
  } catch (e) {
    throw new ApiError("network", "Cannot reach the Baton server: check your network and retry.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  const first = body && body.errors && body.errors[0];
  if (response.status === 401) {
    const why = first ? first.message : "token refused";
    throw new ApiError("auth", `Your token was refused (${why}): sign in again with a fresh token.`);
  }
  if (response.status === 403) {
    throw new ApiError("forbidden", `Not allowed: ${first ? first.message : "forbidden"}`);
  }
  if (!response.ok || body === null) {
    const why = first ? `${first.extensions.code}: ${first.message}` : `HTTP ${response.status}`;
    throw new ApiError("server", `The server could not answer (${why}).`);
  }
  return { data: body.data, errors: body.errors || [] };
}

/** Like ``request`` but any GraphQL error is thrown (FORBIDDEN ones as "forbidden").
 * With ``partial``, fields the viewer may not read (FORBIDDEN_FIELD) are left null instead. */
export async function data(query, variables = {}, options = {}) {
  const result = await request(query, variables, options);
  const errors = options.partial
    ? result.errors.filter((e) => !e.extensions || e.extensions.code !== "FORBIDDEN_FIELD")
    : result.errors;
  if (errors.length) {
    const codes = errors.map((e) => e.extensions && e.extensions.code);
    const kind = codes.includes("FORBIDDEN") ? "forbidden" : "graphql";
    const text = errors
      .map((e) => `${e.extensions ? e.extensions.code : "ERROR"}: ${e.message}`)
      .join("; ");
    throw new ApiError(kind, kind === "forbidden" ? `Not allowed: ${text}` : text, errors);
  }
  return result.data;
}

const CHUNK = 20; // mutations per request, under the server's alias limit

/** Run mutation fields one after another, each ``{field, input}`` of the same input type,
 * a few per request (each is its own transaction on the server). */
export async function mutations(calls, inputType, selection) {
  for (let i = 0; i < calls.length; i += CHUNK) {
    const part = calls.slice(i, i + CHUNK);
    const vars = part.map((_, j) => `$i${j}: ${inputType}!`).join(", ");
    const fields = part.map((c, j) => `c${j}: ${c.field}(input: $i${j}) { ${selection} }`);
    const variables = Object.fromEntries(part.map((c, j) => [`i${j}`, c.input]));
    await data(`mutation (${vars}) {\n${fields.join("\n")}\n}`, variables);
  }
}

/** Casbin's keyMatch, as the server decides: ``*`` in a pattern matches anything. */
export function keyMatch(key, pattern) {
  const i = pattern.indexOf("*");
  if (i === -1) return key === pattern;
  return key.length >= i && key.slice(0, i) === pattern.slice(0, i);
}

/** Whether a permission list allows ``action`` on ``object``. */
export function allows(permissions, object, action) {
  return permissions.some((p) => p.action === action && keyMatch(object, p.object));
}

// camgate API docs: renders /api/openapi.json (OpenAPI 3.1) as tags →
// operations, resolves `$ref`s, filters by a search box, and sends requests
// ("try it") with the bearer token kept in sessionStorage.

const METHODS = ["get", "put", "post", "patch", "delete"];
const TOKEN_KEY = "camgate.api-docs.token";

/** Element helper: el("td", {class: "x"}, "text", child…). Text is never parsed as HTML. */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

/** The object a local `$ref` (`#/components/…`) points to, or undefined. */
function deref(doc, ref) {
  if (!ref.startsWith("#/")) return undefined;
  return ref.slice(2).split("/").reduce(
    (o, k) => (o === undefined ? undefined : o[k.replace(/~1/g, "/").replace(/~0/g, "~")]),
    doc,
  );
}

/** A schema with `$ref`s replaced by what they point to (cycles cut). */
function resolve(doc, schema, seen = new Set()) {
  if (Array.isArray(schema)) return schema.map((s) => resolve(doc, s, seen));
  if (!schema || typeof schema !== "object") return schema;
  if (typeof schema.$ref === "string") {
    const name = schema.$ref.split("/").pop();
    if (seen.has(schema.$ref)) return { $recursive: name };
    const target = deref(doc, schema.$ref);
    if (target === undefined) return { $unresolved: schema.$ref };
    const next = new Set(seen).add(schema.$ref);
    return { title: name, ...resolve(doc, target, next) };
  }
  const out = {};
  for (const [k, v] of Object.entries(schema)) out[k] = resolve(doc, v, seen);
  return out;
}

/** A compact, readable type line for a schema: `string | null`, `array of Device`. */
function typeOf(s) {
  if (!s || typeof s !== "object") return "any";
  if (s.$recursive) return s.$recursive;
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (s.oneOf) return s.oneOf.map(typeOf).join(" | ");
  if (s.allOf) return s.title || "object";
  const t = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  return t.map((x) => (x === "array" ? `array of ${typeOf(s.items)}` : x === "object" && s.title ? s.title : x))
    .join(" | ") || s.title || "any";
}

/** The schema as a table of properties (objects, allOf merged) or a type line. */
function schemaView(s) {
  if (!s) return el("p", {}, "(none)");
  if (s.allOf) {
    const merged = { type: "object", properties: {}, required: [] };
    for (const part of s.allOf) {
      Object.assign(merged.properties, part.properties || {});
      merged.required.push(...(part.required || []));
    }
    return schemaView({ ...merged, title: s.title });
  }
  if (s.oneOf) {
    const disc = s.discriminator?.propertyName;
    return el("div", {}, el("p", {}, `one of${disc ? ` (by \`${disc}\`)` : ""}:`),
      s.oneOf.map((o) => el("div", { class: "variant" }, schemaView(o))));
  }
  if (s.properties) {
    const req = new Set(s.required || []);
    return el("table", {},
      el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "description")),
      Object.entries(s.properties).map(([name, p]) => {
        const inner = p.type === "array" ? p.items : p;
        const nested = inner && (inner.properties || inner.allOf || inner.oneOf) ? schemaView(inner) : null;
        return el("tr", {},
          el("td", {}, el("code", {}, name), req.has(name) ? " *" : ""),
          el("td", {}, typeOf(p)),
          el("td", {}, p.description || "", nested ? el("details", {}, el("summary", {}, "fields"), nested) : null));
      }));
  }
  if (s.type === "array" && s.items) return el("div", {}, el("p", {}, `array of ${typeOf(s.items)}`), schemaView(s.items));
  return el("p", {}, el("code", {}, typeOf(s)), s.description ? ` — ${s.description}` : "");
}

function paramsView(params) {
  if (!params.length) return null;
  return [el("h4", {}, "Parameters"), el("table", {},
    el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "description")),
    params.map((p) => el("tr", {},
      el("td", {}, el("code", {}, p.name), p.required ? " *" : ""),
      el("td", {}, p.in), el("td", {}, typeOf(p.schema)), el("td", {}, p.description || ""))))];
}

function contentView(content) {
  return Object.entries(content || {}).map(([type, media]) =>
    el("div", {}, el("p", {}, el("code", {}, type)), schemaView(media.schema)));
}

/** "Try it": path and query fields, a body, Send; shows status and body. */
function tryForm(method, path, op) {
  const params = (op.parameters || []).filter((p) => p.in === "path" || p.in === "query");
  const bodyTypes = Object.keys(op.requestBody?.content || {});
  const inputs = new Map();
  const out = el("pre", { class: "hidden" });
  const status = el("p", { class: "status" });
  const body = bodyTypes.length ? el("textarea", { "aria-label": "request body" }) : null;
  if (body && bodyTypes[0] === "application/json") body.value = "{}";
  const send = async (ev) => {
    ev.preventDefault();
    let url = path.replace(/\{([^}]+)\}/g, (_, n) => encodeURIComponent(inputs.get(n)?.value ?? ""));
    const q = new URLSearchParams();
    for (const p of params) {
      const v = inputs.get(p.name).value;
      if (p.in === "query" && v !== "") q.append(p.name, v);
    }
    if ([...q].length) url += `?${q}`;
    const headers = {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method: method.toUpperCase(), headers };
    if (body && body.value.trim() !== "") {
      headers["Content-Type"] = bodyTypes[0];
      init.body = body.value;
    }
    status.textContent = "…";
    out.classList.add("hidden");
    try {
      const r = await fetch(url, init);
      const type = r.headers.get("content-type") || "";
      let text;
      if (/json|text|sdp|mpegurl/.test(type) || type === "") {
        text = await r.text();
        if (type.includes("json") && text) {
          try { text = JSON.stringify(JSON.parse(text), null, 2); } catch { /* shown as sent */ }
        }
      } else {
        // Media (FLV is endless): show the type, do not read the body.
        r.body?.cancel();
        text = `(${type} body not shown)`;
      }
      status.textContent = `${r.status} ${r.statusText}`;
      out.textContent = text;
      out.classList.remove("hidden");
    } catch (e) {
      status.textContent = `request failed: ${e}`;
    }
  };
  return el("form", { class: "try", onsubmit: send },
    el("h4", {}, "Try it"),
    params.map((p) => {
      const i = el("input", { name: p.name, placeholder: p.schema?.examples?.[0] ?? p.example ?? "" });
      if (p.example !== undefined) i.value = p.example;
      inputs.set(p.name, i);
      return el("label", {}, `${p.name} (${p.in})`, i);
    }),
    body ? el("label", {}, bodyTypes[0], body) : null,
    el("div", {}, el("button", { type: "submit" }, `Send ${method.toUpperCase()}`)),
    status, out);
}

function operationView(doc, method, path, op) {
  const resolved = resolve(doc, op);
  const secured = (op.security || []).some((r) => Object.keys(r).length > 0);
  const anonymous = !op.security || op.security.some((r) => Object.keys(r).length === 0);
  const d = el("details", { class: "op" },
    el("summary", {},
      el("span", { class: `method ${method}` }, method),
      el("span", { class: "path" }, path),
      el("span", { class: "summary" }, op.summary || ""),
      el("span", { class: "lock" }, secured ? (anonymous ? "token optional" : "token") : "public")));
  d.dataset.search = [method, path, op.summary, op.description, ...(op.tags || [])].join(" ").toLowerCase();
  // Built on first open: the document has dozens of operations.
  d.addEventListener("toggle", () => {
    if (!d.open || d.querySelector(".body")) return;
    const rb = resolved.requestBody;
    d.append(el("div", { class: "body" },
      op.description ? el("p", {}, op.description) : null,
      el("p", {}, el("code", {}, op.operationId || "")),
      paramsView(resolved.parameters || []),
      rb ? [el("h4", {}, `Request body${rb.required ? " *" : ""}`), rb.description ? el("p", {}, rb.description) : null, contentView(rb.content)] : null,
      el("h4", {}, "Responses"),
      Object.entries(resolved.responses || {}).map(([code, r]) =>
        el("details", {}, el("summary", {}, el("strong", {}, code), " ", r.description || ""), contentView(r.content))),
      tryForm(method, path, resolved)));
  });
  return d;
}

function render(doc) {
  document.getElementById("title").textContent = `${doc.info?.title ?? "API"} API`;
  document.getElementById("version").textContent = `${doc.info?.version ?? ""} · OpenAPI ${doc.openapi}`;
  document.title = `${doc.info?.title ?? "API"} API`;
  const byTag = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const m of METHODS) {
      if (!item[m]) continue;
      const tag = item[m].tags?.[0] ?? "other";
      if (!byTag.has(tag)) byTag.set(tag, { tag: { name: tag }, ops: [] });
      byTag.get(tag).ops.push(operationView(doc, m, path, item[m]));
    }
  }
  const main = document.getElementById("ops");
  main.replaceChildren(...[...byTag.values()].filter((s) => s.ops.length).map(({ tag, ops }) =>
    el("section", { "data-tag": tag.name }, el("h2", {}, tag.name), tag.description ? el("p", {}, tag.description) : null, ops)));
}

function filter(text) {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  for (const section of document.querySelectorAll("section")) {
    let any = false;
    for (const op of section.querySelectorAll("details.op")) {
      const show = words.every((w) => op.dataset.search.includes(w));
      op.classList.toggle("hidden", !show);
      any ||= show;
    }
    section.classList.toggle("hidden", !any);
  }
}

async function main() {
  const token = document.getElementById("token");
  token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  token.addEventListener("input", () => {
    if (token.value) sessionStorage.setItem(TOKEN_KEY, token.value.trim());
    else sessionStorage.removeItem(TOKEN_KEY);
  });
  const search = document.getElementById("search");
  search.addEventListener("input", () => filter(search.value));
  try {
    const r = await fetch("/api/openapi.json");
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    render(await r.json());
    filter(search.value);
  } catch (e) {
    document.getElementById("ops").replaceChildren(el("p", {}, `Cannot load /api/openapi.json: ${e.message}`));
  }
}

main();

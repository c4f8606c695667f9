// Building the page: elements from data, always as text (stored content is never parsed as HTML).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export const when = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleString() : "—");

export const badge = (status) => h("span", { class: `badge status-${status || "none"}` }, status || "—");

export const link = (href, text) => h("a", { href }, text);

export const responseLink = (id) => link(`#/responses/${encodeURIComponent(id)}`, id);
export const conversationLink = (id) => link(`#/conversations/${encodeURIComponent(id)}`, id);

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

export function rawJson(value, label = "Raw JSON") {
  return h("details", { class: "raw" }, h("summary", {}, label), json(value));
}

export function errorBox(error) {
  const id = error.requestId ? ` (request ${error.requestId})` : "";
  return h("p", { class: "error" }, `${error.message}${id}`);
}

function prettyArgs(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text || ""; }
}

function contentPart(part) {
  switch (part.type) {
    case "input_text":
    case "output_text":
    case "summary_text":
    case "reasoning_text":
      return h("div", { class: "text" }, part.text);
    case "refusal":
      return h("div", { class: "text refusal" }, part.refusal);
    case "input_image":
      return h("div", { class: "muted" }, `image: ${part.file_id || (part.image_url || "").slice(0, 80)}`);
    case "input_file":
      return h("div", { class: "muted" }, `file: ${part.filename || part.file_id || "(inline data)"}`);
    default:
      return json(part);
  }
}

// One item of a response's input or output, or of a conversation.
export function item(it) {
  const type = it.type || (it.role ? "message" : "unknown");
  const head = (...parts) => h("div", { class: "item-head" }, h("span", { class: "item-type" }, type), ...parts);
  let body;
  switch (type) {
    case "message": {
      const content = typeof it.content === "string" ? [{ type: "input_text", text: it.content }] : it.content || [];
      return h("div", { class: `item message role-${it.role}` }, head(h("span", { class: "role" }, it.role),
        it.status ? badge(it.status) : null), content.map(contentPart));
    }
    case "function_call":
      body = [h("div", { class: "call" }, h("code", {}, it.name), h("span", { class: "muted" }, ` call ${it.call_id}`)),
        h("pre", { class: "args" }, prettyArgs(it.arguments))];
      break;
    case "function_call_output":
      body = [h("div", { class: "muted" }, `output of ${it.call_id}`),
        h("pre", { class: "args" }, typeof it.output === "string" ? it.output : JSON.stringify(it.output, null, 2))];
      break;
    case "mcp_call":
      body = [h("div", { class: "call" }, h("code", {}, `${it.server_label}.${it.name}`)),
        h("pre", { class: "args" }, prettyArgs(it.arguments)),
        it.error ? h("div", { class: "error" }, `error: ${typeof it.error === "string" ? it.error : JSON.stringify(it.error)}`)
          : h("pre", { class: "output" }, it.output ?? "")];
      break;
    case "mcp_list_tools":
      body = [h("div", {}, `${it.server_label}: `, (it.tools || []).map((t) => h("code", { class: "tool" }, t.name)))];
      break;
    case "mcp_approval_request":
      body = [h("div", { class: "call" }, "approval asked for ", h("code", {}, `${it.server_label}.${it.name}`)),
        h("pre", { class: "args" }, prettyArgs(it.arguments))];
      break;
    case "mcp_approval_response":
      body = [h("div", {}, `${it.approve ? "approved" : "denied"}: ${it.approval_request_id}`)];
      break;
    case "reasoning":
      body = [...(it.summary || []), ...(it.content || [])].map(contentPart);
      break;
    default:
      body = [json(it)];
  }
  return h("div", { class: `item ${type}` }, head(it.status ? badge(it.status) : null), body);
}

export const TOOL_TYPES = new Set(["function_call", "function_call_output", "mcp_call", "mcp_list_tools",
  "mcp_approval_request", "mcp_approval_response"]);

export function outputText(response) {
  for (const it of response.output || []) {
    if (it.type !== "message") continue;
    const part = (it.content || []).find((p) => p.type === "output_text");
    if (part) return part.text;
  }
  return "";
}

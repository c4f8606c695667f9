// Conversations: the recent ones (search by id or metadata), and one conversation's items.

import { ApiError, getJSON } from "./api.js";
import { conversationLink, h, item, rawJson, when } from "./render.js";
import { metadataParams, paged, parseQuery, searchForm } from "./lists.js";

const PAGE = 20;

function row(c) {
  return h("tr", { "data-id": c.id },
    h("td", {}, when(c.created_at)),
    h("td", {}, conversationLink(c.id)),
    h("td", { class: "meta" }, Object.entries(c.metadata || {}).map(([k, v]) => h("code", {}, `${k}=${v}`))));
}

function table() {
  return h("table", { class: "list", id: "conversations-table" },
    h("thead", {}, h("tr", {}, ["Created", "ID", "Metadata"].map((t) => h("th", {}, t)))), h("tbody"));
}

export async function conversationsView(view, params) {
  const query = parseQuery(params.get("q"));
  view.append(h("h1", {}, "Conversations"),
    searchForm("conversations", params.get("q"), "conv_… id, or metadata key=value, key2=value2"));
  if (query.kind === "invalid") {
    view.append(h("p", { class: "error" }, query.message));
    return;
  }
  if (query.kind === "id") {
    const list = table();
    try {
      list.querySelector("tbody").append(row(await getJSON(`/v1/conversations/${encodeURIComponent(query.id)}`)));
      view.append(list);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
      view.append(h("p", { class: "empty" }, `No conversation with id ${query.id}.`));
    }
    return;
  }
  const filters = query.kind === "metadata" ? `&${metadataParams(query.metadata)}` : "";
  await paged(view, table(), (after) => getJSON(`/v1/conversations?limit=${PAGE}${filters}${after ? `&after=${after}` : ""}`),
    row, "No conversations found.");
}

export async function conversationView(view, id) {
  const c = await getJSON(`/v1/conversations/${encodeURIComponent(id)}`);
  const path = `/v1/conversations/${encodeURIComponent(id)}/items?order=asc&limit=50`;
  const meta = Object.entries(c.metadata || {});
  view.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/conversations" }, "Conversations"), " / ", h("code", {}, c.id)),
    h("h1", {}, "Conversation ", h("code", {}, c.id), " ",
      h("a", { class: "button", href: `#/playground?conversation=${encodeURIComponent(c.id)}` }, "Continue in playground")),
    h("dl", { class: "summary" }, h("dt", {}, "Created"), h("dd", {}, when(c.created_at)),
      h("dt", {}, "Metadata"), h("dd", {}, meta.length ? meta.map(([k, v]) => h("code", {}, `${k}=${v}`)) : "—")),
    h("h2", {}, "Items"));
  await paged(view, h("div", { class: "items", id: "items" }),
    (after) => getJSON(`${path}${after ? `&after=${encodeURIComponent(after)}` : ""}`), item, "No items yet.");
  view.append(rawJson(c));
}

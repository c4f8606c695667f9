// The lists: their search box (an id, or metadata pairs "team=red, env=prod") and their pages.

import { h } from "./render.js";

export function parseQuery(text) {
  const q = (text || "").trim();
  if (!q) return { kind: "all" };
  if (!q.includes("=")) return { kind: "id", id: q };
  const metadata = {};
  for (const pair of q.split(",")) {
    const cut = pair.indexOf("=");
    if (cut < 0) return { kind: "invalid", message: `“${pair.trim()}” is not key=value` };
    metadata[pair.slice(0, cut).trim()] = pair.slice(cut + 1).trim();
  }
  return { kind: "metadata", metadata };
}

export function metadataParams(metadata) {
  return Object.entries(metadata)
    .map(([k, v]) => `metadata[${encodeURIComponent(k)}]=${encodeURIComponent(v)}`).join("&");
}

// A search form whose submission goes to `#/<base>?q=...`.
export function searchForm(base, query, placeholder, extra = []) {
  const input = h("input", { type: "search", name: "q", value: query || "", placeholder, "aria-label": "Search" });
  const form = h("form", {
    class: "search",
    onsubmit: (event) => {
      event.preventDefault();
      const params = new URLSearchParams();
      if (input.value.trim()) params.set("q", input.value.trim());
      for (const field of extra) if (field.value) params.set(field.name, field.value);
      location.hash = `#/${base}${params.toString() ? `?${params}` : ""}`;
    },
  }, input, extra, h("button", { type: "submit" }, "Search"));
  return form;
}

// A list that grows page by page: `fetchPage(after)` returns the API's page object.
export async function paged(view, list, fetchPage, render, emptyText) {
  const body = list.querySelector("tbody") || list;
  const more = h("button", { type: "button", class: "more", hidden: true }, "Load more");
  view.append(list, more);
  let after = null;
  const load = async () => {
    const page = await fetchPage(after);
    body.append(...page.data.map(render));
    after = page.last_id;
    more.hidden = !page.has_more;
    if (!body.children.length) view.append(h("p", { class: "empty" }, emptyText));
  };
  more.addEventListener("click", load);
  await load();
}

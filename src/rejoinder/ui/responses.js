// Responses: the recent ones (search by id or metadata), and one response in full.

import { ApiError, api, getAll, getJSON, sseEvents } from "./api.js";
import {
  TOOL_TYPES, badge, conversationLink, h, item, outputText, rawJson, responseLink, when,
} from "./render.js";
import { metadataParams, paged, parseQuery, searchForm } from "./lists.js";

const PAGE = 20;

function row(r) {
  const usage = r.usage ? `${r.usage.input_tokens} / ${r.usage.output_tokens}` : "—";
  return h("tr", { "data-id": r.id },
    h("td", {}, when(r.created_at)),
    h("td", {}, responseLink(r.id)),
    h("td", {}, r.model),
    h("td", {}, badge(r.status)),
    h("td", { class: "preview" }, outputText(r).slice(0, 120)),
    h("td", { class: "num" }, usage),
    h("td", { class: "meta" }, Object.entries(r.metadata || {}).map(([k, v]) => h("code", {}, `${k}=${v}`))));
}

function table(rows) {
  return h("table", { class: "list", id: "responses-table" },
    h("thead", {}, h("tr", {}, ["Created", "ID", "Model", "Status", "Output", "Tokens in / out", "Metadata"]
      .map((t) => h("th", {}, t)))),
    h("tbody", {}, rows));
}

export async function responsesView(view, params) {
  const query = parseQuery(params.get("q"));
  const models = (await getJSON("/v1/models")).data.map((m) => m.id);
  const model = h("select", { name: "model", "aria-label": "Model" }, h("option", { value: "" }, "any model"),
    models.map((id) => h("option", { value: id, selected: params.get("model") === id }, id)));
  view.append(h("h1", {}, "Responses"),
    searchForm("responses", params.get("q"), "resp_… id, or metadata key=value, key2=value2", [model]));
  if (query.kind === "invalid") {
    view.append(h("p", { class: "error" }, query.message));
    return;
  }
  if (query.kind === "id") {
    try {
      view.append(table([row(await getJSON(`/v1/responses/${encodeURIComponent(query.id)}`))]));
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
      view.append(h("p", { class: "empty" }, `No response with id ${query.id}.`));
    }
    return;
  }
  const filters = [query.kind === "metadata" ? metadataParams(query.metadata) : "",
    params.get("model") ? `model=${encodeURIComponent(params.get("model"))}` : ""].filter(Boolean).join("&");
  await paged(view, table([]), (after) => getJSON(`/v1/responses?limit=${PAGE}${filters ? `&${filters}` : ""}${after ? `&after=${after}` : ""}`),
    row, "No responses found.");
}

function summary(r) {
  const rows = [
    ["Status", badge(r.status)], ["Model", r.model], ["Created", when(r.created_at)],
    ["Completed", when(r.completed_at)], ["Background", r.background ? "yes" : "no"],
    ["Previous response", r.previous_response_id ? responseLink(r.previous_response_id) : "—"],
    ["Conversation", r.conversation ? conversationLink(r.conversation.id) : "—"],
    ["Instructions", typeof r.instructions === "string" ? r.instructions : r.instructions ? "(items)" : "—"],
    ["Metadata", Object.keys(r.metadata || {}).length ? Object.entries(r.metadata).map(([k, v]) => h("code", {}, `${k}=${v}`)) : "—"],
    ["Tools", (r.tools || []).length ? r.tools.map((t) => h("code", {}, t.type === "function" ? t.name : t.server_label || t.type)) : "—"],
  ];
  if (r.error) rows.push(["Error", h("span", { class: "error" }, `${r.error.code}: ${r.error.message}`)]);
  if (r.incomplete_details) rows.push(["Incomplete", r.incomplete_details.reason]);
  return h("dl", { class: "summary" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function usage(u) {
  if (!u) return h("p", { class: "muted" }, "No usage yet.");
  const rows = [["Input tokens", u.input_tokens], ["cached", u.input_tokens_details?.cached_tokens ?? 0],
    ["Output tokens", u.output_tokens], ["reasoning", u.output_tokens_details?.reasoning_tokens ?? 0],
    ["Total", u.total_tokens]];
  return h("table", { class: "usage", id: "usage" }, rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { class: "num" }, v))));
}

// Consecutive deltas of one item collapse into one line of the timeline.
function timelineRows(events) {
  const rows = [];
  for (const e of events) {
    const last = rows[rows.length - 1];
    const isDelta = e.type.endsWith(".delta");
    if (isDelta && last && last.type === e.type && last.item === e.item_id) {
      last.count += 1;
      last.to = e.sequence_number;
      continue;
    }
    const what = e.item ? `${e.item.type}${e.item.name ? ` ${e.item.name}` : ""}` : e.response ? e.response.status : "";
    rows.push({ type: e.type, item: e.item_id, count: 1, from: e.sequence_number, to: e.sequence_number, what });
  }
  return rows.map((r) => h("tr", {},
    h("td", { class: "num" }, r.from === r.to ? r.from : `${r.from}–${r.to}`),
    h("td", {}, h("code", {}, r.type)), h("td", {}, r.count > 1 ? `${r.count} deltas` : r.what)));
}

async function eventTimeline(r) {
  const section = h("section", { id: "timeline" }, h("h2", {}, "Event timeline"));
  if (!r.background) {
    section.append(h("p", { class: "muted" }, "Events are kept for background responses only; this is what the stored response tells."));
    const steps = [["created", when(r.created_at)], ...(r.output || []).map((it, i) => [`output ${i}`,
      `${it.type}${it.name ? ` ${it.name}` : ""} (${it.status || "done"})`]), [r.status, when(r.completed_at)]];
    section.append(h("ol", { class: "steps" }, steps.map(([k, v]) => h("li", {}, h("strong", {}, k), " ", v))));
    return section;
  }
  const body = h("tbody");
  section.append(h("table", { class: "list timeline" }, h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Event"), h("th", {}, "Detail"))), body));
  const events = [];
  const response = await api(`/v1/responses/${encodeURIComponent(r.id)}?stream=true&starting_after=-1`);
  for await (const event of sseEvents(response)) {
    events.push(event);
    body.replaceChildren(...timelineRows(events));
  }
  return section;
}

export async function responseView(view, id) {
  const r = await getJSON(`/v1/responses/${encodeURIComponent(id)}`);
  const input = await getAll(`/v1/responses/${encodeURIComponent(id)}/input_items?order=asc`);
  const tools = (r.output || []).filter((it) => TOOL_TYPES.has(it.type));
  const play = h("a", { class: "button", href: `#/playground?previous_response_id=${encodeURIComponent(r.id)}&model=${encodeURIComponent(r.model)}` }, "Continue in playground");
  view.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/responses" }, "Responses"), " / ", h("code", {}, r.id)),
    h("h1", {}, "Response ", h("code", {}, r.id), " ", play),
    h("div", { class: "columns" }, h("section", {}, h("h2", {}, "Summary"), summary(r)),
      h("section", {}, h("h2", {}, "Usage"), usage(r.usage))),
    h("section", { id: "input" }, h("h2", {}, `Input (${input.length})`), input.map(item)),
    h("section", { id: "output" }, h("h2", {}, `Output (${(r.output || []).length})`), (r.output || []).map(item)),
    h("section", { id: "tools" }, h("h2", {}, `Tool calls (${tools.length})`),
      tools.length ? tools.map(item) : h("p", { class: "muted" }, "No tool calls.")),
  );
  view.append(await eventTimeline(r), rawJson(r));
}

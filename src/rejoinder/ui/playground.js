// The playground: a streamed response from any served model, events shown as they arrive.

import { api, getJSON, sseEvents } from "./api.js";
import { badge, errorBox, h, item, responseLink } from "./render.js";

const field = (label, control) => h("label", { class: "field" }, h("span", {}, label), control);

export async function playgroundView(view, params) {
  const models = (await getJSON("/v1/models")).data.map((m) => m.id);
  const wanted = params.get("model");
  const model = h("select", { name: "model", id: "pg-model" },
    models.map((id) => h("option", { value: id, selected: id === wanted }, id)));
  const instructions = h("textarea", { name: "instructions", id: "pg-instructions", rows: 2, placeholder: "optional" });
  const input = h("textarea", { name: "input", id: "pg-input", rows: 4, required: true, placeholder: "Say something…" });
  const previous = h("input", { name: "previous_response_id", id: "pg-previous", value: params.get("previous_response_id") || "", placeholder: "resp_… (optional)" });
  const conversation = h("input", { name: "conversation", id: "pg-conversation", value: params.get("conversation") || "", placeholder: "conv_… (optional)" });
  const chain = h("input", { type: "checkbox", id: "pg-chain", checked: !params.get("conversation") });
  const store = h("input", { type: "checkbox", id: "pg-store", checked: true });
  const temperature = h("input", { type: "number", id: "pg-temperature", min: 0, max: 2, step: 0.1, placeholder: "default" });
  const send = h("button", { type: "submit", id: "pg-send" }, "Send");
  const stop = h("button", { type: "button", id: "pg-stop", disabled: true }, "Stop");
  const status = h("p", { class: "pg-status", id: "pg-status" }, models.length ? "Ready." : "No model is served.");
  const text = h("div", { class: "pg-text", id: "pg-output" });
  const items = h("div", { class: "items", id: "pg-items" });
  let controller = null;

  const run = async (event) => {
    event.preventDefault();
    const body = { model: model.value, input: input.value, stream: true, store: store.checked };
    if (instructions.value.trim()) body.instructions = instructions.value;
    if (previous.value.trim()) body.previous_response_id = previous.value.trim();
    if (conversation.value.trim()) body.conversation = conversation.value.trim();
    if (temperature.value !== "") body.temperature = Number(temperature.value);
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    text.replaceChildren();
    items.replaceChildren();
    status.replaceChildren("Waiting for the model…");
    let count = 0;
    let final = null;
    try {
      const response = await api("/v1/responses", { method: "POST", body, signal: controller.signal });
      for await (const e of sseEvents(response)) {
        count += 1;
        if (e.type === "response.output_text.delta") text.append(e.delta);
        else if (e.type === "response.output_item.done" && e.item.type !== "message") items.append(item(e.item));
        else if (e.type === "error") status.replaceChildren(errorBox(new Error(e.message || "stream error")));
        if (e.response) final = e.response;
        if (!final || !["completed", "failed", "incomplete"].includes(final.status)) {
          status.replaceChildren(`Streaming… ${count} events`);
        }
      }
      if (final) {
        const u = final.usage;
        status.replaceChildren(badge(final.status), " ", responseLink(final.id), ` · ${count} events`,
          u ? ` · ${u.input_tokens} in / ${u.output_tokens} out tokens` : "",
          final.error ? h("span", { class: "error" }, ` ${final.error.message}`) : "");
        if (chain.checked && store.checked && !body.conversation) previous.value = final.id;
        input.value = "";
      }
    } catch (error) {
      status.replaceChildren(error.name === "AbortError" ? "Stopped." : errorBox(error));
    } finally {
      send.disabled = false;
      stop.disabled = true;
      controller = null;
    }
  };
  stop.addEventListener("click", () => controller && controller.abort());

  view.append(h("h1", {}, "Playground"),
    h("form", { class: "playground", id: "playground", onsubmit: run },
      h("div", { class: "row" }, field("Model", model), field("Temperature", temperature)),
      field("Instructions", instructions), field("Input", input),
      h("div", { class: "row" }, field("Previous response", previous), field("Conversation", conversation)),
      h("div", { class: "row checks" },
        h("label", {}, chain, " continue from each answer"), h("label", {}, store, " store")),
      h("div", { class: "row" }, send, stop)),
    h("section", { class: "pg-result" }, status, text, items));
}

// The console's router (the URL's #fragment) and its API key.

import { ApiError, apiKey, forgetApiKey, getJSON, setApiKey } from "./api.js";
import { conversationView, conversationsView } from "./conversations.js";
import { playgroundView } from "./playground.js";
import { errorBox, h } from "./render.js";
import { responseView, responsesView } from "./responses.js";

const view = document.getElementById("view");
const keyPanel = document.getElementById("key-panel");
const keyError = document.getElementById("key-error");
const keyInput = document.getElementById("key-input");

const routes = [
  [/^responses\/(.+)$/, (m) => responseView(view, decodeURIComponent(m[1]))],
  [/^responses$/, (m, params) => responsesView(view, params)],
  [/^conversations\/(.+)$/, (m) => conversationView(view, decodeURIComponent(m[1]))],
  [/^conversations$/, (m, params) => conversationsView(view, params)],
  [/^playground$/, (m, params) => playgroundView(view, params)],
];

function showKeyState() {
  document.getElementById("key-state").hidden = !apiKey();
}

function askForKey(message) {
  keyPanel.hidden = false;
  view.hidden = true;
  keyError.hidden = !message;
  keyError.textContent = message || "";
  keyInput.value = "";
  keyInput.focus();
}

let rendering = 0;

async function render() {
  const token = ++rendering;
  const [path, query] = (location.hash.replace(/^#\/?/, "") || "responses").split("?");
  const params = new URLSearchParams(query || "");
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", path.startsWith(link.dataset.nav));
  }
  view.replaceChildren();
  view.setAttribute("aria-busy", "true");
  try {
    const route = routes.find(([pattern]) => pattern.test(path));
    if (!route) {
      view.append(h("p", { class: "error" }, "No such page."));
      return;
    }
    await route[1](path.match(route[0]), params);
  } catch (error) {
    if (token !== rendering) return; // a newer page replaced this one
    if (error instanceof ApiError && error.status === 401) {
      askForKey(apiKey() ? `The server refused this key: ${error.message}` : null);
      return;
    }
    view.append(errorBox(error));
  } finally {
    if (token === rendering) view.removeAttribute("aria-busy");
  }
}

document.getElementById("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  setApiKey(keyInput.value.trim());
  try {
    await getJSON("/v1/models"); // the key works before anything else is asked with it
  } catch (error) {
    forgetApiKey();
    askForKey(error instanceof ApiError && error.status === 401 ? `The server refused this key: ${error.message}` : error.message);
    return;
  }
  keyPanel.hidden = true;
  view.hidden = false;
  showKeyState();
  render();
});

document.getElementById("forget-key").addEventListener("click", () => {
  forgetApiKey();
  showKeyState();
  render();
});

window.addEventListener("hashchange", render);
showKeyState();
render();

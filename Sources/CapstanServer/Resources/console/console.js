// Capstan console: progressive enhancement only. Every page reads and works without it.
"use strict";

// Times are sent in UTC (ISO 8601); show them in the reader's time zone, keeping the exact
// value as the tooltip.
function localTimes(root) {
  for (const element of root.querySelectorAll("time")) {
    const value = element.textContent.trim();
    const date = new Date(value);
    if (!value || isNaN(date)) continue;
    element.dateTime = value;
    element.title = value;
    element.textContent = date.toLocaleString();
  }
}

// Forms that change something ask once before they send (data-confirm="question").
function confirmations(root) {
  for (const form of root.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

// A selector field with data-count="#target" says, as it is typed, how many nodes it picks.
function selectorCounts() {
  for (const input of document.querySelectorAll("input[data-count]")) {
    const target = document.querySelector(input.dataset.count);
    let timer = null;
    const ask = async () => {
      const response = await fetch("/ui/selector?selector=" + encodeURIComponent(input.value), { credentials: "same-origin" });
      if (response.ok) target.textContent = (await response.json()).text;
    };
    input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(ask, 250); });
    ask();
  }
}

// A running job's page follows its events: output per node as it comes, each node's state,
// and the final table once the job is done.
function followJob() {
  const summary = document.querySelector("[data-follow]");
  if (!summary || !window.EventSource) return;
  const events = new EventSource(summary.dataset.follow);
  const follow = document.getElementById("follow");
  const cell = (name, part) => document.querySelector(`#node-${CSS.escape(name)} [data-part="${part}"]`);
  events.addEventListener("node", (event) => {
    const node = JSON.parse(event.data).node;
    const state = cell(node.name, "state");
    if (!state) return;
    state.textContent = node.state;
    state.className = "status " + node.state;
    cell(node.name, "exit").textContent = node.exitCode ?? "-";
    cell(node.name, "attempts").textContent = node.attempts;
    cell(node.name, "error").textContent = node.error ?? "";
  });
  events.addEventListener("output", (event) => {
    const output = JSON.parse(event.data);
    const pre = document.getElementById("output-" + output.name);
    if (!pre) return;
    if (output.stream === "stderr") {
      const span = document.createElement("span");
      span.className = "stderr";
      span.textContent = output.text;
      pre.appendChild(span);
    } else {
      pre.appendChild(document.createTextNode(output.text));
    }
    if (follow && follow.checked) pre.scrollTop = pre.scrollHeight;
  });
  events.addEventListener("done", () => {
    events.close();
    window.location.reload();
  });
  events.addEventListener("error", () => {
    if (events.readyState === EventSource.CLOSED) return;
  });
}

// A page whose <main> names topics (data-live="nodes,templates") follows one event stream and
// redraws itself from the server when one of them changes, unless the reader is typing in it.
function liveRedraw() {
  const main = document.querySelector("main[data-live]");
  if (!main || !window.EventSource) return;
  const events = new EventSource("/ui/events?topics=" + encodeURIComponent(main.dataset.live));
  let busy = false;
  let again = false;
  const redraw = async () => {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      const typing = main.contains(document.activeElement) && document.activeElement.matches("input, textarea, select");
      if (response.ok && !typing) {
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.querySelector("main");
        if (fresh) {
          main.innerHTML = fresh.innerHTML;
          localTimes(main);
          confirmations(main);
          main.dataset.redrawn = String(Number(main.dataset.redrawn || 0) + 1);
        }
      }
    } finally {
      busy = false;
      if (again) { again = false; redraw(); }
    }
  };
  events.addEventListener("changed", redraw);
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  confirmations(document);
  liveRedraw();
  selectorCounts();
  followJob();
});

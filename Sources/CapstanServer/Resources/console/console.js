// Capstan console: progressive enhancement only. Every page reads and works without it.
"use strict";

// Times are sent in UTC (ISO 8601); show them in the reader's time zone, keeping the exact
// value as the tooltip.
function localTimes() {
  for (const element of document.querySelectorAll("time")) {
    const value = element.textContent.trim();
    const date = new Date(value);
    if (!value || isNaN(date)) continue;
    element.dateTime = value;
    element.title = value;
    element.textContent = date.toLocaleString();
  }
}

// Forms that change something ask once before they send (data-confirm="question").
function confirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  confirmations();
});

// The dashboard's script. Pages work without it. With it, times show in the browser's
// own time zone (the server writes UTC), and a page's live part follows the event
// stream: after each event that concerns it, the server renders that part again and it
// replaces the old one, so the page never shows a task in a state it has left. After a
// reconnect the part is fetched again, which catches up whatever was missed.
"use strict";

function localizeTimes(root) {
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  for (const element of root.querySelectorAll("time[datetime]")) {
    const at = new Date(element.getAttribute("datetime"));
    if (!Number.isNaN(at.getTime())) {
      element.textContent = format.format(at);
      element.title = at.toISOString();
    }
  }
}

function showState(state, text) {
  const indicator = document.getElementById("live");
  if (indicator) {
    indicator.dataset.state = state;
    indicator.textContent = text;
  }
}

function follow(region) {
  const kinds = (region.dataset.events || "").split(" ").filter(Boolean);
  const task = region.dataset.task;
  let scheduled = null;
  let fetching = false;
  let again = false;

  async function refresh() {
    scheduled = null;
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    try {
      const response = await fetch(region.dataset.fragment, { credentials: "same-origin" });
      if (response.status === 401) {
        window.location.assign("/login");
        return;
      }
      if (response.ok) {
        region.innerHTML = await response.text();
        localizeTimes(region);
        region.dataset.refreshed = String(Date.now());
      }
    } catch (error) {
      showState("reconnecting", "Reconnecting…");
    } finally {
      fetching = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  }

  function schedule() {
    if (scheduled === null) {
      scheduled = setTimeout(refresh, 250);
    }
  }

  function concerns(event) {
    if (!task) {
      return true;
    }
    try {
      return JSON.parse(event.data).taskId === task;
    } catch (error) {
      return true;
    }
  }

  const source = new EventSource("/api/events");
  let lost = false;
  showState("connecting", "Connecting…");
  source.onopen = () => {
    showState("live", "Live");
    if (lost) {
      lost = false;
      schedule();
    }
  };
  source.onerror = () => {
    lost = true;
    showState("reconnecting", "Reconnecting…");
  };
  for (const kind of kinds) {
    source.addEventListener(kind, (event) => {
      if (concerns(event)) {
        schedule();
      }
    });
  }
  source.addEventListener("resync", schedule);
}

// Links that open a form on a page of its own open it in a dialog instead.
function enhanceDialogs() {
  for (const opener of document.querySelectorAll("a[data-dialog]")) {
    const dialog = document.getElementById(opener.dataset.dialog);
    if (!dialog || typeof dialog.showModal !== "function") {
      continue;
    }
    opener.addEventListener("click", (event) => {
      event.preventDefault();
      dialog.showModal();
      const first = dialog.querySelector("input:not([type=hidden]), textarea, select");
      if (first) {
        first.focus();
      }
    });
  }
}

// Commands that stop or destroy work ask first.
function confirmDestructive() {
  document.addEventListener("submit", (event) => {
    const question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
}

function localInputValue(at) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:${pad(at.getMinutes())}`;
}

// The server writes date-time fields in UTC and reads them in the zone the form states:
// show them in local time, and state the local offset of the chosen time when sent.
function localizeTimeInputs() {
  for (const input of document.querySelectorAll('input[type="datetime-local"]')) {
    const offset = input.form && input.form.elements.namedItem("utcOffset");
    if (!offset) {
      continue;
    }
    if (input.value && offset.value === "0") {
      const at = new Date(`${input.value}Z`);
      if (!Number.isNaN(at.getTime())) {
        input.value = localInputValue(at);
      }
    }
    const zone = input.parentElement.querySelector("[data-zone]");
    if (zone) {
      zone.textContent = "In your local time.";
    }
    input.form.addEventListener("submit", () => {
      const chosen = input.value ? new Date(input.value) : new Date();
      offset.value = String(-chosen.getTimezoneOffset());
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localizeTimes(document);
  enhanceDialogs();
  confirmDestructive();
  localizeTimeInputs();
  const region = document.querySelector(".live-region[data-fragment]");
  if (region && "EventSource" in window) {
    follow(region);
  }
});

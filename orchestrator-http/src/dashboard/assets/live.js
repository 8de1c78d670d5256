// The dashboard's script. Pages work without it. With it, times show in the browser's
// own time zone (the server writes UTC), and a page's live part follows the event
// stream: after each event that concerns it, the server renders that part again and it
// replaces the old one, so the page never shows a task in a state it has left. After a
// reconnect the part is fetched again, which catches up whatever was missed.
"use strict";

function localizeTimes(root) {
  localizeHours(root);
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  for (const element of root.querySelectorAll("time[datetime]:not([data-countdown], [data-elapsed], [data-age])")) {
    const at = new Date(element.getAttribute("datetime"));
    if (!Number.isNaN(at.getTime())) {
      element.textContent = format.format(at);
      element.title = at.toISOString();
    }
  }
}

// The hours under the charts, in the browser's time zone.
function localizeHours(root) {
  const format = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  for (const element of root.querySelectorAll("text[data-hour]")) {
    const at = new Date(element.getAttribute("data-hour"));
    if (!Number.isNaN(at.getTime())) {
      element.textContent = format.format(at);
    }
  }
}

function duration(seconds) {
  const minutes = Math.floor(seconds / 60);
  const hours = Math.floor(minutes / 60);
  if (hours > 0) {
    return `${hours} h ${minutes % 60} min`;
  }
  return minutes > 0 ? `${minutes} min ${seconds % 60} s` : `${seconds} s`;
}

// Times that run out (a lock's expiry) count down, times something has been going on
// for (an agent at work) count up, and times something was last heard of say how long
// ago, to the second.
function tick() {
  const now = Date.now();
  const seconds = (element) =>
    Math.round((new Date(element.getAttribute("datetime")).getTime() - now) / 1000);
  for (const element of document.querySelectorAll("time[data-countdown]")) {
    const left = seconds(element);
    if (!Number.isNaN(left)) {
      element.textContent = left <= 0 ? "run out" : `in ${duration(left)}`;
    }
  }
  for (const element of document.querySelectorAll("time[data-elapsed]")) {
    const since = -seconds(element);
    if (!Number.isNaN(since)) {
      element.textContent = duration(Math.max(since, 0));
    }
  }
  for (const element of document.querySelectorAll("time[data-age]")) {
    const since = -seconds(element);
    if (!Number.isNaN(since)) {
      element.textContent = `${duration(Math.max(since, 0))} ago`;
    }
  }
}

// Where the focus is inside `root`, as a selector that finds the same control again
// after the part is rendered anew.
function focusKey(root) {
  const element = document.activeElement;
  if (!element || element === document.body || !root.contains(element)) {
    return null;
  }
  if (element.id) {
    return `#${CSS.escape(element.id)}`;
  }
  const form = element.closest("form[action]");
  if (form) {
    return `form[action="${CSS.escape(form.getAttribute("action"))}"] ${element.tagName.toLowerCase()}`;
  }
  const link = element.closest("a[href]");
  return link ? `a[href="${CSS.escape(link.getAttribute("href"))}"]` : null;
}

// The live part of a page follows the stream: after events that concern it, it is
// rendered anew (one request for a burst of events). The indicator says how many events
// the page has not caught up with yet. With "follow" unchecked, the part stays as it is
// until it is checked again.
function follow(region, stream) {
  const kinds = (region.dataset.events || "").split(" ").filter(Boolean);
  const task = region.dataset.task;
  let scheduled = null;
  let fetching = false;
  let behind = 0;

  const paused = () => {
    const box = region.querySelector("input[data-follow]");
    return box !== null && !box.checked;
  };
  const report = () => {
    if (!stream.connected) {
      return;
    }
    if (paused() && behind > 0) {
      stream.show("paused", `Paused · ${behind} new ${behind === 1 ? "event" : "events"}`);
    } else if (behind > 0) {
      stream.show("behind", `Behind by ${behind} ${behind === 1 ? "event" : "events"}`);
    } else {
      stream.show("live", "Live");
    }
  };
  const reveal = () => {
    for (const hidden of region.querySelectorAll("label.follow[hidden]")) {
      hidden.hidden = false;
    }
  };

  async function refresh() {
    scheduled = null;
    if (fetching || paused()) {
      report();
      return;
    }
    fetching = true;
    const covered = behind;
    try {
      const response = await fetch(region.dataset.fragment, { credentials: "same-origin" });
      if (response.status === 401) {
        window.location.assign("/login");
        return;
      }
      if (response.ok) {
        const html = await response.text();
        if (!paused()) {
          const focused = focusKey(region);
          region.innerHTML = html;
          reveal();
          localizeTimes(region);
          tick();
          const again = focused && region.querySelector(focused);
          if (again) {
            again.focus();
          }
          behind = Math.max(behind - covered, 0);
          region.dataset.refreshed = String(Date.now());
        }
      }
    } catch (error) {
      stream.show("reconnecting", "Reconnecting…");
    } finally {
      fetching = false;
      report();
      if (behind > 0) {
        schedule();
      }
    }
  }

  // Events of one burst (a claim, its locks and its logs) are taken together: the part
  // is fetched a moment after the first, and once more after a fetch if more came.
  function schedule() {
    if (scheduled === null) {
      scheduled = setTimeout(refresh, 30);
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

  reveal();
  region.addEventListener("change", (event) => {
    if (event.target.matches("input[data-follow]") && event.target.checked) {
      schedule();
    }
  });
  for (const kind of kinds) {
    stream.source.addEventListener(kind, (event) => {
      if (concerns(event)) {
        behind += 1;
        report();
        schedule();
      }
    });
  }
  // After a reconnect, or when the server says the stream skipped events, the part is
  // fetched anew, which catches up whatever was missed.
  stream.onCaughtUp = () => {
    behind += 1;
    schedule();
  };
  stream.source.addEventListener("resync", stream.onCaughtUp);
}

// The event stream of the page, with a truthful indicator.
function connect() {
  const indicator = document.getElementById("live");
  const stream = {
    source: new EventSource("/api/events"),
    connected: false,
    lost: false,
    onCaughtUp: null,
    show(state, text) {
      if (indicator) {
        indicator.dataset.state = state;
        indicator.textContent = text;
      }
    },
  };
  stream.show("connecting", "Connecting…");
  stream.source.onopen = () => {
    stream.connected = true;
    stream.show("live", "Live");
    if (stream.lost && stream.onCaughtUp) {
      stream.onCaughtUp();
    }
    stream.lost = false;
  };
  stream.source.onerror = () => {
    stream.connected = false;
    stream.lost = true;
    stream.show("reconnecting", "Reconnecting…");
  };
  // A page the browser keeps for going back must not keep its stream (nor one of the
  // few connections a browser opens to a server); shown again, it is loaded afresh, so
  // that it never shows what has changed since.
  window.addEventListener("pagehide", () => stream.source.close());
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) {
      window.location.reload();
    }
  });
  return stream;
}

// A short message in the corner that goes away by itself, and, for what needs a person
// while the page is not looked at, the browser's notification when it is allowed.
function toast(text, href, urgent) {
  const box = document.getElementById("toasts");
  if (!box) {
    return;
  }
  const item = document.createElement("a");
  item.className = urgent ? "toast urgent" : "toast";
  item.href = href;
  item.textContent = text;
  box.append(item);
  setTimeout(() => item.remove(), 8000);
  if (urgent && document.hidden && "Notification" in window && Notification.permission === "granted") {
    new Notification("orchestrator: needs you", { body: text });
  }
}

function announce(stream) {
  const short = (id) => (id ? id.slice(0, 8) : "");
  stream.source.addEventListener("task.status_changed", (event) => {
    const data = JSON.parse(event.data);
    const to = data.payload && data.payload.to;
    if (to === "COMPLETED" || to === "FAILED") {
      toast(`Task ${short(data.taskId)} ${to === "COMPLETED" ? "completed" : "failed"}`, `/tasks/${data.taskId}`, to === "FAILED");
    }
  });
  stream.source.addEventListener("exception.opened", (event) => {
    const data = JSON.parse(event.data);
    const kind = (data.payload && data.payload.type) || "exception";
    const words = kind === "AGENT_STUCK" ? "An agent stalled" : `Needs you: ${kind.toLowerCase().replaceAll("_", " ")}`;
    toast(data.taskId ? `${words} (task ${short(data.taskId)})` : words, `/exceptions/${data.exceptionId}`, true);
  });
  const ask = document.getElementById("notify");
  if (ask && "Notification" in window && Notification.permission === "default") {
    ask.hidden = false;
    ask.addEventListener("click", async () => {
      await Notification.requestPermission();
      ask.hidden = true;
    });
  }
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

// Choosing a column to sort by selects its usual order where the page states one
// (newest first for creation, A to Z for names); the order can still be changed after.
function followSortOrder() {
  const sort = document.getElementById("filter-sort");
  const order = document.getElementById("filter-order");
  if (!sort || !order) {
    return;
  }
  sort.addEventListener("change", () => {
    const chosen = sort.selectedOptions[0];
    if (chosen && chosen.dataset.order) {
      order.value = chosen.dataset.order;
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

// Buttons that copy a command to the clipboard.
function enableCopy() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) {
      continue;
    }
    button.hidden = false;
    button.addEventListener("click", async () => {
      await navigator.clipboard.writeText(source.textContent);
      button.textContent = "Copied";
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  enableCopy();
  localizeTimes(document);
  tick();
  setInterval(tick, 1000);
  enhanceDialogs();
  confirmDestructive();
  followSortOrder();
  localizeTimeInputs();
  if (document.getElementById("live") && "EventSource" in window) {
    const stream = connect();
    announce(stream);
    const region = document.querySelector(".live-region[data-fragment]");
    if (region) {
      follow(region, stream);
    }
  }
});

// The dashboard's script. Pages work without it; it shows each <time> in the browser's
// own time zone (the server writes UTC).
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

document.addEventListener("DOMContentLoaded", () => localizeTimes(document));

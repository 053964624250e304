// The workspace's only script: live queue updates, keyboard shortcuts, and the draft
// streamed into its text box. Pages work without it (plain forms and links).

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

function post(url, fields) {
  const body = new URLSearchParams(fields ?? {});
  return fetch(url, {
    method: "POST",
    headers: { "X-CSRF-Token": csrf },
    body,
    credentials: "same-origin",
  });
}

// Changes to the tenant's tickets after `mark`, the moment the page was drawn at.
function liveEvents(mark) {
  return new EventSource(`/app/events?since=${encodeURIComponent(mark ?? "")}`);
}

// ---- the queue: live rows and shortcuts ------------------------------------------------

function queuePage() {
  const rows = document.getElementById("rows");
  const live = document.getElementById("live");
  let selectedId = null;

  const dataRows = () => [...rows.querySelectorAll("tr[data-id]")];

  function select(row) {
    dataRows().forEach((r) => r.classList.remove("selected"));
    if (!row) return;
    row.classList.add("selected");
    selectedId = row.dataset.id;
    row.querySelector("a")?.focus();
  }

  async function refresh() {
    const known = new Set(dataRows().map((r) => r.dataset.id));
    const response = await fetch(rows.dataset.source, { credentials: "same-origin" });
    if (response.status === 401) return window.location.assign("/app/login");
    if (!response.ok) return;
    const hadFocus = rows.contains(document.activeElement);
    rows.innerHTML = await response.text();
    const added = dataRows().filter((r) => !known.has(r.dataset.id));
    added.forEach((r) => r.classList.add("fresh"));
    if (added.length) live.textContent = `${added.length} new ticket(s)`;
    const again = dataRows().find((r) => r.dataset.id === selectedId);
    if (again) again.classList.add("selected");
    if (again && hadFocus) again.querySelector("a")?.focus();  // the keys go on working
  }

  const events = liveEvents(rows.dataset.mark);
  events.addEventListener("changed", refresh);
  events.addEventListener("ready", () => { rows.dataset.live = "on"; });

  document.addEventListener("keydown", async (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, select, textarea, button")) return;
    const all = dataRows();
    const at = all.findIndex((r) => r.dataset.id === selectedId);
    if (event.key === "j" || event.key === "ArrowDown") {
      select(all[Math.min(at + 1, all.length - 1)]);
    } else if (event.key === "k" || event.key === "ArrowUp") {
      select(all[Math.max(at - 1, 0)]);
    } else if ((event.key === "o" || event.key === "Enter") && at >= 0) {
      window.location.assign(all[at].dataset.href);
    } else if (event.key === "r" && at >= 0) {
      const response = await post(`/app/tickets/${all[at].dataset.id}/status`, { status: "resolved" });
      live.textContent = response.ok ? `Ticket ${all[at].dataset.id} resolved` : "Could not resolve it";
      await refresh();
    } else {
      return;
    }
    event.preventDefault();
  });
}

// ---- a ticket: the draft written again, streamed ----------------------------------------

function ticketPage() {
  const button = document.getElementById("regenerate");
  const box = document.getElementById("reply");
  const status = document.getElementById("draft-status");
  const ticket = document.querySelector("[data-ticket]");
  if (ticket && ["queued", "processing"].includes(ticket.dataset.status)) {
    // not triaged yet: show the triage and the draft when the worker is done with it,
    // unless the agent has started writing
    const untouched = box?.value ?? "";
    const events = liveEvents(ticket.dataset.mark);
    events.addEventListener("ready", () => { ticket.dataset.live = "on"; });
    events.addEventListener("changed", () => {
      if ((box?.value ?? "") === untouched) window.location.reload();
    });
  }
  if (!button || !box) return;

  let lastDraft = box.value;  // what the model last wrote: an agent's edits are not lost silently
  button.addEventListener("click", async () => {
    if (box.value !== lastDraft && !window.confirm("Replace your edits with a new draft?")) return;
    button.disabled = true;
    box.setAttribute("aria-busy", "true");
    status.textContent = "Writing the draft…";
    box.value = "";
    try {
      const response = await post(button.dataset.url);
      if (!response.ok) throw new Error(`the server answered ${response.status}`);
      await readEvents(response.body, (event, data) => {
        if (event === "delta") box.value += data.text;
        if (event === "restart") box.value = data.text;
        if (event === "draft") {
          box.value = lastDraft = data.text;
          status.textContent = `Draft written by ${data.source}.`;
        }
      });
    } catch (error) {
      status.textContent = `The draft could not be written: ${error.message}`;
    } finally {
      box.removeAttribute("aria-busy");
      button.disabled = false;
    }
  });
}

async function readEvents(stream, onEvent) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? "message";
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (data && data !== "[DONE]") onEvent(event, JSON.parse(data));
    }
  }
}

const page = document.body.dataset.page;
if (page === "queue" || page === "review") queuePage();
if (page === "ticket") ticketPage();

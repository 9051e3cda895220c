// nbcog ServerMonitor list: every prediction of the service, newest first; a click opens it.
// Rows are small and change only when a prediction is created, starts or ends, so the whole
// list is a synced trait; elapsed times tick here, in the browser. `notice` says that the
// server was stopped (the list is frozen, greyed) or reloaded (rows of the previous code are
// greyed); the title says "stopped" too, so no one mistakes old rows for live ones.

const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

function h(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function formatSeconds(ms) {
  const s = Math.max(0, ms) / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${(s % 60).toFixed(0)} s`;
}

// Re-run a finished prediction as it was, or open the input form filled with its inputs.
function actions(row, model) {
  const cell = h("td", "nbcog-actions");
  if (!TERMINAL.has(row.status)) return cell;
  for (const [kind, label, title] of [
    ["rerun", "Re-run", "run it again with the same inputs"],
    ["edit", "Edit", "open the form with its inputs, edit, then run"],
  ]) {
    const button = h("button", `nbcog-${kind}`, label);
    button.title = title;
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      model.send({ kind, id: row.id });
    });
    cell.appendChild(button);
  }
  return cell;
}

function render({ model, el }) {
  el.classList.add("nbcog-monitor");
  const title = h("div", "nbcog-monitor-title");
  const table = h("table");
  const head = h("thead");
  const headRow = h("tr");
  for (const name of ["id", "status", "kind", "started", "time", "input", ""]) {
    headRow.appendChild(h("th", null, name));
  }
  head.appendChild(headRow);
  const body = h("tbody");
  table.append(head, body);
  const empty = h("div", "nbcog-monitor-empty", "No predictions yet.");
  const notice = h("div", "nbcog-notice nbcog-monitor-notice");
  el.replaceChildren(title, notice, table, empty);

  const clocks = [];

  function paint() {
    const rows = model.get("rows");
    const selected = model.get("selected");
    const stopped = model.get("stopped");
    title.textContent = model.get("title") + (stopped ? " (stopped)" : "");
    notice.textContent = model.get("notice") ? `⚠ ${model.get("notice")}` : "";
    notice.hidden = !model.get("notice");
    el.classList.toggle("nbcog-stopped", stopped);
    empty.hidden = rows.length > 0;
    clocks.length = 0;
    body.replaceChildren(...rows.map((row) => {
      const tr = h("tr");
      tr.dataset.id = row.id;
      if (row.id === selected) tr.classList.add("nbcog-selected");
      if (row.previous) tr.classList.add("nbcog-previous");
      const badge = h("span", "nbcog-status", row.status);
      badge.dataset.status = row.status;
      if (row.error) badge.title = row.error;
      const status = h("td");
      status.appendChild(badge);
      const time = h("td");
      clocks.push([time, row]);
      tr.append(
        h("td", "nbcog-id", row.id), status, h("td", null, row.kind),
        h("td", null, new Date(row.created_ms).toLocaleTimeString()), time,
        h("td", null, row.input), actions(row, model),
      );
      tr.addEventListener("click", () => model.send({ kind: "open", id: row.id }));
      return tr;
    }));
    tick();
  }

  function tick() {
    const now = Date.now();
    for (const [cell, row] of clocks) {
      const end = row.completed_ms ?? (TERMINAL.has(row.status) ? null : now);
      cell.textContent = end === null ? "" : formatSeconds(end - row.created_ms);
    }
  }

  model.on("change:rows", paint);
  model.on("change:selected", paint);
  model.on("change:title", paint);
  model.on("change:notice", paint);
  paint();
  const timer = setInterval(tick, 500);
  return () => {
    clearInterval(timer);
    model.off("change:rows", paint);
    model.off("change:selected", paint);
    model.off("change:title", paint);
    model.off("change:notice", paint);
  };
}

export default { render };

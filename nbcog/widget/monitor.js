// nbcog ServerMonitor list: every prediction of the service, newest first; a click opens it.
// Rows are small and change only when a prediction is created, starts or ends, so the whole
// list is a synced trait; elapsed times tick here, in the browser.

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

function render({ model, el }) {
  el.classList.add("nbcog-monitor");
  const title = h("div", "nbcog-monitor-title");
  const table = h("table");
  const head = h("thead");
  const headRow = h("tr");
  for (const name of ["id", "status", "kind", "started", "time", "input"]) {
    headRow.appendChild(h("th", null, name));
  }
  head.appendChild(headRow);
  const body = h("tbody");
  table.append(head, body);
  const empty = h("div", "nbcog-monitor-empty", "No predictions yet.");
  el.replaceChildren(title, table, empty);

  const clocks = [];

  function paint() {
    const rows = model.get("rows");
    const selected = model.get("selected");
    title.textContent = model.get("title");
    empty.hidden = rows.length > 0;
    clocks.length = 0;
    body.replaceChildren(...rows.map((row) => {
      const tr = h("tr");
      tr.dataset.id = row.id;
      if (row.id === selected) tr.classList.add("nbcog-selected");
      const badge = h("span", "nbcog-status", row.status);
      badge.dataset.status = row.status;
      const status = h("td");
      status.appendChild(badge);
      const time = h("td");
      clocks.push([time, row]);
      tr.append(
        h("td", "nbcog-id", row.id), status, h("td", null, row.kind),
        h("td", null, new Date(row.created_ms).toLocaleTimeString()), time,
        h("td", null, row.input),
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
  paint();
  const timer = setInterval(tick, 500);
  return () => {
    clearInterval(timer);
    model.off("change:rows", paint);
    model.off("change:selected", paint);
    model.off("change:title", paint);
  };
}

export default { render };

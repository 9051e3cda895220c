// nbcog PredictionView: one prediction, live.
//
// Protocol (see nbcog/widget/view.py): the model is created with the prediction's state so
// far in its traits, labelled with `seq`. While the prediction runs, Python sends custom
// messages {kind: "delta", seq, ...only what was added} at most ~20 per second; when the
// prediction ends, the final state is written to the traits (`done` becomes true) and every
// view redraws from them.
//
// Deltas are folded per *model*, not per view: anywidget's `initialize` hook runs once per
// model, before any view, and anywidget handles no message on the model's comm before it has
// run. The store it makes starts from the traits and applies every delta from then on, and
// views draw from the store, so nothing has to be asked of the kernel to start drawing. That
// matters: the cell that displayed the view (`%cog predict`) is usually still running, and the
// kernel answers no comm message until it ends.
//
// A model restored after a page reload starts from older traits. It asks for the full state
// once ({kind: "sync"}, answered with {kind: "full", state}); a gap in the delta numbers stops
// it applying deltas until a full state arrives, asked for again every SYNC_RETRY_MS (the
// kernel may drop a comm message: see context.py).

const SYNC_RETRY_MS = 1000;

const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const STATE_KEYS = [
  "status", "output_text", "output_items", "logs", "metrics", "metric_modes", "error",
  "traceback", "timeline", "timeline_dropped", "notices", "output_count",
];

function blank() {
  return {
    status: "starting", output_text: "", output_items: [], logs: "", metrics: {},
    metric_modes: {}, error: "", traceback: "", timeline: [], timeline_dropped: 0,
    notices: [], output_count: 0,
  };
}

// A copy: the store folds deltas into its state, never into the model's attributes.
function fromModel(model) {
  const state = blank();
  for (const key of STATE_KEYS) state[key] = structuredClone(model.get(key));
  return state;
}

// Fold one delta into a state; views then draw only the delta.
function fold(state, d) {
  if (d.output_text) state.output_text += d.output_text;
  if (d.output_items) state.output_items.push(...d.output_items);
  if (d.logs) state.logs += d.logs;
  if (d.metrics) Object.assign(state.metrics, d.metrics);
  for (const key of d.metrics_deleted || []) delete state.metrics[key];
  if (d.metric_modes) Object.assign(state.metric_modes, d.metric_modes);
  if (d.timeline) state.timeline.push(...d.timeline);
  if (d.notices) state.notices.push(...d.notices);
  if (d.status !== undefined) {
    state.status = d.status;
    state.error = d.error;
    state.traceback = d.traceback;
  }
}

// One model's state from its creation on; each view subscribes with {full(), delta(d)}.
function createStore(model) {
  const views = new Set();
  const store = { state: fromModel(model), seq: model.get("seq"), views };
  let live = true; // `state` is the prediction's at `seq`: delta seq + 1 applies to it
  let retry = null;

  function resync() {
    retry = null;
    if (live || model.get("done")) return;
    model.send({ kind: "sync" });
    retry = setTimeout(resync, SYNC_RETRY_MS);
  }

  function onCustom(msg) {
    if (model.get("done")) return; // the final traits hold everything
    if (msg.kind === "full") {
      store.state = Object.assign(blank(), msg.state);
      store.seq = msg.state.seq;
      live = true;
      for (const view of views) view.full();
    } else if (msg.kind === "delta" && msg.seq > store.seq) {
      if (live && msg.seq === store.seq + 1) {
        store.seq = msg.seq;
        fold(store.state, msg);
        for (const view of views) view.delta(msg);
      } else if (live) {
        live = false; // one is missing: wait for a full state
        resync();
      }
    }
  }

  function onDone() {
    if (!model.get("done")) return;
    store.state = fromModel(model);
    live = true;
    for (const view of views) view.full();
  }

  model.on("msg:custom", onCustom);
  model.on("change:done", onDone);
  // Traits restored after a page reload may be old. Asked once: answered at once when the
  // kernel is idle, else when the cell ends (by then the prediction is usually done, and the
  // kernel sends nothing).
  if (!model.get("done")) model.send({ kind: "sync" });
  store.dispose = () => {
    clearTimeout(retry);
    model.off("msg:custom", onCustom);
    model.off("change:done", onDone);
  };
  return store;
}

function h(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function atBottom(node) {
  return node.scrollHeight - node.scrollTop - node.clientHeight < 8;
}

function appendFollowing(pre, text) {
  const follow = atBottom(pre);
  if (pre.firstChild) pre.firstChild.appendData(text);
  else pre.appendChild(document.createTextNode(text));
  if (follow) pre.scrollTop = pre.scrollHeight;
}

function flatten(value, prefix, rows) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const keys = Object.keys(value).sort();
    if (keys.length === 0 && prefix) rows.push([prefix, value]);
    for (const key of keys) flatten(value[key], prefix ? `${prefix}.${key}` : key, rows);
  } else {
    rows.push([prefix, value]);
  }
  return rows;
}

function formatValue(value) {
  if (typeof value === "number" && !Number.isInteger(value)) {
    return String(Number(value.toPrecision(6)));
  }
  return JSON.stringify(value);
}

function formatSeconds(ms) {
  const s = Math.max(0, ms) / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${(s % 60).toFixed(0)} s`;
}

function itemNode(item) {
  const box = h("div", `nbcog-item nbcog-item-${item.kind}`);
  if (item.kind === "image") {
    const img = h("img");
    img.src = item.src;
    img.alt = item.name;
    box.appendChild(img);
  } else if (item.kind === "audio" || item.kind === "video") {
    const media = h(item.kind);
    media.controls = true;
    media.src = item.src;
    box.appendChild(media);
  } else if (item.kind === "json") {
    box.appendChild(h("pre", "nbcog-json", item.text));
    return box;
  }
  const link = h("a", "nbcog-download", `⬇ ${item.name}`);
  link.href = item.src;
  link.download = item.name;
  link.target = "_blank";
  box.appendChild(link);
  return box;
}

// The same request for every client, from nbcog/core/snippets.py (the one builder).
const SNIPPET_LANGUAGES = [
  ["curl", "curl"], ["python", "Python"], ["js", "JavaScript"], ["cog", "cog predict"],
];

function snippetBox(snippets) {
  const box = h("details", "nbcog-snippets");
  const tabs = h("div", "nbcog-snippet-tabs");
  const code = h("pre", "nbcog-snippet-code");
  box.append(h("summary", null, "Use via API: curl, Python, JavaScript, cog"), tabs, code);
  for (const [lang, label] of SNIPPET_LANGUAGES) {
    if (!(lang in snippets)) continue;
    const tab = h("button", "nbcog-snippet-tab", label);
    tab.dataset.lang = lang;
    tab.addEventListener("click", () => {
      code.textContent = snippets[lang];
      for (const other of tabs.children) other.classList.toggle("nbcog-selected", other === tab);
    });
    tabs.appendChild(tab);
  }
  tabs.firstChild?.click();
  return box;
}

function render(model, el, store) {
  el.classList.add("nbcog-view");
  const header = h("div", "nbcog-header");
  const badge = h("span", "nbcog-status");
  const ident = h("span", "nbcog-id", `${model.get("kind")} ${model.get("prediction_id")}`);
  const elapsed = h("span", "nbcog-elapsed");
  const cancel = h("button", "nbcog-cancel", "Cancel");
  const copy = h("button", "nbcog-copy", "Copy as curl");
  header.append(badge, ident, elapsed, cancel, copy);

  const notices = h("div", "nbcog-notices");
  const text = h("pre", "nbcog-output-text");
  const items = h("div", "nbcog-output-items");
  const errorBox = h("div", "nbcog-error");
  const errorText = h("pre", "nbcog-error-text");
  const traceback = h("details", "nbcog-traceback");
  const tracebackText = h("pre");
  traceback.append(h("summary", null, "Traceback"), tracebackText);
  errorBox.append(errorText, traceback);

  const logsBox = h("details", "nbcog-logs");
  logsBox.open = true;
  const logsSummary = h("summary", null, "Logs");
  const logs = h("pre", "nbcog-logs-text");
  logsBox.append(logsSummary, logs);

  const metricsBox = h("div", "nbcog-metrics");
  const timelineBox = h("details", "nbcog-timeline");
  const timelineList = h("ol");
  const timelineMore = h("div", "nbcog-timeline-more");
  timelineBox.append(h("summary", null, "Timeline"), timelineList, timelineMore);

  const curlBox = h("details", "nbcog-curl");
  curlBox.append(h("summary", null, "HTTP request (curl)"), h("pre", null, model.get("curl")));

  const apiBox = snippetBox(model.get("snippets") || {});

  el.replaceChildren(
    header, notices, text, items, errorBox, logsBox, metricsBox, timelineBox, curlBox, apiBox,
  );

  let state = store.state;

  function paintStatus() {
    badge.textContent = state.status;
    badge.dataset.status = state.status;
    cancel.hidden = TERMINAL.has(state.status);
    errorBox.hidden = !state.error;
    errorText.textContent = state.error;
    traceback.hidden = !state.traceback;
    tracebackText.textContent = state.traceback;
    tick();
  }

  function paintMetrics() {
    const rows = flatten(state.metrics, "", []).filter(([key]) => key);
    metricsBox.replaceChildren();
    if (rows.length === 0) return;
    const table = h("table", "nbcog-metrics-table");
    const head = h("tr");
    head.append(h("th", null, "metric"), h("th", null, "value"), h("th", null, "mode"));
    table.appendChild(head);
    for (const [key, value] of rows) {
      const row = h("tr");
      row.dataset.metric = key;
      const mode = state.metric_modes[key] || (key === "predict_time" ? "runtime" : "");
      row.append(h("td", null, key), h("td", null, formatValue(value)), h("td", null, mode));
      table.appendChild(row);
    }
    metricsBox.appendChild(table);
  }

  function addTimeline(rows) {
    for (const row of rows) {
      timelineList.appendChild(h("li", null, `+${row.t.toFixed(3)} s  ${row.event}  ${row.detail}`));
    }
  }

  function paintNotices() {
    notices.replaceChildren(...state.notices.map((n) => h("div", "nbcog-notice", `⚠ ${n}`)));
  }

  function paintAll() {
    text.replaceChildren(document.createTextNode(state.output_text));
    text.hidden = !state.output_text;
    items.replaceChildren(...state.output_items.map(itemNode));
    logs.replaceChildren(document.createTextNode(state.logs));
    logsBox.hidden = !state.logs;
    logs.scrollTop = logs.scrollHeight;
    text.scrollTop = text.scrollHeight;
    timelineList.replaceChildren();
    addTimeline(state.timeline);
    timelineMore.textContent = state.timeline_dropped
      ? `… ${state.timeline_dropped} more events not listed` : "";
    paintNotices();
    paintMetrics();
    paintStatus();
  }

  // Draw a delta the store has just folded into `state`: append, never redraw everything.
  function drawDelta(d) {
    if (d.output_text) {
      text.hidden = false;
      appendFollowing(text, d.output_text);
    }
    if (d.output_items) items.append(...d.output_items.map(itemNode));
    if (d.logs) {
      logsBox.hidden = false;
      appendFollowing(logs, d.logs);
    }
    if (d.metrics || d.metric_modes) paintMetrics();
    if (d.timeline) addTimeline(d.timeline);
    if (d.notices) paintNotices();
    if (d.status !== undefined) paintStatus();
  }

  function tick() {
    const created = model.get("created_ms");
    const completed = model.get("completed_ms");
    const end = completed ?? (TERMINAL.has(state.status) ? null : Date.now());
    elapsed.textContent = end === null ? "" : formatSeconds(end - created);
  }

  cancel.addEventListener("click", () => model.send({ kind: "cancel" }));
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(model.get("curl"));
      copy.textContent = "Copied";
    } catch {
      curlBox.open = true;
      copy.textContent = "Copy from below";
    }
    setTimeout(() => { copy.textContent = "Copy as curl"; }, 1500);
  });

  const subscriber = {
    full() {
      state = store.state;
      paintAll();
    },
    delta: drawDelta,
  };
  store.views.add(subscriber);
  paintAll();
  const timer = setInterval(tick, 250);
  return () => {
    clearInterval(timer);
    store.views.delete(subscriber);
  };
}

// A factory: anywidget calls it once per model, so each model has its own store.
export default () => {
  let store = null;
  return {
    initialize({ model }) {
      store = createStore(model);
      return () => store.dispose();
    },
    render({ model, el }) {
      return render(model, el, store);
    },
  };
};

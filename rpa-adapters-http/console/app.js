// The rpa console: one page, hash routes, no build step. It speaks the
// server's own APIs (seed 000 login and jobs, /admin/*, /console/api/*)
// with the user's X-Access-Token, kept in this tab's sessionStorage, and
// redraws the page it shows when the server's stream tells of a commit.
"use strict";

const TOKEN = "rpa.token";
const $ = (id) => document.getElementById(id);
const state = { me: null, stream: null, redraw: null, timer: null };

// ------------------------------------------------------------------ DOM

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const svgNs = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// Times as the APIs write them: yyyy-MM-dd HH:mm:ss in the server's zone.
let clock = null;
function time(ms) {
  if (!ms) return "";
  if (!clock) {
    const zone = state.me && state.me.timeZone;
    const opts = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
    try {
      clock = new Intl.DateTimeFormat("sv-SE", { ...opts, timeZone: zone });
    } catch (_) {
      clock = new Intl.DateTimeFormat("sv-SE", opts);
    }
  }
  return clock.format(new Date(ms));
}

function badge(word) {
  return h("span", { class: `badge s-${String(word).toLowerCase()}` }, word);
}

function table(columns, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty || "Nothing yet.");
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c[0])))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => h("td", {}, c[1](r)))))),
  );
}

function toast(text, bad) {
  const t = $("toast");
  t.textContent = text;
  t.className = bad ? "toast bad" : "toast";
  t.hidden = false;
  clearTimeout(state.timer);
  state.timer = setTimeout(() => (t.hidden = true), 4000);
}

// ------------------------------------------------------------------ API

class Expired extends Error {}

async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN);
  const init = { method, headers: { "X-Access-Token": token || "" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  let env = null;
  try {
    env = await r.json();
  } catch (_) {
    throw new Error(`${path}: HTTP ${r.status}`);
  }
  if (r.status === 401 || env.code === 401) {
    signOut("Your session has ended; log in again.");
    throw new Expired();
  }
  if (!env.success) throw new Error(env.message || `HTTP ${r.status}`);
  return env.result;
}

const get = (path) => api("GET", path);
const post = (path, body) => api("POST", path, body === undefined ? {} : body);

// ------------------------------------------------------------------ session

function signOut(message) {
  sessionStorage.removeItem(TOKEN);
  state.me = null;
  if (state.stream) state.stream.abort();
  state.stream = null;
  $("bar").hidden = true;
  $("page").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("live").className = "live off";
}

async function signIn(ev) {
  ev.preventDefault();
  $("login-error").textContent = "";
  const r = await fetch("/rpa/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }),
  });
  const env = await r.json().catch(() => ({}));
  if (!env.success) {
    $("login-error").textContent = env.message || `HTTP ${r.status}`;
    return;
  }
  sessionStorage.setItem(TOKEN, env.result.token);
  $("password").value = "";
  await start();
}

async function start() {
  try {
    state.me = await get("/console/api/me");
  } catch (e) {
    if (!(e instanceof Expired)) signOut(e.message);
    return;
  }
  $("login").hidden = true;
  $("bar").hidden = false;
  $("page").hidden = false;
  $("who").textContent = state.me.name;
  nav();
  listen();
  if (!location.hash || location.hash === "#/login") location.hash = "#/overview";
  else route();
}

const may = (p) => state.me && state.me.permissions.includes(p);

// ------------------------------------------------------------------ live

// The server's stream of commits, read with fetch (it needs the header).
async function listen() {
  if (state.stream) state.stream.abort();
  const ctl = new AbortController();
  state.stream = ctl;
  let wait = 1000;
  while (!ctl.signal.aborted && sessionStorage.getItem(TOKEN)) {
    try {
      const r = await fetch("/console/api/stream", {
        headers: { "X-Access-Token": sessionStorage.getItem(TOKEN) },
        signal: ctl.signal,
      });
      if (r.status === 401) return signOut("Your session has ended; log in again.");
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      $("live").className = "live on";
      wait = 1000;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const ev = /^event: (.*)$/m.exec(block);
          const data = /^data: (.*)$/m.exec(block);
          if (!ev) continue;
          if (ev[1] === "expired") return signOut("Your session has ended; log in again.");
          if (ev[1] === "change" && data) changed(JSON.parse(data[1]));
        }
      }
    } catch (_) {
      if (ctl.signal.aborted) return;
    }
    $("live").className = "live off";
    await new Promise((ok) => setTimeout(ok, wait));
    wait = Math.min(wait * 2, 15000);
  }
}

let pending = null;
function changed(change) {
  $("live").title = `last change: ${change.action} (#${change.seq})`;
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    if (state.redraw) state.redraw();
  }, 200);
}

// ------------------------------------------------------------------ routes

const PAGES = [
  ["overview", "Overview", null],
  ["robots", "Robots", "ManageRobots"],
  ["jobs", "Jobs", null],
  ["queues", "Queues", null],
  ["processes", "Processes", "ManageProcesses"],
  ["schedules", "Schedules", "ManageProcesses"],
  ["pipelines", "Pipelines", "ManageProcesses"],
  ["tickets", "Tickets", "ViewAudit"],
  ["catalogue", "Catalogue", null],
  ["analysis", "Analysis", null],
  ["content", "Content", null],
  ["designers", "Designers", null],
  ["screen", "Screen", null],
  ["audit", "Audit", "ViewAudit"],
  ["children", "Children", "ViewAudit"],
];

function nav() {
  const n = $("nav");
  n.replaceChildren(
    ...PAGES.filter(([, , p]) => !p || may(p)).map(([id, label]) =>
      h("a", { href: `#/${id}`, id: `nav-${id}` }, label),
    ),
  );
}

async function route() {
  if (!state.me) return;
  const [, name, arg] = location.hash.split("/");
  const section = { job: "jobs", packages: "processes", process: "processes", items: "queues" }[name] || name;
  for (const a of $("nav").children) a.classList.toggle("on", a.id === `nav-${section}`);
  const draw = {
    overview,
    robots,
    jobs,
    job: () => job(decodeURIComponent(arg || "")),
    queues,
    processes,
    schedules,
    pipelines,
    audit,
    children,
    tickets,
    catalogue,
    analysis,
    content,
    designers,
    screen,
    packages: () => packages(decodeURIComponent(arg || "")),
    process: () => processPage(decodeURIComponent(arg || "")),
    items: () => items(decodeURIComponent(arg || "")),
  }[name] || overview;
  document.body.classList.toggle("big", name === "screen");
  state.redraw = async () => {
    try {
      const content = await draw();
      $("page").replaceChildren(...[content].flat());
    } catch (e) {
      if (!(e instanceof Expired)) $("page").replaceChildren(h("p", { class: "error" }, e.message));
    }
  };
  await state.redraw();
}

// ------------------------------------------------------------------ pages

function card(label, value, cls) {
  return h("div", { class: `card ${cls || ""}` }, h("div", { class: "value" }, value), h("div", { class: "label" }, label));
}

function chart(days, series) {
  // Stacked bars per day: successful (green) under faulted (red).
  const W = 280, H = 100, pad = 14;
  const max = Math.max(1, ...series.map(([ok, bad]) => ok + bad));
  const bw = (W - pad) / days.length;
  const bars = series.flatMap(([ok, bad], i) => {
    const x = pad + i * bw + 2;
    const hOk = ((H - 28) * ok) / max;
    const hBad = ((H - 28) * bad) / max;
    return [
      s("rect", { x, y: H - 12 - hOk, width: bw - 4, height: hOk, class: "ok" }, s("title", {}, `${days[i]}: ${ok} successful`)),
      s("rect", { x, y: H - 12 - hOk - hBad, width: bw - 4, height: hBad, class: "bad" }, s("title", {}, `${days[i]}: ${bad} faulted`)),
      // At most about eight labels under the bars.
      i % Math.ceil(days.length / 8) ? null : s("text", { x: x + (bw - 4) / 2, y: H - 1, class: "tick" }, days[i].slice(5)),
      ok + bad && days.length <= 12 ? s("text", { x: x + (bw - 4) / 2, y: H - 14 - hOk - hBad, class: "count" }, ok + bad) : null,
    ].filter(Boolean);
  });
  return s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "chart" }, ...bars);
}

async function overview() {
  const o = await get("/console/api/overview");
  const failed = o.jobsToday.Faulted || 0;
  const ok = o.jobsToday.Successful || 0;
  const rate = ok + failed ? `${Math.round((100 * ok) / (ok + failed))} %` : "–";
  return [
    h("h2", {}, "Overview"),
    h(
      "div",
      { class: "cards" },
      card("robots available", o.robots.Available, "good"),
      card("robots busy", o.robots.Busy),
      card("robots unresponsive", o.robots.Unresponsive, o.robots.Unresponsive ? "warn" : ""),
      card("robots disconnected", o.robots.Disconnected),
      card("jobs pending", o.pending),
      card("jobs running", o.running),
      card("successful today", ok, "good"),
      card("failed today", failed, failed ? "warn" : ""),
      card("success rate today", rate),
    ),
    h("h3", {}, "Runs per process, last seven days"),
    h(
      "div",
      { class: "charts" },
      o.processes.map((p) =>
        h(
          "figure",
          {},
          chart(o.days, p.days),
          h("figcaption", {}, h("a", { href: `#/process/${p.processId}` }, p.name), " ", rateOf(p.days)),
        ),
      ),
    ),
    h("h3", {}, "Queues"),
    queueTable(o.queues),
  ];
}

function rateOf(days) {
  const ok = days.reduce((a, d) => a + d[0], 0);
  const bad = days.reduce((a, d) => a + d[1], 0);
  return ok + bad ? `(${Math.round((100 * ok) / (ok + bad))} % successful)` : "(no runs)";
}

function queueTable(queues) {
  return table(
    [
      ["Queue", (q) => h("a", { href: `#/items/${q.processId}` }, q.name)],
      ["New items", (q) => q.newItems],
      ["Jobs running", (q) => q.running],
    ],
    queues,
    "No queue processes.",
  );
}

async function robots() {
  const list = await get("/admin/robots");
  return [
    h("h2", {}, "Robots"),
    table(
      [
        ["Robot", (r) => r.robotId],
        ["State", (r) => badge(r.state)],
        ["Job", (r) => (r.jobId ? h("a", { href: `#/job/${r.jobId}` }, r.jobId.slice(0, 8)) : "")],
        ["Pool", (r) => r.pool],
        ["Labels", (r) => r.labels.join(", ")],
        ["Attended", (r) => (r.attended ? "yes" : "no")],
        ["Version", (r) => r.version || ""],
        ["License", (r) => (r.license || (r.licensed ? "bound" : "–"))],
        ["Blocked", (r) => r.blocked || ""],
        ["Last heartbeat", (r) => r.lastSeen],
      ],
      list,
      "No robots registered.",
    ),
  ];
}

function jobActions(j) {
  const live = ["Pending", "Running", "Suspended"].includes(j.state);
  const out = [];
  if (live)
    out.push(
      h("button", { type: "button", class: "stop", onclick: () => act("stop", j) }, "Stop"),
    );
  if (["Pending", "Running", "Stopping", "Suspended"].includes(j.state) && may("OperateAllJobs"))
    out.push(h("button", { type: "button", class: "kill", onclick: () => act("kill", j) }, "Kill"));
  return out;
}

async function act(what, j) {
  try {
    if (what === "stop") await post("/rpa/api/stopJob", { jobId: j.jobId });
    if (what === "kill") await post(`/admin/jobs/${j.jobId}/kill`);
    if (what === "retry") {
      const r = await post("/rpa/api/startJob", { processId: j.processId, params: j.arguments || {} });
      toast(`started again as ${r.jobId || ""}`);
      if (r.jobId) location.hash = `#/job/${r.jobId}`;
      return;
    }
    toast(`${what}: ${j.jobId.slice(0, 8)}`);
    if (state.redraw) state.redraw();
  } catch (e) {
    if (!(e instanceof Expired)) toast(e.message, true);
  }
}

const filters = { processId: "", state: "" };

async function jobs() {
  const o = await get("/console/api/overview");
  const q = new URLSearchParams({ limit: "100" });
  if (filters.processId) q.set("processId", filters.processId);
  if (filters.state) q.set("state", filters.state);
  const list = await get(`/console/api/jobs?${q}`);
  const processSelect = (id, value, any) =>
    h(
      "select",
      { id },
      any ? h("option", { value: "" }, "every process") : null,
      o.processes.map((p) => h("option", { value: p.processId, selected: p.processId === value }, p.name)),
    );
  const stateSelect = h(
    "select",
    { id: "filter-state" },
    ["", "Pending", "Running", "Stopping", "Successful", "Faulted", "Stopped", "Canceled", "Suspended"].map((w) =>
      h("option", { value: w, selected: w === filters.state }, w || "every state"),
    ),
  );
  const pf = processSelect("filter-process", filters.processId, true);
  const apply = () => {
    filters.processId = pf.value;
    filters.state = stateSelect.value;
    state.redraw();
  };
  pf.addEventListener("change", apply);
  stateSelect.addEventListener("change", apply);
  const startProcess = processSelect("start-process", "", false);
  const params = h("input", { id: "start-params", placeholder: '{"argument": "value"}', value: "{}" });
  const startForm = h(
    "form",
    {
      class: "inline",
      id: "start-form",
      onsubmit: async (ev) => {
        ev.preventDefault();
        let p;
        try {
          p = JSON.parse(params.value || "{}");
        } catch (_) {
          return toast("The arguments are not JSON.", true);
        }
        try {
          const r = await post("/rpa/api/startJob", { processId: startProcess.value, params: p });
          toast(`job ${r.jobId} started`);
        } catch (e) {
          if (!(e instanceof Expired)) toast(e.message, true);
        }
      },
    },
    h("label", {}, "Start ", startProcess),
    h("label", {}, "with ", params),
    h("button", { type: "submit", id: "start-job" }, "Start job"),
  );
  return [
    h("h2", {}, "Jobs"),
    startForm,
    h("div", { class: "inline" }, h("label", {}, "Process ", pf), h("label", {}, "State ", stateSelect)),
    table(
      [
        ["Job", (j) => h("a", { href: `#/job/${j.jobId}`, class: "job-link" }, j.jobId.slice(0, 8))],
        ["Process", (j) => j.processName],
        ["State", (j) => badge(j.state)],
        ["Robot", (j) => j.robotId || ""],
        ["Started by", (j) => j.userName],
        ["Created", (j) => time(j.createdAt)],
        ["Ended", (j) => time(j.endedAt)],
        ["", (j) => jobActions(j)],
      ],
      list,
      "No jobs in the last 30 days.",
    ),
  ];
}

async function job(id) {
  const j = await get(`/console/api/jobs/${encodeURIComponent(id)}`);
  const ended = !["Pending", "Running", "Stopping", "Suspended"].includes(j.state);
  return [
    h("h2", {}, `Job ${j.jobId}`, " ", badge(j.state)),
    h(
      "dl",
      { class: "facts" },
      [
        ["Process", j.processName],
        ["Robot", j.robotId || "–"],
        ["Attempt", j.attempt],
        ["Started by", j.userName],
        ["Created", time(j.createdAt)],
        ["Began", time(j.startedAt) || "–"],
        ["Ended", time(j.endedAt) || "–"],
        ["Error code", j.errorCode ?? "–"],
        ["Reason", j.reason || "–"],
      ].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    ),
    h(
      "div",
      { class: "inline" },
      jobActions(j),
      ended ? h("button", { type: "button", onclick: () => act("retry", j) }, "Run again") : null,
    ),
    h("h3", {}, "Arguments"),
    h("pre", {}, JSON.stringify(j.arguments, null, 2)),
    h("h3", {}, "Outputs"),
    h("pre", { id: "outputs" }, j.outputs ? JSON.stringify(j.outputs, null, 2) : "–"),
    h("h3", {}, "Steps"),
    table(
      [
        ["#", (x) => x.step],
        ["Name", (x) => x.name || ""],
        ["At", (x) => time(x.at)],
        ["Pause", (x) => (x.pause ? "waits for a person" : "")],
      ],
      j.steps,
      "No steps reported.",
    ),
    h("h3", {}, "Run log"),
    table(
      [
        ["At", (l) => l.logAt],
        ["Level", (l) => badge(l.level)],
        ["Message", (l) => l.content],
        ["Screenshot", (l) => (l.screenshot ? h("a", { href: l.screenshot, target: "_blank" }, h("img", { src: l.screenshot, class: "shot", alt: "screenshot" })) : "")],
      ],
      j.logs,
      "No log lines.",
    ),
    h("h3", {}, "Recordings"),
    table(
      [
        ["Recording", (v) => h("a", { href: v.url }, v.videoId)],
        ["At", (v) => time(v.at)],
      ],
      j.recordings,
      "No recordings.",
    ),
  ];
}

async function queues() {
  const o = await get("/console/api/overview");
  const pick = h("select", { id: "queue-process" }, o.queues.map((q) => h("option", { value: q.processId }, q.name)));
  const content = h("input", { id: "queue-content", value: "{}", placeholder: '{"invoice": "A-1"}' });
  const reference = h("input", { id: "queue-reference", placeholder: "reference (optional)" });
  return [
    h("h2", {}, "Queues"),
    queueTable(o.queues),
    o.queues.length
      ? h(
          "form",
          {
            class: "inline",
            onsubmit: async (ev) => {
              ev.preventDefault();
              try {
                const body = { processId: pick.value, params: JSON.parse(content.value || "{}") };
                if (reference.value) body.reference = reference.value;
                await post("/rpa/api/addQueueItem", body);
                toast("item added");
              } catch (e) {
                if (!(e instanceof Expired)) toast(e.message, true);
              }
            },
          },
          h("label", {}, "Add to ", pick),
          h("label", {}, "content ", content),
          reference,
          h("button", { type: "submit" }, "Add item"),
        )
      : null,
  ];
}

async function processes() {
  const list = await get("/admin/processes");
  return [
    h("h2", {}, "Processes and packages"),
    table(
      [
        ["Name", (p) => h("a", { href: `#/process/${p.processId}` }, p.processName)],
        ["Type", (p) => p.type],
        ["Package version", (p) => h("a", { href: `#/packages/${p.processId}` }, p.version)],
        ["Package", (p) => (p.packageDownloadUri ? "uploaded" : "none")],
        ["Running / max", (p) => `${p.currentRunNum} / ${p.maxRunNum || "∞"}`],
        ["Max per day", (p) => p.maxDayNum || "∞"],
        ["Queue items", (p) => (p.type === "Queue" ? p.pendingItems : "")],
        ["Region", (p) => p.region || ""],
        ["Scenario", (p) => p.scenario || ""],
        ["Domain", (p) => p.businessDomain || ""],
        ["Saves", (p) => (p.savedMinutes ? `${p.savedMinutes} min` : "")],
        ["Created", (p) => p.createTime],
      ],
      list,
      "No processes.",
    ),
  ];
}

async function schedules() {
  const list = await get("/admin/schedules");
  return [
    h("h2", {}, "Schedules"),
    table(
      [
        ["Name", (x) => x.name],
        ["Process", (x) => x.processName],
        ["Enabled", (x) => (x.enabled ? "yes" : "no")],
        ["Rule", (x) => JSON.stringify(x.rule)],
        ["Zone", (x) => x.zone],
        ["Next", (x) => (x.nextFireTimes || []).slice(0, 2).join(", ")],
      ],
      list,
      "No schedules.",
    ),
  ];
}

async function pipelines() {
  const list = await get("/admin/pipelines");
  return [
    h("h2", {}, "Pipelines"),
    table(
      [
        ["Name", (x) => x.name],
        ["Version", (x) => x.version],
        ["Steps", (x) => x.dependsOn.map((d) => (d.after.length ? `${d.step} ← ${d.after.join(", ")}` : d.step)).join("; ")],
        ["Updated", (x) => x.updateTime],
      ],
      list,
      "No pipelines.",
    ),
  ];
}

async function audit() {
  let verified = null;
  let broken = null;
  try {
    verified = (await get("/admin/audit/verify")).verified;
  } catch (e) {
    if (e instanceof Expired) throw e;
    broken = e.message;
  }
  const after = Math.max(0, (verified || 0) - 50);
  const list = (await get(`/admin/audit?after=${after}&limit=50`)).reverse();
  return [
    h("h2", {}, "Audit log"),
    broken
      ? h("p", { class: "error", id: "chain" }, `The chain does not verify: ${broken}`)
      : h("p", { class: "good", id: "chain" }, `The hash chain verifies: ${verified} events.`),
    table(
      [
        ["#", (a) => a.seq],
        ["Time", (a) => a.time],
        ["Who", (a) => a.actor],
        ["Action", (a) => a.action],
        ["Subject", (a) => a.subject],
        ["Detail", (a) => a.detail],
      ],
      list,
      "No events.",
    ),
  ];
}

// A process's page: its runs, and its problems (customer service: a
// ticket of the customer-service workflow per report).
async function processPage(processId) {
  const id = encodeURIComponent(processId);
  const [o, problems] = await Promise.all([get("/console/api/overview"), get(`/console/api/processes/${id}/problems`)]);
  const p = o.processes.find((x) => x.processId === processId);
  if (!p) throw new Error(`process ${processId} not found`);
  const title = h("input", { id: "problem-title", placeholder: `Problem with ${p.name}` });
  const text = h("textarea", { id: "problem-text", rows: 3, placeholder: "What went wrong?" });
  const report = h(
    "form",
    {
      class: "write",
      id: "problem-form",
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          const t = await post(`/console/api/processes/${id}/problems`, { title: title.value, problem: text.value });
          toast(`reported: ${t.sn}, now with ${t.participant}`);
          state.redraw();
        } catch (e) {
          if (!(e instanceof Expired)) toast(e.message, true);
        }
      },
    },
    title,
    text,
    h("button", { type: "submit", id: "problem-report" }, "Report a problem"),
  );
  const actions = (t) => {
    if (!t.offers.length) return "";
    const answer = t.state === "Handling" ? h("input", { class: "answer", placeholder: "resolution" }) : null;
    return h(
      "div",
      { class: "inline" },
      answer,
      t.offers.map((offer) =>
        h(
          "button",
          {
            type: "button",
            class: "offer",
            onclick: async () => {
              try {
                const fields = answer && answer.value ? { resolution: answer.value } : {};
                const after = await post(`/console/api/tickets/${t.id}/handle`, { transitionId: offer.transitionId, fields });
                toast(`${t.sn}: ${offer.name}, now ${after.state}`);
                state.redraw();
              } catch (e) {
                if (!(e instanceof Expired)) toast(e.message, true);
              }
            },
          },
          offer.name,
        ),
      ),
    );
  };
  return [
    h("h2", {}, p.name),
    h("figure", {}, chart(o.days, p.days), h("figcaption", {}, "runs, last seven days ", rateOf(p.days))),
    may("ManageProcesses") ? h("p", {}, h("a", { href: `#/packages/${id}` }, "Package versions")) : null,
    h("h3", {}, "Problems"),
    table(
      [
        ["Ticket", (t) => t.sn],
        ["Title", (t) => t.title],
        ["State", (t) => badge(t.state)],
        ["With", (t) => (t.isEnd ? "" : t.participant)],
        ["Reported by", (t) => t.creator],
        ["Problem", (t) => t.problem],
        ["Resolution", (t) => t.resolution || ""],
        ["Reported", (t) => time(t.createdAt)],
        ["", actions],
      ],
      problems,
      "No problem reported.",
    ),
    h("h3", {}, "Report a problem"),
    report,
  ];
}

async function packages(processId) {
  const list = await get(`/admin/processes/${encodeURIComponent(processId)}/packages`);
  const pin = async (version) => {
    try {
      await post(`/admin/processes/${encodeURIComponent(processId)}/package/pin`, { version });
      toast(version ? `runs ${version} from now on` : "follows the latest version");
      state.redraw();
    } catch (e) {
      if (!(e instanceof Expired)) toast(e.message, true);
    }
  };
  return [
    h("h2", {}, "Package versions"),
    h("div", { class: "inline" }, h("button", { type: "button", onclick: () => pin(null) }, "Follow the latest")),
    table(
      [
        ["Version", (v) => v.version],
        ["Runs now", (v) => (v.current ? badge("Running") : "")],
        ["SHA-256", (v) => v.sha256.slice(0, 16) + "…"],
        ["Size", (v) => v.size],
        ["Uploaded", (v) => `${v.uploadTime} by ${v.uploadedBy}`],
        ["", (v) => (v.current ? "" : h("button", { type: "button", onclick: () => pin(v.version) }, "Run this version"))],
      ],
      list,
      "No package uploaded.",
    ),
  ];
}

async function items(processId) {
  const list = await get(`/console/api/queues/${encodeURIComponent(processId)}/items`);
  return [
    h("h2", {}, "Queue items"),
    table(
      [
        ["Item", (i) => i.itemId.slice(0, 8)],
        ["State", (i) => badge(i.state)],
        ["Reference", (i) => i.reference || ""],
        ["Priority", (i) => i.priority],
        ["Retries", (i) => i.retryCount],
        ["Job", (i) => (i.jobId ? h("a", { href: `#/job/${i.jobId}` }, i.jobId.slice(0, 8)) : "")],
        ["Progress", (i) => i.progress || ""],
        ["Content", (i) => JSON.stringify(i.content)],
        ["Created", (i) => time(i.createdAt)],
      ],
      list,
      "No items.",
    ),
  ];
}

async function tickets() {
  const list = await get("/console/api/tickets");
  return [
    h("h2", {}, "Workflow tickets"),
    table(
      [
        ["#", (t) => t.id],
        ["Serial", (t) => t.sn],
        ["Title", (t) => t.title],
        ["Workflow", (t) => t.workflow],
        ["State", (t) => (t.isEnd ? badge(t.isRejected ? "Rejected" : "Ended") : t.state)],
        ["Waiting for", (t) => (t.isEnd ? "" : t.participant)],
        ["Robot job", (t) => (t.jobId ? h("a", { href: `#/job/${t.jobId}` }, t.jobId.slice(0, 8)) : "")],
        ["Created by", (t) => t.creator],
        ["Created", (t) => time(t.createdAt)],
      ],
      list,
      "No tickets.",
    ),
  ];
}

async function catalogue() {
  const words = h("input", { id: "catalogue-q", placeholder: "words", value: catalogueQuery });
  const list = await get(`/admin/catalogue?q=${encodeURIComponent(catalogueQuery)}`);
  return [
    h("h2", {}, "Catalogue"),
    h(
      "form",
      {
        class: "inline",
        onsubmit: (ev) => {
          ev.preventDefault();
          catalogueQuery = words.value;
          state.redraw();
        },
      },
      words,
      h("button", { type: "submit" }, "Search"),
    ),
    table(
      [
        ["Name", (l) => l.name],
        ["Version", (l) => l.version],
        ["Tags", (l) => l.tags.join(", ")],
        ["Description", (l) => l.description],
        ["Published", (l) => `${l.publishTime} by ${l.publishedBy}`],
        [
          "",
          (l) =>
            may("ManageProcesses")
              ? h("button", { type: "button", onclick: () => subscribeTo(l) }, "Subscribe")
              : "",
        ],
      ],
      list,
      "Nothing published matches.",
    ),
  ];
}

let catalogueQuery = "";

async function designers() {
  const list = await get("/admin/designers");
  const me = state.me.name;
  const act = (path, done) => async () => {
    try {
      const d = await post(path);
      toast(done(d));
      state.redraw();
    } catch (e) {
      if (!(e instanceof Expired)) toast(e.message, true);
    }
  };
  const held = list.find((d) => d.holder === me);
  return [
    h("h2", {}, "Designers"),
    h(
      "div",
      { class: "inline" },
      held
        ? h("span", {}, "You hold ", h("b", {}, held.designerId), held.host ? ` (${held.host})` : "")
        : h(
            "button",
            { type: "button", id: "designer-get", onclick: act("/admin/designers/allocate", (d) => `you hold ${d.designerId}`) },
            "Get a designer",
          ),
    ),
    table(
      [
        ["Designer", (d) => d.designerId],
        ["Vendor", (d) => d.vendor],
        ["Version", (d) => d.version || ""],
        ["Where", (d) => d.host || ""],
        ["State", (d) => badge(d.state)],
        ["Held by", (d) => d.holder || ""],
        ["Since", (d) => d.allocatedTime || ""],
        ["Last heartbeat", (d) => d.lastHeartbeat],
        [
          "",
          (d) =>
            d.holder && (d.holder === me || may("ManageRobots"))
              ? h(
                  "button",
                  {
                    type: "button",
                    class: "stop",
                    onclick: act(`/admin/designers/${encodeURIComponent(d.designerId)}/release`, (x) => `${x.designerId} released`),
                  },
                  d.holder === me ? "Release" : "Take back",
                )
              : "",
        ],
      ],
      list,
      "No designer has registered.",
    ),
  ];
}

// Horizontal bars: [label, value] pairs.
function bars(pairs, cls) {
  const max = Math.max(1, ...pairs.map(([, v]) => v));
  return h(
    "div",
    { class: "bars" },
    pairs.map(([label, v]) => {
      const bar = h("span", { class: `bar ${cls || ""}` });
      // Through the CSSOM: the policy allows no style attribute.
      bar.style.width = `${Math.max(2, (100 * v) / max)}%`;
      return h("div", { class: "bar-row" }, h("span", { class: "bar-label" }, label), h("span", { class: "bar-track" }, bar), h("span", { class: "bar-value" }, v));
    }),
  );
}

async function screen() {
  const o = await get("/console/api/screen");
  const total = (c) => Object.values(c).reduce((a, b) => a + b, 0);
  const panel = (title, big, ...body) =>
    h("section", { class: "panel" }, h("h3", {}, title), big === null ? null : h("div", { class: "big-number" }, big), ...body);
  return h(
    "div",
    { class: "screen" },
    h("header", { class: "screen-head" }, h("h2", {}, "Operations"), h("a", { href: "#/overview" }, "leave the big screen")),
    h(
      "div",
      { class: "panels" },
      panel("Applications", total(o.applications), bars(Object.entries(o.applications)), h("p", {}, `${o.published} published in the catalogue`)),
      panel("Subscriptions", o.subscriptions, o.topSubscribed.length ? bars(o.topSubscribed) : h("p", {}, "none yet"), h("h4", {}, "Hottest"), bars(o.hot)),
      panel(
        "Runs today",
        `${o.runsToday.Successful || 0} ✓  ${o.runsToday.Faulted || 0} ✗`,
        chart(o.days, o.runDays),
        h("p", {}, `running ${o.runsToday.Running || 0}, pending ${o.runsToday.Pending || 0}`),
      ),
      panel("Demands", o.demands.reduce((a, [, open]) => a + open, 0), bars(o.demands.map(([w, open]) => [w, open]), "warn"), h("p", {}, "open tickets by workflow")),
      panel("Executors", total(o.executors), bars(Object.entries(o.executors))),
      panel("Designers", total(o.designers), bars(Object.entries(o.designers))),
    ),
  );
}
let knowledgeQuery = "";

async function content() {
  const q = knowledgeQuery ? `&q=${encodeURIComponent(knowledgeQuery)}` : "";
  const [news, courses, knowledge, hot] = await Promise.all([
    get("/admin/content?section=news&limit=5"),
    get("/admin/content?section=course&limit=20"),
    get(`/admin/content?section=knowledge&limit=50${q}`),
    get("/admin/content/hot?limit=8"),
  ]);
  const manage = may("ManageContent");
  const remove = (a) =>
    manage
      ? h(
          "button",
          {
            type: "button",
            class: "stop",
            onclick: async () => {
              try {
                await api("DELETE", `/admin/content/${a.id}`);
                toast(`removed: ${a.title}`);
                state.redraw();
              } catch (e) {
                if (!(e instanceof Expired)) toast(e.message, true);
              }
            },
          },
          "Remove",
        )
      : null;
  const article = (a) =>
    h(
      "article",
      { class: "article", id: `article-${a.id}` },
      h("h4", {}, a.link ? h("a", { href: a.link, rel: "noopener", target: "_blank" }, a.title) : a.title, " ", remove(a)),
      h("div", { class: "meta" }, `${a.createTime} · ${a.author}`, a.tags.length ? ` · ${a.tags.join(", ")}` : ""),
      a.body ? h("p", { class: "body" }, a.body) : null,
    );
  const words = h("input", { id: "knowledge-q", placeholder: "words to find", value: knowledgeQuery });
  const search = h(
    "form",
    {
      class: "inline",
      id: "knowledge-search",
      onsubmit: (ev) => {
        ev.preventDefault();
        knowledgeQuery = words.value.trim();
        state.redraw();
      },
    },
    words,
    h("button", { type: "submit" }, "Search the knowledge base"),
  );
  const write = () => {
    const section = h(
      "select",
      { id: "article-section" },
      ["news", "course", "knowledge"].map((s) => h("option", { value: s }, s)),
    );
    const title = h("input", { id: "article-title", placeholder: "title" });
    const tags = h("input", { id: "article-tags", placeholder: "tags, comma separated" });
    const link = h("input", { id: "article-link", placeholder: "https:// (optional)" });
    const body = h("textarea", { id: "article-body", rows: 4, placeholder: "text" });
    return h(
      "form",
      {
        class: "write",
        id: "article-form",
        onsubmit: async (ev) => {
          ev.preventDefault();
          try {
            const a = await post("/admin/content", {
              section: section.value,
              title: title.value,
              body: body.value,
              tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean),
              link: link.value.trim() || null,
            });
            toast(`published: ${a.title}`);
            state.redraw();
          } catch (e) {
            if (!(e instanceof Expired)) toast(e.message, true);
          }
        },
      },
      h("div", { class: "inline" }, section, title, tags, link),
      body,
      h("button", { type: "submit", id: "article-publish" }, "Publish"),
    );
  };
  return [
    h("h2", {}, "Content"),
    h(
      "div",
      { class: "columns" },
      h(
        "section",
        {},
        h("h3", {}, "News"),
        news.length ? news.map(article) : h("p", { class: "empty" }, "No news."),
        h("h3", {}, "Hot applications"),
        table(
          [
            ["Application", (a) => a.name],
            ["Runs (30 days)", (a) => a.runs],
            ["Successful", (a) => a.successful],
            ["Subscriptions", (a) => a.subscriptions],
          ],
          hot,
          "No runs nor subscriptions yet.",
        ),
        h("h3", {}, "Courses"),
        courses.length ? courses.map(article) : h("p", { class: "empty" }, "No courses."),
      ),
      h(
        "section",
        {},
        h("h3", {}, knowledgeQuery ? `Knowledge base: “${knowledgeQuery}”` : "Knowledge base"),
        search,
        knowledge.length
          ? knowledge.map(article)
          : h("p", { class: "empty" }, knowledgeQuery ? "Nothing matches every word." : "The knowledge base is empty."),
      ),
    ),
    manage ? h("h3", {}, "Write") : null,
    manage ? write() : null,
  ];
}
const analysisView = { by: "process", period: "day", from: "", to: "" };

// Every day or month of a report's range (a chart shows the empty ones
// too); weeks and the whole range: those with runs.
function periodsOf(r, period) {
  const seen = [...new Set(r.buckets.map((b) => b.period))];
  const from = new Date(`${r.from}T00:00:00Z`), to = new Date(`${r.to}T00:00:00Z`);
  const out = [];
  if (period === "day" && to - from <= 92 * 86400e3) {
    for (let d = from; d <= to; d = new Date(d.getTime() + 86400e3)) out.push(d.toISOString().slice(0, 10));
  } else if (period === "month") {
    for (let d = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), 1)); d <= to; d = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)))
      out.push(d.toISOString().slice(0, 7));
  } else return seen.sort();
  return [...new Set([...out, ...seen])].sort();
}

async function analysis() {
  const q = new URLSearchParams({ by: analysisView.by, period: analysisView.period });
  if (analysisView.from) q.set("from", analysisView.from);
  if (analysisView.to) q.set("to", analysisView.to);
  const r = await get(`/admin/analysis/runs?${q}`);
  analysisView.from = r.from;
  analysisView.to = r.to;
  const select = (id, key, words) =>
    h(
      "select",
      { id, onchange: (ev) => ((analysisView[key] = ev.target.value), state.redraw()) },
      words.map(([w, label]) => h("option", { value: w, selected: w === analysisView[key] }, label)),
    );
  const day = (id, key) =>
    h("input", {
      id,
      type: "date",
      value: analysisView[key],
      onchange: (ev) => ((analysisView[key] = ev.target.value), state.redraw()),
    });
  // One chart per value: its periods' successful and failed runs.
  const values = [...new Set(r.buckets.map((b) => b.value))];
  const periods = periodsOf(r, analysisView.period);
  const charts = values.map((v) => {
    const of = new Map(r.buckets.filter((b) => b.value === v).map((b) => [b.period, b]));
    const series = periods.map((p) => [of.get(p)?.successful || 0, (of.get(p)?.faulted || 0) + (of.get(p)?.stopped || 0)]);
    const all = [...of.values()];
    const ok = all.reduce((a, b) => a + b.successful, 0);
    const saved = all.reduce((a, b) => a + b.savedHours, 0);
    return h(
      "figure",
      { class: "analysis-chart" },
      chart(periods, series),
      h("figcaption", {}, h("b", {}, v), ` ${ok} successful, ${saved.toFixed(1)} h saved`),
    );
  });
  const pct = (x) => (x == null ? "–" : `${Math.round(100 * x)} %`);
  return [
    h("h2", {}, "Run analysis"),
    h(
      "div",
      { class: "inline" },
      h(
        "label",
        {},
        "By ",
        select("analysis-by", "by", [
          ["process", "process"],
          ["region", "region"],
          ["scenario", "scenario"],
          ["businessDomain", "business domain"],
        ]),
      ),
      h(
        "label",
        {},
        "per ",
        select("analysis-period", "period", [
          ["day", "day"],
          ["week", "week"],
          ["month", "month"],
          ["all", "whole range"],
        ]),
      ),
      h("label", {}, "from ", day("analysis-from", "from")),
      h("label", {}, "to ", day("analysis-to", "to")),
    ),
    r.buckets.length ? h("div", { class: "charts" }, charts) : h("p", { class: "empty" }, "No runs ended in these days."),
    h("h3", {}, "Figures"),
    table(
      [
        ["Period", (b) => b.period],
        [analysisView.by === "businessDomain" ? "Business domain" : analysisView.by[0].toUpperCase() + analysisView.by.slice(1), (b) => b.value],
        ["Runs", (b) => b.runs],
        ["Successful", (b) => b.successful],
        ["Faulted", (b) => b.faulted],
        ["Stopped", (b) => b.stopped],
        ["Canceled", (b) => b.canceled],
        ["Success rate", (b) => pct(b.successRate)],
        ["Average", (b) => (b.averageDurationMs == null ? "–" : `${(b.averageDurationMs / 1000).toFixed(1)} s`)],
        ["Run hours", (b) => b.runHours.toFixed(1)],
        ["Saved hours", (b) => b.savedHours.toFixed(1)],
      ],
      r.buckets,
      "No runs.",
    ),
  ];
}

async function subscribeTo(l) {
  try {
    const p = await post(`/admin/catalogue/${l.listingId}/subscribe`, { name: `${l.name} (${state.me.name})` });
    toast(`subscribed: process ${p.processName}`);
  } catch (e) {
    if (!(e instanceof Expired)) toast(e.message, true);
  }
}

async function children() {
  const list = await get("/admin/children");
  return [
    h("h2", {}, "Children"),
    list.length
      ? null
      : h("p", { class: "empty" }, "No child server has reported to this one (configuration: children)."),
    list.map((c) => [
      h("h3", {}, `${c.child}: ${c.results} runs reported, the last at ${c.lastReport || "–"}`),
      table(
        [
          ["Day", (f) => f.day],
          ["Process", (f) => f.process],
          ["Successful", (f) => f.successful],
          ["Faulted", (f) => f.faulted],
          ["Stopped", (f) => f.stopped],
          ["Canceled", (f) => f.canceled],
          ["Average", (f) => (f.averageMs == null ? "–" : `${(f.averageMs / 1000).toFixed(1)} s`)],
        ],
        c.figures,
        "No runs.",
      ),
    ]),
  ];
}

// ------------------------------------------------------------------ start

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", signIn);
  $("logout").addEventListener("click", async () => {
    await post("/rpa/api/logout").catch(() => {});
    signOut("");
  });
  // Back from single sign-on: the page carries the session token (or why
  // not); it moves to the tab's storage and the address is the console's.
  const sso = document.querySelector('meta[name="rpa-sso"]');
  const ssoError = document.querySelector('meta[name="rpa-sso-error"]');
  if (sso || ssoError) history.replaceState(null, "", "/");
  if (sso) {
    sessionStorage.setItem(TOKEN, sso.content);
    sso.remove();
  }
  fetch("/console/api/sso")
    .then((r) => r.json())
    .then((env) => {
      if (env.result && env.result.enabled) {
        $("sso").textContent = env.result.label;
        $("sso").hidden = false;
      }
    })
    .catch(() => {});
  if (sessionStorage.getItem(TOKEN)) start();
  else signOut(ssoError ? ssoError.content : "");
});

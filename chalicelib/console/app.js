/* Tessera's console: one page, no framework. It calls only the documented API (docs/openapi.yaml) with
   the signed-in credential, which lives in this closure's memory: never in the browser's storage or a
   cookie, so a reload signs out and no other script or page can read it. Every figure it shows is the
   API's own string for the same period (money as the API's six-decimal dollars), never recomputed. */
"use strict";
(function () {
  const session = { token: null, kind: null, me: null };
  const charts = {};
  window.tesseraCharts = charts; // the browser tests read a chart's data from here

  const $ = (id) => document.getElementById(id);

  // el("tag", {attr: value, text: "..."}, children...): text is set as text, never parsed as HTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  class ApiError extends Error {
    constructor(status, error) {
      super(error.message || `HTTP ${status}`);
      this.status = status;
      this.code = error.code;
    }
  }

  // Paths are relative, so the console works wherever the API is mounted (locally at /, deployed at /<stage>/).
  async function api(method, path, body) {
    const headers = {};
    if (session.token) headers.Authorization = `Bearer ${session.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", cache: "no-store",
    });
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (ignored) { data = null; }
    if (!response.ok) {
      if (response.status === 401 && session.token) signOut("Your session has ended; sign in again.");
      throw new ApiError(response.status, (data && data.error) || { code: `http_${response.status}` });
    }
    return data;
  }

  function say(message, isError) {
    const status = $("status");
    status.textContent = message || "";
    status.className = isError ? "status error" : "status";
  }

  function confirmAction(question) {
    const dialog = $("confirm");
    $("confirm-text").textContent = question;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.returnValue = "cancel";
      dialog.showModal();
      $("confirm-ok").focus();
    });
  }

  // Run a write from a form or button: report its outcome, then redraw the page.
  async function act(work, done) {
    try {
      await work();
      say(done);
      await route();
    } catch (error) {
      say(`${error.message}${error.code ? ` (${error.code})` : ""}`, true);
    }
  }

  const usd = (value) => (value === null || value === undefined ? "none" : `$${value}`);
  const count = (value) => Number(value).toLocaleString("en-US");
  // Exact micro-dollars from the API's six-decimal string (for sums drawn on a chart).
  const micros = (value) => {
    const [whole, fraction = ""] = String(value).split(".");
    return BigInt(whole) * 1000000n + BigInt((fraction + "000000").slice(0, 6));
  };

  function figure(label, value, id) {
    return el("div", { class: "figure" }, el("span", { text: label }), el("strong", { text: value, id }));
  }

  function table(caption, columns, rows, id) {
    return el("table", { id },
      el("caption", { class: "visually-hidden", text: caption }),
      el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", class: c.num ? "num" : null },
        c.sort ? c.sort : c.label)))),
      el("tbody", {}, rows.length ? rows.map((row) => el("tr", {}, columns.map((c, i) =>
        el("td", { class: c.num ? "num" : null }, row[i])))) :
        el("tr", {}, el("td", { colspan: columns.length, text: "Nothing yet." }))));
  }

  function totalsTable(caption, firstColumn, entries, id) {
    return table(caption, [{ label: firstColumn }, { label: "Requests", num: 1 }, { label: "Input tokens", num: 1 },
      { label: "Output tokens", num: 1 }, { label: "Cost", num: 1 }],
    entries.map(([name, t]) => [name, count(t.requests), count(t.input_tokens), count(t.output_tokens),
      usd(t.cost_usd)]), id);
  }

  function card(title, ...content) {
    return el("section", { class: "card", "aria-label": title }, el("h2", { text: title }), ...content);
  }

  function chart(id, title, options, data) {
    const holder = el("div", { class: "chart", id, role: "img", "aria-label": title });
    requestAnimationFrame(() => {
      if (charts[id]) charts[id].destroy();
      const width = Math.max(300, holder.clientWidth || 600);
      charts[id] = new window.uPlot({ width, height: 240, ...options }, data, holder);
    });
    return holder;
  }

  const day = (iso) => Date.parse(`${iso}T00:00:00Z`) / 1000;

  // --- tenant pages ------------------------------------------------------------------------------

  function thisMonth() {
    const now = new Date();
    return `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, "0")}`;
  }

  async function usagePage(params) {
    const period = params.get("period") || thisMonth();
    const canListKeys = session.me.role !== "member";
    const [month, daily, keys] = await Promise.all([
      api("GET", `usage?period=${encodeURIComponent(period)}`), api("GET", "usage/daily?days=90"),
      canListKeys ? api("GET", "api-keys") : Promise.resolve({ api_keys: [] })]);
    const names = Object.fromEntries(keys.api_keys.map((k) => [k.key_id, k.name]));
    const budget = month.budget;
    const periodForm = el("form", { class: "row", onsubmit: (event) => {
      event.preventDefault();
      location.hash = `#/usage?period=${$("usage-period").value}`;
    } }, el("div", {}, el("label", { for: "usage-period", text: "Month" }),
      el("input", { id: "usage-period", type: "month", value: period, required: true })),
    el("button", { type: "submit", text: "Show month" }));
    return [
      el("h1", { text: `Usage, ${month.period}` }), periodForm,
      el("div", { class: "figures" },
        figure("Spend", usd(month.total_cost_usd), "usage-spend"),
        figure("Requests", count(month.requests), "usage-requests"),
        figure("Input tokens", count(month.input_tokens)), figure("Output tokens", count(month.output_tokens)),
        figure("Failed", count(month.failed_requests)), figure("Refused", count(month.refusals.total), "usage-refused"),
        figure("Budget", usd(budget.monthly_budget_usd)), figure("Forecast at month end", usd(budget.forecast_usd),
          "usage-forecast")),
      card("Last 90 days", dailyChart(daily), el("details", {}, el("summary", { text: "The 90 days as a table" }),
        totalsTable("Usage by day", "Day", daily.days.filter((d) => d.requests).map((d) => [d.day, d]),
          "daily-table"))),
      card("Budget burn-down", burnDown(month), budgetTable(budget)),
      el("div", { class: "grid" },
        card("By feature", totalsTable("Usage by feature", "Feature", Object.entries(month.by_feature), "by-feature")),
        card("By model", totalsTable("Usage by model", "Model", Object.entries(month.by_model), "by-model")),
        card("By API key or user", totalsTable("Usage by API key or user", "Key or user",
          Object.entries(month.by_principal).map(([id, t]) => [names[id] ? `${names[id]} (${id})` : id, t]),
          "by-key")),
        card("By key source", table("Usage by key source", [{ label: "Key" }, { label: "Requests", num: 1 },
          { label: "Cost", num: 1 }], [["Platform", count(month.by_key_source.platform.requests),
          usd(month.by_key_source.platform.cost_usd)], ["Your own key", count(month.by_key_source.tenant.requests),
          usd(month.by_key_source.tenant.cost_usd)]], "by-key-source")),
        card("Refusals by reason", table("Refusals by reason", [{ label: "Reason" }, { label: "Refused", num: 1 }],
          Object.entries(month.refusals.by_reason).map(([reason, n]) => [reason.replaceAll("_", " "), count(n)]),
          "refusals"))),
    ];
  }

  function dailyChart(daily) {
    const xs = daily.days.map((d) => day(d.day));
    const cost = daily.days.map((d) => Number(micros(d.cost_usd)) / 1e6);
    const requests = daily.days.map((d) => d.requests);
    return chart("daily-chart", "Spend and requests by day, last 90 days", {
      scales: { x: { time: true }, usd: {}, n: {} },
      axes: [{}, { scale: "usd", label: "USD" }, { scale: "n", side: 1, label: "requests", grid: { show: false } }],
      series: [{}, { label: "Spend (USD)", scale: "usd", stroke: "#2457c5", fill: "rgba(36,87,197,.15)",
        paths: window.uPlot.paths.bars({ size: [0.7, 40] }), value: (u, v) => (v === null ? "" : `$${v.toFixed(6)}`) },
      { label: "Requests", scale: "n", stroke: "#e8590c", width: 2 }],
    }, [xs, cost, requests]);
  }

  // Spend so far, day by day; the forecast from today to the month's end; the budget and its thresholds.
  function burnDown(month) {
    const days = month.by_day;
    const today = new Date().toISOString().slice(0, 10);
    const xs = days.map((d) => day(d.day));
    let sum = 0n;
    const spent = days.map((d) => {
      sum += micros(d.cost_usd);
      return d.day <= today ? Number(sum) / 1e6 : null;
    });
    const lastSpent = days.reduce((at, d, i) => (d.day <= today ? i : at), -1);
    const forecast = days.map((d, i) => {
      if (lastSpent < 0 || i < lastSpent) return null;
      const from = spent[lastSpent];
      const to = Number(micros(month.budget.forecast_usd)) / 1e6;
      return from + ((to - from) * (i - lastSpent)) / Math.max(1, days.length - 1 - lastSpent);
    });
    const series = [{}, { label: "Spent (USD)", stroke: "#2457c5", width: 2 },
      { label: "Forecast (USD)", stroke: "#2457c5", dash: [6, 6] }];
    const data = [xs, spent, forecast];
    if (month.budget.monthly_budget_usd !== null) {
      const budget = Number(micros(month.budget.monthly_budget_usd)) / 1e6;
      for (const threshold of month.budget.alert_thresholds) {
        series.push({ label: `${threshold}% of budget`, stroke: threshold >= 100 ? "#b42318" : "#e8590c", dash: [2, 4] });
        data.push(days.map(() => (budget * threshold) / 100));
      }
    }
    return chart("burn-chart", "Budget burn-down with forecast and alert thresholds", {
      scales: { x: { time: true } }, series,
    }, data);
  }

  function budgetTable(budget) {
    return table("Budget", [{ label: "Budget" }, { label: "Value", num: 1 }], [
      ["Monthly budget", usd(budget.monthly_budget_usd)], ["Spent", usd(budget.spent_usd)],
      ["Reserved by calls in flight", usd(budget.reserved_usd)], ["Remaining", usd(budget.remaining_usd)],
      ["Forecast at month end", usd(budget.forecast_usd)],
      ["Alert thresholds", budget.alert_thresholds.map((t) => `${t}%`).join(", ") || "none"],
      ["Alerts sent", budget.alerts_sent.map((t) => `${t}%`).join(", ") || "none"],
      ["Hard limit", budget.hard_limit ? "yes: calls that could pass it are refused" : "no"],
      ["Resets at", budget.resets_at]], "budget-table");
  }

  let freshSecret = null; // shown once, right after creation, then forgotten

  async function keysPage() {
    const { api_keys: keys } = await api("GET", "api-keys");
    const secret = freshSecret;
    freshSecret = null;
    const create = el("form", { class: "row", onsubmit: (event) => {
      event.preventDefault();
      const name = $("key-name").value;
      act(async () => { freshSecret = await api("POST", "api-keys", { name }); }, `Key ${name} created.`);
    } }, el("div", {}, el("label", { for: "key-name", text: "New key's name" }),
      el("input", { id: "key-name", required: true, maxlength: 100 })),
    el("button", { type: "submit", text: "Create key" }));
    return [el("h1", { text: "API keys" }),
      secret ? card("New key", el("p", { text: "Copy this key now: it is not shown again." }),
        el("p", { class: "secret", id: "new-key-secret", tabindex: "0", "aria-label": "The new key's secret",
          text: secret.key })) : null,
      card("Create a key", create),
      card("Keys", table("API keys", [{ label: "Name" }, { label: "Key id" }, { label: "Ends in" },
        { label: "Created" }, { label: "Revoked" }, { label: "Action" }], keys.map((k) => [k.name, k.key_id,
        `…${k.last4}`, k.created_at, k.revoked_at || "no", k.revoked_at ? "" : el("button", {
          type: "button", class: "danger", "aria-label": `Revoke key ${k.name}`, text: "Revoke",
          onclick: async () => {
            if (await confirmAction(`Revoke the key ${k.name}? Calls made with it are refused from now on.`)) {
              act(() => api("DELETE", `api-keys/${encodeURIComponent(k.key_id)}`), `Key ${k.name} revoked.`);
            }
          } })]), "keys-table"))];
  }

  const ROLES = ["member", "admin", "owner"];

  function roleSelect(id, label, selected) {
    return [el("label", { for: id, text: label }), el("select", { id }, ROLES.map((r) =>
      el("option", { value: r, selected: r === selected, text: r })))];
  }

  async function usersPage() {
    const { users } = await api("GET", "users");
    const add = el("form", { onsubmit: (event) => {
      event.preventDefault();
      const body = { email: $("user-email").value, password: $("user-password").value, role: $("user-role").value };
      act(() => api("POST", "users", body), `${body.email} added.`);
    } }, el("label", { for: "user-email", text: "Email" }), el("input", { id: "user-email", type: "email", required: true }),
    el("label", { for: "user-password", text: "Password (12 characters or more)" }),
    el("input", { id: "user-password", type: "password", required: true, autocomplete: "new-password" }),
    ...roleSelect("user-role", "Role", "member"), el("button", { type: "submit", text: "Add user" }));
    return [el("h1", { text: "Users and roles" }), card("Add a user", add),
      card("Users", table("Users", [{ label: "Email" }, { label: "Role" }, { label: "Since" }, { label: "Actions" }],
        users.map((u) => {
          const id = `role-${u.user_id}`;
          return [u.email, el("div", {}, ...roleSelect(id, `Role of ${u.email}`, u.role)), u.created_at,
            el("div", {}, el("button", { type: "button", class: "plain", text: "Save role",
              "aria-label": `Save the role of ${u.email}`, onclick: async () => {
                const role = $(id).value;
                if (await confirmAction(`Make ${u.email} ${role}?`)) {
                  act(() => api("PATCH", `users/${encodeURIComponent(u.user_id)}`, { role }), `${u.email} is ${role}.`);
                }
              } }),
            " ",
            el("button", { type: "button", class: "danger", text: "Remove", "aria-label": `Remove ${u.email}`,
              onclick: async () => {
                if (await confirmAction(`Remove ${u.email} from this workspace?`)) {
                  act(() => api("DELETE", `users/${encodeURIComponent(u.user_id)}`), `${u.email} removed.`);
                }
              } }))];
        }), "users-table"))];
  }

  async function settingsPage() {
    const [config, models] = await Promise.all([api("GET", "tenant/ai-config"), api("GET", "models")]);
    const form = el("form", { onsubmit: (event) => {
      event.preventDefault();
      const body = { model: $("ai-model").value, max_tokens: Number($("ai-max-tokens").value),
        custom_instructions: $("ai-instructions").value };
      act(() => api("PUT", "tenant/ai-config", body), "AI settings saved.");
    } }, el("label", { for: "ai-model", text: "Model" }),
    el("select", { id: "ai-model" }, models.models.map((m) => el("option", { value: m.id, selected: m.id === config.model,
      text: `${m.display_name} (${m.id}): $${m.prices_usd_per_million_tokens.input} in / $${m.prices_usd_per_million_tokens.output} out per million tokens` }))),
    el("label", { for: "ai-max-tokens", text: "Max tokens per answer" }),
    el("input", { id: "ai-max-tokens", type: "number", min: 1, required: true, value: config.max_tokens }),
    el("label", { for: "ai-instructions", text: "Instructions for every call" }),
    el("textarea", { id: "ai-instructions", maxlength: 4000 }, config.custom_instructions),
    el("button", { type: "submit", text: "Save AI settings" }));
    const ownKey = el("form", { onsubmit: (event) => {
      event.preventDefault();
      const key = $("own-key").value;
      $("own-key").value = "";
      act(() => api("PUT", "tenant/ai-config/api-key", { api_key: key }), "Your Anthropic key is set.");
    } }, el("p", { id: "own-key-state", text: config.api_key.set ? "A key of your own is set; it is never shown."
      : "No key of your own: calls use the platform's." }),
    el("label", { for: "own-key", text: "Your Anthropic API key (owner only)" }),
    el("input", { id: "own-key", type: "password", autocomplete: "off", required: true }),
    el("button", { type: "submit", text: "Set key" }),
    config.api_key.set ? el("button", { type: "button", class: "danger", text: "Remove key", onclick: async () => {
      if (await confirmAction("Remove your own Anthropic key? Calls go back to the platform's key.")) {
        act(() => api("DELETE", "tenant/ai-config/api-key"), "Your key is removed.");
      }
    } }) : null);
    return [el("h1", { text: "AI settings" }), card("Model and instructions", form), card("Your own key", ownKey)];
  }

  async function promptsPage() {
    let prompts;
    try {
      prompts = (await api("GET", "prompts")).prompts;
    } catch (error) {
      if (error.code !== "feature_not_in_plan") throw error;
      return [el("h1", { text: "Prompts" }), card("Not in your plan", el("p", { text: error.message }))];
    }
    const create = el("form", { onsubmit: (event) => {
      event.preventDefault();
      const body = { name: $("prompt-name").value, template: $("prompt-template").value };
      act(() => api("POST", "prompts", body), `Prompt ${body.name} saved.`);
    } }, el("label", { for: "prompt-name", text: "Name" }), el("input", { id: "prompt-name", required: true, maxlength: 100 }),
    el("label", { for: "prompt-template", text: "Template ({{variable}} placeholders)" }),
    el("textarea", { id: "prompt-template", required: true }), el("button", { type: "submit", text: "Save prompt" }));
    return [el("h1", { text: "Prompts" }), card("New prompt", create),
      card("Prompts", table("Prompts", [{ label: "Name" }, { label: "Variables" }, { label: "Updated" },
        { label: "Action" }], prompts.map((p) => [p.name, p.variables.join(", ") || "none", p.updated_at,
        el("button", { type: "button", class: "danger", text: "Delete", "aria-label": `Delete prompt ${p.name}`,
          onclick: async () => {
            if (await confirmAction(`Delete the prompt ${p.name}?`)) {
              act(() => api("DELETE", `prompts/${encodeURIComponent(p.prompt_id)}`), `Prompt ${p.name} deleted.`);
            }
          } })]), "prompts-table"))];
  }

  // --- operator pages ----------------------------------------------------------------------------

  const cursors = []; // the cursors of the pages before this one, for "Previous"

  async function tenantsPage(params) {
    const query = new URLSearchParams({ limit: "50" });
    for (const name of ["sort", "order", "search", "cursor"]) if (params.get(name)) query.set(name, params.get(name));
    const listed = await api("GET", `admin/tenants?${query}`);
    const go = (changes) => {
      const next = new URLSearchParams(params);
      for (const [k, v] of Object.entries(changes)) if (v) next.set(k, v); else next.delete(k);
      location.hash = `#/op/tenants?${next}`;
    };
    const sortButton = (label, sort) => el("button", { type: "button", text: label,
      "aria-label": `Sort by ${label.toLowerCase()}`, onclick: () => {
        const same = (params.get("sort") || "created") === sort;
        go({ sort, order: same && params.get("order") !== "asc" ? "asc" : "desc", cursor: "", search: "" });
      } });
    const form = el("form", { class: "row", role: "search", onsubmit: (event) => {
      event.preventDefault();
      cursors.length = 0;
      go({ search: $("tenant-search").value.trim(), cursor: "" });
    } }, el("div", {}, el("label", { for: "tenant-search", text: "Find tenants by slug" }),
      el("input", { id: "tenant-search", value: params.get("search") || "", pattern: "[A-Za-z0-9\\-]{0,63}" })),
    el("button", { type: "submit", text: "Search" }));
    const rows = listed.tenants.map((t) => [el("a", { href: `#/op/tenant/${encodeURIComponent(t.tenant_id)}`, text: t.name }),
      t.slug, t.plan, t.status, usd(t.month.spend_usd), count(t.month.requests), count(t.month.refusals), t.created_at]);
    const pager = el("div", { class: "pager" },
      el("button", { type: "button", class: "plain", text: "Previous page", disabled: !params.get("cursor"),
        onclick: () => go({ cursor: cursors.pop() || "" }) }),
      el("button", { type: "button", class: "plain", text: "Next page", disabled: !listed.next_cursor,
        onclick: () => { cursors.push(params.get("cursor") || ""); go({ cursor: listed.next_cursor }); } }));
    return [el("h1", { text: `Tenants, ${listed.period}` }), form,
      el("p", { class: "hint", text: params.get("sort") === "spend"
        ? "Sorted by this month's spend: tenants without a call this month are listed under newest."
        : "Newest first unless sorted otherwise." }),
      card("Tenants", table("Tenants", [{ label: "Name" }, { label: "Slug" }, { label: "Plan" }, { label: "Status" },
        { label: "Spend this month", num: 1, sort: sortButton("Spend", "spend") }, { label: "Requests", num: 1 },
        { label: "Refusals", num: 1 }, { label: "Created", sort: sortButton("Created", "created") }], rows,
      "tenants-table"), pager)];
  }

  async function tenantPage(id) {
    const page = await api("GET", `admin/tenants/${encodeURIComponent(id)}`);
    const t = page.tenant;
    const path = `admin/tenants/${encodeURIComponent(t.tenant_id)}`;
    const planForm = el("form", { class: "row", onsubmit: async (event) => {
      event.preventDefault();
      const plan = $("tenant-plan").value;
      if (await confirmAction(`Move ${t.name} from ${t.plan} to ${plan}?`)) {
        act(() => api("PUT", `${path}/plan`, { plan }), `${t.name} is on ${plan}.`);
      }
    } }, el("div", {}, el("label", { for: "tenant-plan", text: "Plan" }), el("select", { id: "tenant-plan" },
      ["free", "pro", "enterprise"].map((p) => el("option", { value: p, selected: p === t.plan, text: p })))),
    el("button", { type: "submit", text: "Change plan" }));
    const suspended = t.status === "suspended";
    const statusButton = el("button", { type: "button", class: suspended ? "plain" : "danger",
      text: suspended ? "Resume tenant" : "Suspend tenant", onclick: async () => {
        const verb = suspended ? "resume" : "suspend";
        if (await confirmAction(`${suspended ? "Resume" : "Suspend"} ${t.name}?${suspended ? "" : " Its calls are refused."}`)) {
          act(() => api("POST", `${path}/${verb}`), `${t.name}: ${verb}d.`);
        }
      } });
    const limitInputs = Object.entries(page.limits.features).map(([name, limit]) => el("div", {},
      el("label", { for: `limit-${name}`, text: `${name.replaceAll("_", " ")} per month (empty: the plan's)` }),
      el("input", { id: `limit-${name}`, type: "number", min: 0, value: page.limits.overrides.features &&
        name in page.limits.overrides.features ? limit : "", placeholder: limit === null ? "unlimited" : String(limit) })));
    const limitsForm = el("form", { onsubmit: async (event) => {
      event.preventDefault();
      const features = {};
      for (const name of Object.keys(page.limits.features)) {
        const value = $(`limit-${name}`).value;
        features[name] = value === "" ? null : Number(value);
      }
      const rpm = $("limit-rpm").value;
      const body = { features, requests_per_minute: rpm === "" ? null : Number(rpm) };
      if (await confirmAction(`Change the limits of ${t.name}?`)) {
        act(() => api("PUT", `${path}/limits`, body), `Limits of ${t.name} changed.`);
      }
    } }, el("div", { class: "row" }, ...limitInputs, el("div", {},
      el("label", { for: "limit-rpm", text: "Requests per minute (empty: the plan's)" }),
      el("input", { id: "limit-rpm", type: "number", min: 1, value: "requests_per_minute" in page.limits.overrides
        ? page.limits.requests_per_minute : "", placeholder: String(page.limits.requests_per_minute) }))),
    el("button", { type: "submit", text: "Save limits" }));
    const u = page.usage;
    return [el("h1", { text: `${t.name} (${t.slug})` }),
      el("div", { class: "figures" }, figure("Plan", t.plan, "tenant-plan-now"), figure("Status", t.status, "tenant-status"),
        figure("Spend this month", usd(u.total_cost_usd), "tenant-spend"), figure("Requests", count(u.requests)),
        figure("Refused", count(u.refusals.total)), figure("Budget", usd(u.budget.monthly_budget_usd))),
      card("Plan and status", planForm, statusButton),
      card("Limits", limitsForm, table("Feature standing", [{ label: "Feature" }, { label: "In plan" },
        { label: "Used", num: 1 }, { label: "Limit", num: 1 }], Object.entries(page.features).map(([name, f]) =>
        [name, f.enabled ? "yes" : "no", count(f.used), f.limit === null ? "unlimited" : count(f.limit)]), "standing")),
      el("div", { class: "grid" },
        card("By feature", totalsTable("Usage by feature", "Feature", Object.entries(u.by_feature))),
        card("By model", totalsTable("Usage by model", "Model", Object.entries(u.by_model))),
        card("Refusals", table("Refusals by reason", [{ label: "Reason" }, { label: "Refused", num: 1 }],
          Object.entries(u.refusals.by_reason).map(([r, n]) => [r.replaceAll("_", " "), count(n)]))))];
  }

  async function platformPage(params) {
    const period = params.get("period") || thisMonth();
    const month = await api("GET", `admin/usage?period=${encodeURIComponent(period)}`);
    return [el("h1", { text: `The platform, ${month.period}` }),
      el("div", { class: "figures" }, figure("Spend", usd(month.totals.cost_usd), "platform-spend"),
        figure("Requests", count(month.totals.requests)), figure("Input tokens", count(month.totals.input_tokens)),
        figure("Output tokens", count(month.totals.output_tokens))),
      el("div", { class: "grid" },
        card("By plan", totalsTable("Platform usage by plan", "Plan", Object.entries(month.by_plan), "by-plan")),
        card("By model", totalsTable("Platform usage by model", "Model", Object.entries(month.by_model),
          "platform-by-model")))];
  }

  // --- navigation --------------------------------------------------------------------------------

  const TENANT_PAGES = [["usage", "Usage", usagePage, "member"], ["keys", "API keys", keysPage, "admin"],
    ["users", "Users", usersPage, "admin"], ["settings", "AI settings", settingsPage, "admin"],
    ["prompts", "Prompts", promptsPage, "member"]];
  const OPERATOR_PAGES = [["op/tenants", "Tenants", tenantsPage], ["op/platform", "Platform", platformPage]];
  const RANK = { member: 0, admin: 1, owner: 2 };

  function pages() {
    if (session.kind === "operator") return OPERATOR_PAGES;
    return TENANT_PAGES.filter((p) => RANK[session.me.role] >= RANK[p[3]]);
  }

  function drawNav(current) {
    const nav = $("nav");
    nav.replaceChildren(...(session.token ? pages().map(([path, label]) => el("a", { href: `#/${path}`, text: label,
      "aria-current": current.startsWith(path) ? "page" : null })) : []));
  }

  async function route() {
    const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
    const params = new URLSearchParams(query || "");
    if (!session.token) {
      $("sign-in").hidden = false;
      $("page").hidden = true;
      drawNav("");
      return;
    }
    $("sign-in").hidden = true;
    const available = pages();
    let view = null;
    let name = path;
    if (session.kind === "operator" && path.startsWith("op/tenant/")) {
      view = () => tenantPage(decodeURIComponent(path.slice("op/tenant/".length)));
    } else {
      const found = available.find(([p]) => p === path) || available[0];
      name = found[0];
      view = () => found[2](params);
    }
    drawNav(name);
    const pageNode = $("page");
    try {
      const content = await view();
      pageNode.replaceChildren(...content.filter(Boolean));
      pageNode.hidden = false;
      const heading = pageNode.querySelector("h1");
      document.title = `${heading ? heading.textContent : "Console"} · Tessera`;
    } catch (error) {
      say(`${error.message}${error.code ? ` (${error.code})` : ""}`, true);
    }
  }

  function signedIn(kind, token, me, label) {
    Object.assign(session, { kind, token, me });
    $("who").textContent = label;
    $("sign-out").hidden = false;
    say("");
    const start = kind === "operator" ? "#/op/tenants" : "#/usage";
    if (location.hash === start) route(); else location.hash = start;
  }

  function signOut(message) {
    Object.assign(session, { kind: null, token: null, me: null });
    $("who").textContent = "";
    $("sign-out").hidden = true;
    $("page").replaceChildren();
    say(message || "Signed out.");
    location.hash = "#/";
    route();
  }

  async function logIn(body) {
    const { access_token: token } = await api("POST", "auth/login", body);
    session.token = token;
    const me = await api("GET", "me");
    signedIn("tenant", token, me, `${me.email} · ${me.role} · ${body.tenant}`);
  }

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { tenant: $("login-tenant").value.trim(), email: $("login-email").value.trim(),
      password: $("login-password").value };
    $("login-password").value = "";
    try {
      await logIn(body);
    } catch (error) {
      session.token = null;
      say(`Sign-in failed: ${error.message}`, true);
    }
  });

  $("signup-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { company_name: $("signup-company").value.trim(), slug: $("signup-slug").value.trim(),
      email: $("signup-email").value.trim(), password: $("signup-password").value };
    $("signup-password").value = "";
    try {
      await api("POST", "tenants", body);
      await logIn({ tenant: body.slug, email: body.email, password: body.password });
    } catch (error) {
      session.token = null;
      say(`The workspace was not created: ${error.message}${error.code ? ` (${error.code})` : ""}`, true);
    }
  });

  $("operator-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("operator-token").value.trim();
    $("operator-token").value = "";
    session.token = token;
    try {
      await api("GET", "admin/tenants?limit=1");
      signedIn("operator", token, null, "platform operator");
    } catch (error) {
      session.token = null;
      say(`That operator token was refused: ${error.message}`, true);
    }
  });

  $("sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", () => { route().then(() => $("main").focus()); });
  route();
}());

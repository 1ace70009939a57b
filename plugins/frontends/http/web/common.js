/* tunebench pages' shared helpers (loaded before app.js and admin.js, served
 * at /assets/common.js): DOM building, the JSON API call (the X-Tunebench
 * CSRF header, same-origin credentials, errors as ApiError), formatting.
 * Everything is on window.tb; server strings are only ever set as text. */
'use strict';
window.tb = (() => {
  const $ = (id) => document.getElementById(id);

  /* h('tag', {attr: value, class: '', text: '', onclick: fn}, children...) */
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') el.textContent = v;
      else if (k === 'class') el.className = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat()) if (kid !== null && kid !== undefined && kid !== false)
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    return el;
  }

  /* A refused request: status (0: no answer), the field the server named, its body, Retry-After. */
  class ApiError extends Error {
    constructor(status, message, field, body, retryAfter) {
      super(message);
      this.status = status; this.field = field || null; this.body = body || null; this.retryAfter = retryAfter;
    }
  }

  async function api(method, path, body) {
    const opt = { method, credentials: 'same-origin', cache: 'no-store', headers: { 'X-Tunebench': '1' } };
    if (body !== undefined) {
      opt.headers['Content-Type'] = 'application/json';
      opt.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, opt);
    } catch (e) {
      throw new ApiError(0, 'The study server cannot be reached. The page keeps trying.');
    }
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!res.ok) {
      let msg = (data && data.error) || `The server answered ${res.status} ${res.statusText}`;
      const ra = res.headers.get('Retry-After');
      if (res.status === 429 && ra) msg += ` (try again in ${ra} s)`;
      throw new ApiError(res.status, msg, data && data.field, data, ra);
    }
    return data;
  }

  function fmtClock(s) {
    if (s === null || s === undefined || !isFinite(s)) return '–';
    s = Math.max(0, Math.floor(s));
    const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
    const p2 = (n) => String(n).padStart(2, '0');
    return hh > 0 ? `${hh}:${p2(mm)}:${p2(ss)}` : `${p2(mm)}:${p2(ss)}`;
  }
  const fmtPct = (a, digits = 1) => (a === null || a === undefined || !isFinite(a)) ? '–' : `${(a * 100).toFixed(digits)}%`;

  return { $, h, ApiError, api, fmtClock, fmtPct };
})();

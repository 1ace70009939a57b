/* tunebench organiser dashboard (/admin): logs in with the token from
 * location.hash (#token=...) by POST /api/admin/session (an HttpOnly cookie),
 * removes the token from the address bar, then follows /api/admin/events
 * (SSE, `overview` events) with a 2 s polling fallback. Shows the counts, every
 * participant, the live runs with small curves, the queue and the finals;
 * stops/resumes admitting, closes the study, downloads the export. */
'use strict';
(() => {
  const { $, h, api, fmtClock, fmtPct } = window.tb; // common.js
  const POLL_MS = 2000;
  const S = { ov: null, es: null, sseDelay: 1000, sseTimer: 0, pollTimer: 0, polling: false, curves: new Map(), charts: new Map(), fetched: new Map() };

  function setError(id, err) {
    const el = $(id);
    el.textContent = err ? (err.message || String(err)) : '';
    el.hidden = !err;
  }
  function setConn(text) { $('conn').textContent = text || ''; $('conn').hidden = !text; }
  function show(view) {
    for (const el of document.querySelectorAll('main > .view')) el.hidden = el.id !== `view-${view}`;
  }

  /* ---- login ------------------------------------------------------------------------------ */

  async function boot() {
    $('login-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      setError('login-error', null);
      try { await login($('login-token').value.trim()); $('login-token').value = ''; await start(); }
      catch (e) { setError('login-error', e.status === 401 ? 'This token is not the organiser token.' : e); }
    });
    $('admit-btn').addEventListener('click', toggleAdmitting);
    $('close-btn').addEventListener('click', () => { setError('close-error', null); $('close-dialog').showModal(); });
    $('close-cancel').addEventListener('click', () => $('close-dialog').close());
    $('close-confirm').addEventListener('click', closeStudy);
    api('GET', '/api/study').then((st) => {
      if (st && st.title) { $('study-title').textContent = st.title; document.title = `Organiser — ${st.title}`; }
    }).catch(() => {});

    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (m) {
      const token = decodeURIComponent(m[1]);
      // the token leaves the address bar (and the history) at once
      history.replaceState(null, '', location.pathname + location.search);
      try { await login(token); }
      catch (e) { show('login'); setError('login-error', e.status === 401 ? 'The token in the address is not the organiser token.' : e); return; }
    }
    await start();
    window.addEventListener('resize', () => { for (const c of S.charts.values()) c.setSize(miniSize(c.root.parentElement)); });
  }

  async function login(token) {
    if (!token) { const e = new Error('Please enter the token.'); e.status = 400; throw e; }
    await api('POST', '/api/admin/session', { token });
  }

  async function start() {
    try {
      render(await api('GET', '/api/admin/overview'));
    } catch (e) {
      if (e.status === 401 || e.status === 403) { show('login'); $('login-token').focus(); return; }
      setConn(e.message);
    }
    show('dash');
    startLive();
  }

  /* ---- live updates ----------------------------------------------------------------------- */

  function startLive() {
    if (S.es || S.sseTimer) return;
    const es = new EventSource('/api/admin/events');
    S.es = es;
    es.addEventListener('open', () => { S.sseDelay = 1000; stopPolling(); setConn(''); $('live-mode').textContent = '(live)'; });
    es.addEventListener('overview', (e) => { try { render(JSON.parse(e.data)); } catch (x) { /* a bad event */ } });
    es.addEventListener('error', () => {
      es.close();
      if (S.es !== es) return;
      S.es = null;
      $('live-mode').textContent = '(polling every 2 s)';
      startPolling();
      S.sseTimer = setTimeout(() => { S.sseTimer = 0; startLive(); }, S.sseDelay);
      S.sseDelay = Math.min(S.sseDelay * 2, 30000);
    });
  }
  function startPolling() { if (!S.pollTimer) { S.pollTimer = setInterval(poll, POLL_MS); poll(); } }
  function stopPolling() { clearInterval(S.pollTimer); S.pollTimer = 0; }
  async function poll() {
    if (S.polling) return;
    S.polling = true;
    try { render(await api('GET', '/api/admin/overview')); setConn(''); }
    catch (e) {
      if (e.status === 401) { stopPolling(); show('login'); }
      else setConn(S.ov && S.ov.counts && S.ov.counts.closing ? 'The study has closed; the server is gone.' : 'The study server cannot be reached; retrying every 2 s.');
    } finally { S.polling = false; }
  }

  /* ---- rendering -------------------------------------------------------------------------- */

  const STATES = ['registered', 'consented', 'lobby', 'active', 'done'];
  const STATUSES = ['queued', 'training', 'finished', 'cancelled', 'diverged', 'interrupted', 'rejected'];
  const pick = (obj, names, i) => (Array.isArray(obj) ? obj[i] : obj ? obj[names[i]] : undefined) || 0;

  function render(ov) {
    if (!ov) return;
    S.ov = ov;
    const c = ov.counts || {};
    $('updated').textContent = new Date().toLocaleTimeString();
    const stat = (n, label) => h('div', { class: 'stat' }, h('b', { text: n }), h('span', { text: label }));
    const bs = c.by_state, rs = c.runs_by_status;
    $('counts').replaceChildren(
      stat(c.participants ?? 0, 'participants'),
      stat(pick(bs, STATES, 3), 'tuning now'),
      stat(pick(bs, STATES, 2), 'in the lobby'),
      stat(pick(bs, STATES, 4), 'done'),
      stat(c.runs ?? 0, 'submissions'),
      stat(pick(rs, STATUSES, 1), 'training'),
      stat(pick(rs, STATUSES, 0), 'queued'),
      stat(pick(rs, STATUSES, 2), 'finished'),
      stat(`${c.finals_done ?? 0} / ${c.finals_total ?? 0}`, 'final evaluations done'),
      stat(`${c.slots ?? '–'} / ${c.max_active ?? '–'}`, 'slots / max. active'));
    const admitting = !!c.admitting;
    $('admitting-pill').textContent = admitting ? 'admitting new participants' : 'not admitting new participants';
    $('admitting-pill').className = `pill ${admitting ? 'on' : 'off'}`;
    $('admit-btn').textContent = admitting ? 'Stop admitting new participants' : 'Resume admitting new participants';
    $('admit-btn').dataset.admitting = admitting ? '1' : '0';
    $('archive').textContent = ov.archive ? `Archive: ${ov.archive}` : '';
    $('closing-note').hidden = !c.closing;
    $('close-btn').disabled = !!c.closing;
    $('admit-btn').disabled = !!c.closing;

    const parts = ov.participants || [];
    const byId = new Map(parts.map((p) => [p.id, p]));
    $('parts-body').replaceChildren(...(parts.length ? parts.map((p) => h('tr', {},
      h('td', { class: 'mono', text: p.id }),
      h('td', { text: p.state + (p.state === 'lobby' && p.lobby_position ? ` (#${p.lobby_position})` : '') }),
      h('td', { text: (p.education || '').replace(/_/g, ' ') }),
      h('td', { class: 'num', text: p.dl_months ?? '–' }),
      h('td', { class: 'num', text: fmtClock(p.used_s) }),
      h('td', { class: 'num', text: fmtClock(p.left_s) }),
      h('td', { class: 'num', text: p.tries ?? p.submissions ?? 0 }),
      h('td', { class: 'num', text: fmtPct(p.best_val_accuracy) }),
      h('td', { class: 'mono', text: p.live_run || '' })))
      : [h('tr', {}, h('td', { colspan: 9, class: 'muted', text: 'Nobody has registered yet.' }))]));

    const finals = parts.filter((p) => p.final_run || p.state === 'done');
    $('finals-body').replaceChildren(...(finals.length ? finals.map((p) => h('tr', {},
      h('td', { class: 'mono', text: p.id }),
      h('td', { class: 'mono', text: p.final_run || '–' }),
      h('td', { text: p.final_reason || '' }),
      h('td', { class: 'num', text: `${p.finals_done ?? 0} of ${p.finals_total ?? 0}` }),
      h('td', { class: 'num', text: p.final_mean === null || p.final_mean === undefined ? '–'
        : `${fmtPct(p.final_mean)}${p.final_sd !== null && p.final_sd !== undefined ? ` ± ${(p.final_sd * 100).toFixed(1)}` : ''}` })))
      : [h('tr', {}, h('td', { colspan: 5, class: 'muted', text: 'No final choice yet.' }))]));

    const live = ov.live || [];
    const queued = live.filter((r) => r.status === 'queued').sort((a, b) => (a.queue_position || 0) - (b.queue_position || 0));
    const now = Date.now() / 1000;
    $('queue-body').replaceChildren(...(queued.length ? queued.map((r) => h('tr', {},
      h('td', { class: 'num', text: r.queue_position || '–' }),
      h('td', { class: 'mono', text: r.run_id }),
      h('td', { class: 'mono', text: r.participant || '' }),
      h('td', { class: 'num', text: r.number }),
      h('td', { class: 'num', text: r.submitted_s ? fmtClock(now - r.submitted_s) : '–' })))
      : [h('tr', {}, h('td', { colspan: 5, class: 'muted', text: 'The queue is empty.' }))]));

    renderLive(live.filter((r) => r.status === 'training'), byId);
  }

  function miniSize(el) { return { width: Math.max(240, (el && el.clientWidth) || 300), height: 110 }; }

  function renderLive(training) {
    $('live-empty').hidden = training.length > 0 || (S.ov.live || []).length > 0;
    const box = $('live-runs');
    const keep = new Set(training.map((r) => r.run_id));
    for (const [id, chart] of S.charts) if (!keep.has(id)) {
      chart.destroy(); S.charts.delete(id); S.curves.delete(id); S.fetched.delete(id);
      const card = document.getElementById(`mini-${id}`); if (card) card.remove();
    }
    for (const r of training) {
      let card = document.getElementById(`mini-${r.run_id}`);
      if (!card) {
        card = h('div', { class: 'mini', id: `mini-${r.run_id}` },
          h('h4', {}), h('p', { class: 'small muted' }), h('div', { class: 'chart-box', 'aria-hidden': 'true' }));
        box.append(card);
      }
      card.querySelector('h4').textContent = `${r.participant || '?'} · try #${r.number} · ${r.run_id}`;
      const vals = r.values || {};
      card.querySelector('p').textContent =
        `epoch ${Math.min(r.epochs || 0, (r.epoch || 0) + 1)} of ${r.epochs}, batch ${r.batch || 0} of ${r.batches_per_epoch || '?'} · ${fmtClock(r.seconds)}` +
        ` · val. acc. ${fmtPct(r.val_accuracy)} · ${vals.optimizer || ''} lr ${vals.lr || ''} bs ${vals.batch_size || ''}`;
      const chartBox = card.querySelector('.chart-box');
      if (!S.charts.has(r.run_id) && typeof window.uPlot === 'function') {
        S.curves.set(r.run_id, { x: [], y: [] });
        S.charts.set(r.run_id, new uPlot({
          ...miniSize(chartBox),
          scales: { x: { time: false }, y: { range: (u, mn, mx) => [0, mx ? mx * 1.05 : 1] } },
          axes: [{ size: 24, grid: { stroke: '#eee' } }, { size: 40, grid: { stroke: '#eee' } }],
          series: [{}, { label: 'batch loss', stroke: '#1f5fbf', width: 1, points: { show: false } }],
          legend: { show: false },
          cursor: { show: false },
        }, [[], []], chartBox));
      }
      fetchCurve(r.run_id);
    }
  }

  async function fetchCurve(id) {
    const last = S.fetched.get(id) || 0;
    if (Date.now() - last < POLL_MS) return;
    S.fetched.set(id, Date.now());
    const c = S.curves.get(id);
    if (!c) return;
    try {
      const d = await api('GET', `/api/admin/runs/${encodeURIComponent(id)}/curve?batch_from=${c.x.length}&epoch_from=0`);
      const st = (d && d.batch && d.batch.step) || [], ls = (d && d.batch && d.batch.loss) || [];
      for (let i = 0; i < st.length; i++) if (!c.x.length || st[i] > c.x[c.x.length - 1]) { c.x.push(st[i]); c.y.push(ls[i]); }
      const chart = S.charts.get(id);
      if (chart) chart.setData([c.x.slice(), c.y.slice()]);
    } catch (e) { /* the next overview retries */ }
  }

  /* ---- controls --------------------------------------------------------------------------- */

  async function toggleAdmitting() {
    setError('ctl-error', null);
    const admitting = $('admit-btn').dataset.admitting === '1';
    try {
      const counts = await api('POST', '/api/admin/admitting', { admitting: !admitting });
      if (counts && S.ov) { S.ov.counts = { ...S.ov.counts, ...(counts.counts || counts) }; render(S.ov); }
    } catch (e) { setError('ctl-error', e); }
  }

  async function closeStudy() {
    setError('close-error', null);
    try {
      await api('POST', '/api/admin/close');
      $('close-dialog').close();
      if (S.ov) { S.ov.counts = { ...(S.ov.counts || {}), closing: 1 }; render(S.ov); }
    } catch (e) { setError('close-error', e); }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();

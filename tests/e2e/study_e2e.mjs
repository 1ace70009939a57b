// study_e2e.mjs: the HTTP front end in a real browser (Debian's chromium driven by
// playwright-core). It writes a tiny Fashion-MNIST-shaped task (plain IDX files),
// a study config on it, starts `tunebench study CONFIG --frontend http` on port 0,
// and as a participant: registers (consent, background), notes the secret, submits
// a bad value (the server's error under the field), submits a configuration, watches
// the batch-loss chart grow, cancels, resubmits, reloads the page mid-run (the chart
// comes back from /curve), lets the run finish, makes the final choice with its
// confirmation and waits for the closing page with the result. Then as the organiser
// (the printed #token= URL): the dashboard shows the participant and the final; the
// token has left the address bar; closing the study ends the server with status 0.
// A screenshot of each step goes to ARTIFACTS/NN-step.png.
//
//   node tests/e2e/study_e2e.mjs --tunebench build/tunebench --artifacts build/test-artifacts/e2e
//
// A missing playwright-core or browser is a FAILURE with the reason, never a skip.
// TB_E2E_URL / TB_E2E_ADMIN_URL run the browser part against a server already up.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const t0 = Date.now();
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const tunebench = path.resolve(arg('tunebench', path.join(repo, 'build', 'tunebench')));
const artifacts = path.resolve(arg('artifacts', path.join(repo, 'build', 'test-artifacts', 'e2e')));
const chromiumPath = arg('chromium', process.env.TB_CHROMIUM || '/usr/bin/chromium');
const keep = !!process.env.TB_E2E_KEEP;

function log(msg) { console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}`); }
function fail(msg) { console.error(`study_e2e: FAIL: ${msg}`); process.exitCode = 1; throw new Error(msg); }

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.error(`study_e2e: FAIL: playwright-core cannot be loaded (${e.message}); run scripts/deps.sh (npm ci)`);
  process.exit(1);
}
if (!fs.existsSync(chromiumPath)) {
  console.error(`study_e2e: FAIL: no browser at ${chromiumPath}; install Debian's chromium (scripts/deps.sh)`);
  process.exit(1);
}

fs.mkdirSync(artifacts, { recursive: true });
for (const f of fs.readdirSync(artifacts)) if (f.endsWith('.png')) fs.rmSync(path.join(artifacts, f));
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tb-e2e-'));

/* ---- a tiny task: IDX files the fashion_mnist plugin reads (28x28, 10 classes) ---------- */

function writeIdx(dir, prefix, n, seed) {
  const side = 28, classes = 10;
  const img = Buffer.alloc(16 + n * side * side), lab = Buffer.alloc(8 + n);
  img.writeUInt32BE(2051, 0); img.writeUInt32BE(n, 4); img.writeUInt32BE(side, 8); img.writeUInt32BE(side, 12);
  lab.writeUInt32BE(2049, 0); lab.writeUInt32BE(n, 4);
  let s = (seed * 2654435761 + 12345) >>> 0;
  for (let i = 0; i < n; i++) {
    const k = i % classes;
    lab[8 + i] = k;
    // a faint block per class at a jittered place, in strong noise: learnable, not trivially
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const jx = (s >>> 28) % 3, jy = (s >>> 24) % 3;
    const cx = 2 + (k % 5) * 5 + jx, cy = 3 + Math.floor(k / 5) * 12 + jy;
    for (let r = 0; r < side; r++) for (let c = 0; c < side; c++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      let v = s >>> 25;
      if (r >= cy && r < cy + 5 && c >= cx && c < cx + 4) v += 45;
      img[16 + i * side * side + r * side + c] = v;
    }
  }
  fs.writeFileSync(path.join(dir, `${prefix}-images-idx3-ubyte`), img);
  fs.writeFileSync(path.join(dir, `${prefix}-labels-idx1-ubyte`), lab);
}

const ADMIN_TOKEN = 'e2e-organiser-token-0123456789abcdef';
/* A free port for both starts of the server (the page must find it again after the restart). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}
function writeStudy(port) {
  const data = path.join(work, 'data');
  fs.mkdirSync(data);
  writeIdx(data, 'train', 3000, 1);
  writeIdx(data, 't10k', 200, 2);
  const cfg = path.join(work, 'study.ini');
  fs.writeFileSync(cfg, `[study]
title = Browser test study
briefing = A tiny image task for the browser test: ten classes of 28x28 grey pictures. Choose the hyperparameters that give the best accuracy.
archive = ${path.join(work, 'archive')}
budget_minutes = 20
final_seeds = 5
slots = 1
threads_per_run = 1
show_result = true

[space]
mandatory = epochs, batch_size, loss, optimizer
epochs = int 1 40
batch_size = int 4 256 log
loss = choice cross_entropy|nll|l1|mse
optimizer = choice adam|adadelta|adagrad|asgd|rmsprop|sgd
lr = float 0.00001 1 log

[model]
name = cnn

[cnn]
filters = 32,64
units = 64

[task]
name = fashion_mnist
val_fraction = 0.2
split_seed = 0

[fashion_mnist]
path = ${data}

[plugins]
path = ${path.join(path.dirname(tunebench), 'plugins')}

[train]
seed = 1
threads = 1
lr = 0.003

[http]
bind = 127.0.0.1
port = ${port}
admin_token = ${ADMIN_TOKEN}
`);
  return cfg;
}

/* ---- the server ------------------------------------------------------------------------- */

let server = null, serverOut = '', serverExit = null, studyCfg = null;
async function startServer() {
  if (process.env.TB_E2E_URL) return { url: process.env.TB_E2E_URL, admin: process.env.TB_E2E_ADMIN_URL };
  if (!fs.existsSync(tunebench)) fail(`no tunebench at ${tunebench}; build it first`);
  if (!studyCfg) studyCfg = writeStudy(await freePort());
  const cfg = studyCfg;
  serverOut = '';
  serverExit = null;
  server = spawn(tunebench, ['study', cfg, '--frontend', 'http'], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((resolve) => server.on('exit', (code, sig) => { serverExit = { code, sig }; resolve(serverExit); }));
  server.exited = exited;
  const onData = (d) => { serverOut += d.toString(); };
  server.stdout.on('data', onData);
  server.stderr.on('data', onData);
  for (let i = 0; i < 300; i++) {
    const p = /participants:\s*(http:\/\/\S+)/.exec(serverOut), a = /organiser:\s*(http:\/\/\S+)/.exec(serverOut);
    if (p && a) return { url: p[1], admin: a[1] };
    if (serverExit) break;
    await sleep(100);
  }
  fail(`the server did not print its URLs (exit ${JSON.stringify(serverExit)}); its output:\n${serverOut}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* ---- the browser ------------------------------------------------------------------------ */

let browser = null, shot = 0, current = null;
async function snap(page, name) {
  shot++;
  const file = path.join(artifacts, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  log(`screenshot ${path.relative(repo, file)}`);
}
async function until(what, fn, ms = 15000, every = 100) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e.message; }
    await sleep(every);
  }
  fail(`timed out after ${ms / 1000} s waiting for ${what} (last: ${JSON.stringify(last)})`);
}
const points = (page, id) => page.$eval(`#${id}`, (el) => Number(el.dataset.points || 0));
const liveStatus = (page) => page.textContent('#live-status');
const visible = (page, sel) => page.isVisible(sel);

async function fillConfig(page, v) {
  for (const [name, value] of Object.entries(v)) {
    const tag = await page.$eval(`#hp-${name}`, (el) => el.tagName);
    if (tag === 'SELECT') await page.selectOption(`#hp-${name}`, String(value));
    else await page.fill(`#hp-${name}`, String(value));
  }
}

async function main() {
  const { url, admin } = await startServer();
  log(`server: ${url} (organiser ${admin.replace(/token=.*/, 'token=…')})`);
  const profile = fs.mkdtempSync(path.join(work, 'chromium-'));
  try {
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1366, height: 768 },
    });
  } catch (e) {
    fail(`chromium at ${chromiumPath} does not start under playwright-core: ${e.message.split('\n')[0]}`);
  }
  const page = browser.pages()[0] || await browser.newPage();
  current = page;
  const problems = [];
  const origin = new URL(url).origin;
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource|EventSource|net::ERR/.test(m.text())) problems.push(`console: ${m.text()}`); });
  page.on('request', (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith('data:')) problems.push(`external request ${r.url()}`); });

  // 1. welcome: title, briefing, background form, consent
  await page.goto(url);
  await page.waitForSelector('#view-welcome:not([hidden])');
  const title = await page.textContent('#study-title');
  if (server && title !== 'Browser test study') fail(`the title is "${title}"`);
  await snap(page, 'welcome');
  // registering without consent is refused in place
  await page.selectOption('#reg-education', 'master');
  await page.fill('#reg-dl', '14');
  await page.click('#register-btn');
  await until('the consent error', () => page.isVisible('#register-form .field-error'));
  await page.check('#reg-consent');
  await page.click('#register-btn');

  // 2. the secret, shown once
  await page.waitForSelector('#view-secret:not([hidden])');
  const pid = await page.textContent('#secret-id');
  const secret = await page.textContent('#secret-value');
  if (!pid || !secret || !secret.startsWith(`${pid}.`)) fail(`the secret "${secret}" does not belong to "${pid}"`);
  await snap(page, 'secret');
  if (!(await page.isDisabled('#secret-continue'))) fail('Continue is enabled before the secret is confirmed');
  await page.check('#secret-ok');
  await page.click('#secret-continue');

  // 3. the tuning page
  await page.waitForSelector('#view-tune:not([hidden])', { timeout: 15000 });
  const names = await page.$$eval('#hp-fields .hp', (rows) => rows.map((r) => r.dataset.name));
  if (names.length !== 15 || names[0] !== 'epochs' || names[14] !== 'beta2') fail(`the form shows ${names.join(',')}`);
  const clock1 = await page.textContent('#clock');
  await until(`the clock to run while active (from ${clock1})`, async () => (await page.textContent('#clock')) !== clock1, 4000);

  // 3b. a second participant while the only place is taken: the lobby, its position, the clock stopped
  {
    const profile2 = fs.mkdtempSync(path.join(work, 'chromium-'));
    const second = await chromium.launchPersistentContext(profile2, {
      executablePath: chromiumPath, headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1366, height: 768 },
    });
    const page2 = second.pages()[0] || await second.newPage();
    page2.on('pageerror', (e) => problems.push(`second participant's page error: ${e.message}`));
    await page2.goto(url);
    await page2.waitForSelector('#view-welcome:not([hidden])');
    await page2.selectOption('#reg-education', 'bachelor');
    await page2.fill('#reg-dl', '0');
    await page2.check('#reg-consent');
    await page2.click('#register-btn');
    await page2.waitForSelector('#view-secret:not([hidden])');
    await page2.check('#secret-ok');
    await page2.click('#secret-continue');
    await page2.waitForSelector('#view-lobby:not([hidden])', { timeout: 15000 });
    const pos = await until('a lobby position', async () => { const t = (await page2.textContent('#lobby-pos')).trim(); return /^\d+$/.test(t) && t; });
    if (pos !== '1') fail(`the second participant is number ${pos} in the lobby, not 1`);
    await snap(page2, 'lobby');
    await second.close(); /* it stops asking: after 10 s its place no longer holds anyone up */
  }

  // 4. a value out of range: the server's error under the field, recorded as rejected
  await fillConfig(page, { epochs: 400, batch_size: 16, loss: 'cross_entropy', optimizer: 'adam' });
  await page.click('#submit-btn');
  const err = await until('the error under epochs', async () => (await page.isVisible('#row-epochs .field-error')) && page.textContent('#row-epochs .field-error'));
  if (!/epochs/.test(err) || !/400/.test(err)) fail(`the epochs error reads "${err}"`);
  await until('the rejected try in the history', async () => /rejected/.test(await page.textContent('#history-body')));
  await snap(page, 'validation-error');

  // 5. a long run: the chart grows
  await fillConfig(page, { epochs: 40, batch_size: 8, lr: 0.003 });
  await page.selectOption('#hpc-lr', '__other__');
  await page.fill('#hpo-lr', 'a bit higher than the preset');
  await page.selectOption('#hpc-epochs', { index: 1 });
  await page.click('#submit-btn');
  await until('the first run to train', async () => /Training/.test(await liveStatus(page)), 20000);
  const p1 = await until('batch points in the chart', async () => { const n = await points(page, 'chart-batch'); return n > 5 && n; }, 20000);
  const p2 = await until('the chart to grow', async () => { const n = await points(page, 'chart-batch'); return n > p1 + 10 && n; }, 10000);
  log(`batch chart: ${p1} -> ${p2} points`);
  await until('the first epoch in the epoch chart', async () => (await points(page, 'chart-epoch')) >= 1, 20000);
  await snap(page, 'training');

  // 6. cancel
  await page.click('#cancel-btn');
  await until('the run to be cancelled', async () => /Cancelled/.test(await liveStatus(page)), 15000);
  if (!(await page.isEnabled('#submit-btn'))) await until('submit to be enabled again', () => page.isEnabled('#submit-btn'), 5000);
  await until('the cancelled try in the history', async () => /cancelled/.test(await page.textContent('#history-body')));
  await snap(page, 'cancelled');

  // 7. resubmit a shorter run, reload mid-run: the charts come back
  await fillConfig(page, { epochs: 3, batch_size: 16 });
  await page.click('#submit-btn');
  await until('the second run to train', async () => /Training/.test(await liveStatus(page)), 20000);
  const before = await until('batch points of the second run', async () => { const n = await points(page, 'chart-batch'); return n > 10 && n; }, 20000);

  // the organiser, meanwhile, in another tab: the token leaves the address bar, the live run has its curve
  const adminPage = await browser.newPage();
  current = adminPage;
  adminPage.on('pageerror', (e) => problems.push(`admin page error: ${e.message}`));
  await adminPage.goto(admin);
  await adminPage.waitForSelector('#view-dash:not([hidden])', { timeout: 10000 });
  if (/token/.test(adminPage.url())) fail(`the token stays in the address bar: ${adminPage.url()}`);
  await until('the participant in the dashboard', async () => (await adminPage.textContent('#parts-body')).includes(pid));
  await until('the live run with its curve', async () => (await adminPage.$$('#live-runs .mini .uplot')).length === 1, 8000);
  await snap(adminPage, 'organiser-live-run');
  await page.bringToFront();
  current = page;
  await page.reload();
  await page.waitForSelector('#view-tune:not([hidden])', { timeout: 15000 });
  const after = await until('the chart after the reload', async () => { const n = await points(page, 'chart-batch'); return n >= before && n; }, 10000);
  log(`reload mid-run: ${before} points before, ${after} after`);
  await snap(page, 'reloaded-mid-run');
  await until('the second run to finish', async () => /Finished/.test(await liveStatus(page)), 40000, 250);
  const epochPts = await points(page, 'chart-epoch');
  if (epochPts !== 3) fail(`the epoch chart has ${epochPts} points after a 3-epoch run`);
  await until('the finished try in the history', async () => /finished/.test(await page.textContent('#history-body')));
  await snap(page, 'finished');

  // the server restarts under the open page: it says so, then carries on by itself (the cookie holds)
  if (server) {
    server.kill('SIGTERM');
    const ex = await Promise.race([server.exited, sleep(15000).then(() => null)]);
    if (!ex) fail('the server did not stop within 15 s of SIGTERM');
    await until('the page to notice the server is gone', () => page.isVisible('#conn'), 10000);
    await snap(page, 'server-gone');
    await startServer();
    await until('the page to reconnect', async () => !(await page.isVisible('#conn')), 15000);
    await until('the tuning page again, clock running', async () =>
      (await page.isVisible('#view-tune')) && /running/.test(await page.textContent('#clock-state')), 15000);
    const rows = await page.$$eval('#history-body tr', (trs) => trs.length);
    if (rows !== 3) fail(`the history has ${rows} rows after the restart, not 3`);
    log('server restart: the page reconnected, re-entered and kept the history');
  }

  // a break: the clock stops; continue
  await page.click('#pause-btn');
  await page.waitForSelector('#view-start:not([hidden])', { timeout: 10000 });
  if (!/stopped/.test(await page.textContent('#clock-state'))) fail('the clock runs during a break');
  await snap(page, 'paused');
  await page.click('#start-btn');
  await page.waitForSelector('#view-tune:not([hidden])', { timeout: 10000 });

  // 8. the final choice, with its confirmation
  await page.click('#finish-open');
  await page.waitForSelector('#finish-dialog[open]');
  await page.check('input[name=final][value=pick]');
  await snap(page, 'final-choice');
  await page.click('#finish-confirm');
  await page.waitForSelector('#view-done:not([hidden])', { timeout: 15000 });
  await until('the final evaluations and the result', () => page.isVisible('#done-result'), 40000, 250);
  const result = await page.textContent('#done-result');
  if (!/Test accuracy/.test(result)) fail(`the result reads "${result}"`);
  await snap(page, 'closing-page');

  // 9. the organiser's dashboard, kept up to date by its stream: the final; stop admitting; close the study
  await adminPage.bringToFront();
  current = adminPage;
  await until('the final in the dashboard', async () => (await adminPage.textContent('#finals-body')).includes(pid));
  const html = await page.content();
  if (html.includes(ADMIN_TOKEN)) fail('the organiser token appears in the participant page');
  await snap(adminPage, 'organiser');
  const [download] = await Promise.all([adminPage.waitForEvent('download', { timeout: 20000 }), adminPage.click('#export-link')]);
  const exportFile = path.join(work, 'export.h5');
  await download.saveAs(exportFile);
  const sig = fs.readFileSync(exportFile).subarray(0, 8);
  if (!sig.equals(Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]))) fail(`the export is not an HDF5 file (${sig.toString('hex')})`);
  log(`export: ${download.suggestedFilename()}, ${fs.statSync(exportFile).size} bytes`);
  await adminPage.click('#admit-btn');
  await until('admitting to stop', async () => /not admitting/.test(await adminPage.textContent('#admitting-pill')));
  await adminPage.click('#close-btn');
  await adminPage.waitForSelector('#close-dialog[open]');
  await snap(adminPage, 'organiser-close');
  await adminPage.click('#close-confirm');
  if (server) {
    const ex = await Promise.race([server.exited, sleep(20000).then(() => null)]);
    if (!ex) fail('the server did not exit within 20 s of closing the study');
    if (ex.code !== 0) fail(`the server exited with ${JSON.stringify(ex)} after closing the study; output:\n${serverOut}`);
    log('the server closed the study and exited 0');
  }
  if (problems.length) fail(`the pages reported:\n  ${problems.join('\n  ')}`);
}

try {
  await main();
  log(`PASS (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
} catch (e) {
  if (!process.exitCode) { console.error(`study_e2e: FAIL: ${e.stack || e}`); process.exitCode = 1; }
  if (current) await snap(current, 'FAILED').catch(() => {});
  if (serverOut) console.error(`--- server output ---\n${serverOut.slice(-4000)}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (server && !serverExit) { server.kill('SIGTERM'); await Promise.race([server.exited, sleep(5000)]); if (!serverExit) server.kill('SIGKILL'); }
  if (!keep) fs.rmSync(work, { recursive: true, force: true });
  else log(`kept ${work}`);
}
// pending timers of the races above (sleep) must not hold the process
process.exit(process.exitCode || 0);

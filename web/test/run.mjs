// The demo page in headless Chromium against the native detector.
//
// Serves web/dist/ at / and the shared test data at /shared/ on 127.0.0.1, opens the page in
// test mode for each image, waits for document.title to become "done" (or "error: ..."),
// and checks that its faces are the native CLI's: the same faces in the same order, scores
// within 1e-4, boxes and landmarks within 0.05 px. The two runs differ in the adapter
// (WebGPU on Chromium's SwiftShader vs wgpu on Vulkan), the kernels (portable vs subgroup
// where the native adapter has them), the JPEG decoder (Chromium's libjpeg-turbo vs ours)
// and the upload (copyExternalImageToTexture vs a buffer), so this tests all of those.
//
// usage: node run.mjs --dist DIR --shared DIR --cli PATH --weights FILE [--threshold T]
//                     [--resize default|original|max:N] [--repeat N] [--timeout SECONDS]
//                     IMAGE...   (IMAGE relative to --shared)

import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, relative, resolve, sep } from 'node:path';
import puppeteer from 'puppeteer-core';

const SCORE_TOLERANCE = 1e-4;
const PIXEL_TOLERANCE = 0.05;
const POINTS = ['right_eye', 'left_eye', 'nose', 'mouth_right', 'mouth_left'];

function parseArgs(argv) {
  const opts = { threshold: '0.9', resize: 'default', repeat: '0', timeout: '600', images: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      opts[a.slice(2)] = argv[++i];
    } else {
      opts.images.push(a);
    }
  }
  for (const key of ['dist', 'shared', 'cli', 'weights']) {
    if (!opts[key]) throw new Error(`--${key} is required`);
  }
  if (!opts.images.length) throw new Error('no images given');
  return opts;
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
};

// A static server for two folders; nothing outside them is reachable.
function serve(dist, shared) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const [root, rest] = path.startsWith('/shared/')
      ? [shared, path.slice('/shared/'.length)]
      : [dist, path.slice(1) || 'index.html'];
    const file = resolve(root, rest);
    let size = -1;
    try {
      if (file.startsWith(root + sep) && statSync(file).isFile()) size = statSync(file).size;
    } catch {
      size = -1;
    }
    if (size < 0) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}\n`);
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': size,
      'cache-control': 'no-store',
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(server)));
}

function nativeFaces(cli, weights, image, opts) {
  const out = execFileSync(
    cli,
    ['detect', '--output', 'jsonl', '--threshold', opts.threshold, '--resize', opts.resize,
      '--weights', weights, image],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return JSON.parse(out.trim().split('\n').pop()).faces;
}

// Differences between two retina-face dicts (with unrounded `box`); empty when they agree.
function compare(web, native) {
  const problems = [];
  const w = Object.values(web);
  const n = Object.values(native);
  if (w.length !== n.length) problems.push(`${w.length} faces in the browser, ${n.length} natively`);
  let worstScore = 0;
  let worstPixel = 0;
  for (let i = 0; i < Math.min(w.length, n.length); i++) {
    const ds = Math.abs(w[i].score - n[i].score);
    worstScore = Math.max(worstScore, ds);
    if (ds > SCORE_TOLERANCE) problems.push(`face ${i + 1}: score ${w[i].score} vs ${n[i].score}`);
    const pairs = w[i].box.map((v, k) => [`box[${k}]`, v, n[i].box[k]]);
    for (const p of POINTS) {
      for (const k of [0, 1]) pairs.push([`${p}[${k}]`, w[i].landmarks[p][k], n[i].landmarks[p][k]]);
    }
    for (const [what, a, b] of pairs) {
      const d = Math.abs(a - b);
      worstPixel = Math.max(worstPixel, d);
      if (d > PIXEL_TOLERANCE) problems.push(`face ${i + 1}: ${what} ${a} vs ${b}`);
    }
  }
  return { problems, worstScore, worstPixel };
}

async function waitForTitle(page, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const title = await page.title();
    if (title === 'done' || title.startsWith('error:')) return title;
    if (Date.now() > deadline) {
      const status = await page.$eval('#status', (e) => e.textContent).catch(() => '?');
      throw new Error(`no result after ${seconds} s (status: ${status})`);
    }
    await new Promise((ok) => setTimeout(ok, 250));
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const dist = resolve(opts.dist);
  const shared = resolve(opts.shared);
  const weights = resolve(opts.weights);
  if (!weights.startsWith(shared + sep)) throw new Error('--weights must lie under --shared');
  const server = await serve(dist, shared);
  const base = `http://127.0.0.1:${server.address().port}`;
  const profile = mkdtempSync(join(tmpdir(), 'retinaface-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    userDataDir: profile,
    protocolTimeout: 0,
    args: [
      '--no-sandbox',
      '--enable-unsafe-webgpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  let failed = 0;
  try {
    for (const image of opts.images) {
      const started = Date.now();
      const page = await browser.newPage();
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warn') console.log(`  [page ${m.type()}] ${m.text()}`);
      });
      page.on('pageerror', (e) => console.log(`  [page error] ${e.message}`));
      const query = new URLSearchParams({
        image: `/shared/${image}`,
        weights: `/shared/${relative(shared, weights).split(sep).join('/')}`,
        threshold: opts.threshold,
        resize: opts.resize,
        repeat: opts.repeat,
      });
      await page.goto(`${base}/?${query}`);
      const title = await waitForTitle(page, Number(opts.timeout));
      const status = await page.$eval('#status', (e) => e.textContent);
      if (title !== 'done') {
        console.log(`FAIL ${image}: ${title}`);
        failed++;
        await page.close();
        continue;
      }
      const web = JSON.parse(await page.$eval('#result', (e) => e.textContent));
      const timing = await page.$eval('#timing', (e) => e.textContent);
      await page.close();
      const native = nativeFaces(opts.cli, weights, join(shared, image), opts);
      const { problems, worstScore, worstPixel } = compare(web, native);
      const n = Object.keys(web).length;
      const line = `${image}: ${n} faces, score diff <= ${worstScore.toExponential(1)}, ` +
        `px diff <= ${worstPixel.toExponential(1)} (${status}; ${((Date.now() - started) / 1000).toFixed(1)} s)`;
      if (problems.length) {
        failed++;
        console.log(`FAIL ${line}`);
        for (const p of problems.slice(0, 20)) console.log(`  ${p}`);
      } else {
        console.log(`ok   ${line}`);
      }
      if (timing) {
        const t = JSON.parse(timing);
        console.log(`     ${t.width}x${t.height} picture, ${t.netWidth}x${t.netHeight} network input: ` +
          `first ${t.firstMs.toFixed(0)} ms, then median ${t.medianWallMs?.toFixed(0)} ms per detection, ` +
          `GPU ${t.medianGpuMs?.toFixed(0) ?? '-'} ms (${t.wallMs.length} runs)`);
      }
    }
  } finally {
    await browser.close();
    server.close();
    rmSync(profile, { recursive: true, force: true });
  }
  console.log(`browser: ${opts.images.length - failed} passed, ${failed} failed`);
  if (failed) process.exit(1);
}

main().catch((e) => {
  console.error(`web/test/run.mjs: ${e.message}`);
  process.exit(2);
});

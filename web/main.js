// The demo page: a photo (chosen or dropped) or the webcam goes to the detector as an
// ImageBitmap; the faces come back as retina-face's JSON and are drawn over the picture.
//
// Test mode (?image=URL): detects on that one image and puts the JSON in <pre id="result">,
// then sets document.title to "done" (or "error: MESSAGE"). Other parameters:
// weights=URL (default: retinaface_mnet025.safetensors next to this page), threshold=T
// (default 0.9, retina-face's), resize=default|original|max:N, repeat=N (N more timed
// detections, reported in <pre id="timing">).

import init, { WebDetector } from './pkg/retinaface_web.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const weightsUrl = params.get('weights') ?? 'retinaface_mnet025.safetensors';

// Landmark colours in retina-face's order: right eye, left eye, nose, mouth right, mouth left.
const POINT_COLOURS = ['#00f', '#0ff', '#f0f', '#0f0', '#f00'];
const POINT_NAMES = ['right_eye', 'left_eye', 'nose', 'mouth_right', 'mouth_left'];

let detector = null;

function setStatus(text, isError = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', isError);
}

async function loadDetector() {
  if (!navigator.gpu) {
    throw new Error('this browser has no WebGPU (navigator.gpu is missing): use a recent ' +
      'Chrome, Edge or Safari, or Firefox with WebGPU enabled, over https or localhost');
  }
  await init();
  const response = await fetch(weightsUrl);
  if (!response.ok) {
    throw new Error(`cannot fetch the weights ${weightsUrl}: HTTP ${response.status} ` +
      '(put retinaface_mnet025.safetensors next to index.html or pass ?weights=URL)');
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  detector = await WebDetector.create(bytes);
  setStatus(`${detector.model} on ${await adapterName()}, ${detector.kernelPath} kernels` +
    (detector.canTime ? ', GPU timestamps on' : ''));
}

// wgpu reports only the adapter's description, which browsers often leave empty; ask the
// browser for the rest (e.g. "google swiftshader (fallback adapter)" for Chromium's
// software renderer).
async function adapterName() {
  const adapter = await navigator.gpu.requestAdapter();
  const info = adapter?.info;
  const name = [info?.vendor, info?.architecture, info?.description].filter(Boolean).join(' ');
  const fallback = info?.isFallbackAdapter ?? adapter?.isFallbackAdapter;
  return (name || detector.adapter || 'an unnamed adapter') + (fallback ? ' (fallback adapter)' : '');
}

// The browser decodes; colour profiles are not applied, as OpenCV (and the native CLI) do not.
function bitmapOf(blob) {
  return createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
}

async function detect(source, timed) {
  const threshold = Number($('threshold').value);
  const started = performance.now();
  const r = JSON.parse(await detector.detect(source, threshold, $('resize').value, timed));
  r.wallMs = performance.now() - started;
  return r;
}

function draw(source, r) {
  const canvas = $('view');
  canvas.width = r.width;
  canvas.height = r.height;
  const g = canvas.getContext('2d');
  g.drawImage(source, 0, 0, r.width, r.height);
  const line = Math.max(2, Math.round(Math.max(r.width, r.height) / 400));
  g.lineWidth = line;
  g.font = `${6 * line + 4}px system-ui, sans-serif`;
  for (const face of Object.values(r.faces)) {
    const [x1, y1, x2, y2] = face.box;
    g.strokeStyle = '#0c0';
    g.strokeRect(x1, y1, x2 - x1, y2 - y1);
    g.fillStyle = '#0c0';
    g.fillText(face.score.toFixed(3), x1, Math.max(y1 - 2 * line, 6 * line + 4));
    POINT_NAMES.forEach((name, i) => {
      const [x, y] = face.landmarks[name];
      g.fillStyle = POINT_COLOURS[i];
      g.beginPath();
      g.arc(x, y, 1.5 * line, 0, 2 * Math.PI);
      g.fill();
    });
  }
  $('hint').hidden = true;
  $('result').textContent = JSON.stringify(r.faces, null, 2);
}

function showTiming(r) {
  const n = Object.keys(r.faces).length;
  const gpu = r.gpuMs == null ? '' : `GPU ${r.gpuMs.toFixed(1)} ms, `;
  $('timing-line').textContent = `${n} face${n === 1 ? '' : 's'}; ${r.width}x${r.height} ` +
    `picture, ${r.netWidth}x${r.netHeight} network input; ${gpu}${r.wallMs.toFixed(1)} ms ` +
    'from the call to the faces';
}

async function detectPhoto(blob) {
  stopWebcam();
  try {
    const bitmap = await bitmapOf(blob);
    const r = await detect(bitmap, detector.canTime);
    draw(bitmap, r);
    showTiming(r);
    bitmap.close();
  } catch (e) {
    setStatus(`error: ${e.message ?? e}`, true);
  }
}

let webcam = null;

async function startWebcam() {
  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  const video = document.createElement('video');
  video.muted = true;
  video.playsInline = true;
  video.srcObject = stream;
  await video.play();
  webcam = { stream, video };
  $('webcam').textContent = 'Stop the webcam';
  // One frame at a time: the next is taken when the last one's faces are drawn. The frame
  // becomes a bitmap first, so the boxes are drawn over the very frame they were found in.
  while (webcam && webcam.video === video) {
    const frame = await createImageBitmap(video);
    const r = await detect(frame, detector.canTime);
    if (webcam && webcam.video === video) {
      draw(frame, r);
      showTiming(r);
    }
    frame.close();
    await new Promise(requestAnimationFrame);
  }
}

function stopWebcam() {
  if (!webcam) return;
  webcam.stream.getTracks().forEach((t) => t.stop());
  webcam = null;
  $('webcam').textContent = 'Start the webcam';
}

function interactive() {
  $('file').addEventListener('change', (e) => {
    if (e.target.files.length) detectPhoto(e.target.files[0]);
  });
  const stage = $('stage');
  stage.addEventListener('dragover', (e) => { e.preventDefault(); stage.classList.add('over'); });
  stage.addEventListener('dragleave', () => stage.classList.remove('over'));
  stage.addEventListener('drop', (e) => {
    e.preventDefault();
    stage.classList.remove('over');
    const file = [...e.dataTransfer.files].find((f) => f.type.startsWith('image/'));
    if (file) detectPhoto(file);
  });
  const button = $('webcam');
  button.disabled = !navigator.mediaDevices?.getUserMedia;
  button.addEventListener('click', () => {
    if (webcam) {
      stopWebcam();
    } else {
      startWebcam().catch((e) => {
        stopWebcam();
        setStatus(`webcam: ${e.message ?? e}`, true);
      });
    }
  });
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : null;
}

async function testMode() {
  for (const [key, id] of [['threshold', 'threshold'], ['resize', 'resize']]) {
    if (params.has(key)) {
      const el = $(id);
      if (id === 'resize' && ![...el.options].some((o) => o.value === params.get(key))) {
        el.add(new Option(params.get(key), params.get(key)));
      }
      el.value = params.get(key);
    }
  }
  const response = await fetch(params.get('image'));
  if (!response.ok) throw new Error(`cannot fetch ${params.get('image')}: HTTP ${response.status}`);
  const bitmap = await bitmapOf(await response.blob());
  const first = await detect(bitmap, false);
  draw(bitmap, first);
  showTiming(first);
  const repeat = Number(params.get('repeat') ?? 0);
  if (repeat > 0) {
    const wall = [];
    const gpu = [];
    for (let i = 0; i < repeat; i++) wall.push((await detect(bitmap, false)).wallMs);
    if (detector.canTime) {
      for (let i = 0; i < repeat; i++) gpu.push((await detect(bitmap, true)).gpuMs);
    }
    $('timing').textContent = JSON.stringify({
      adapter: await adapterName(),
      kernelPath: detector.kernelPath,
      model: detector.model,
      width: first.width,
      height: first.height,
      netWidth: first.netWidth,
      netHeight: first.netHeight,
      firstMs: first.wallMs,
      wallMs: wall,
      gpuMs: gpu,
      medianWallMs: median(wall),
      medianGpuMs: median(gpu),
    });
  }
}

async function main() {
  try {
    await loadDetector();
  } catch (e) {
    setStatus(`error: ${e.message ?? e}`, true);
    if (params.has('image')) document.title = `error: ${e.message ?? e}`;
    return;
  }
  if (!params.has('image')) {
    interactive();
    return;
  }
  try {
    await testMode();
    document.title = 'done';
  } catch (e) {
    $('result').textContent = '';
    setStatus(`error: ${e.message ?? e}`, true);
    document.title = `error: ${e.message ?? e}`;
  }
}

main();

// The code explorer's script. explorer.py puts it into the page after the data block it reads;
// plain DOM and canvas, no library. docs/explorer.md describes the page.
'use strict';

const data = JSON.parse(document.getElementById('data').textContent);
const el = id => document.getElementById(id);
const PIXELS = 784, STRIP_STEPS = 10, SIZE = 600, POINT = data.count > 1000 ? 3 : 6;
const CENTRAL = [0.005, 0.995];   // the quantiles the sliders and the view span, as in the figures
const is3D = data.units === 3;   // a 3-D scatter of the codes; else their first two principal components
const state = { yaw: is3D ? -0.6 : 0, pitch: is3D ? 0.45 : Math.PI / 2, zoom: 1,
                hidden: new Set(), hover: -1, picks: [], cursor: null };
let codes, labels, images, layers;   // the test set and the decoder, unpacked
let ranges, normalize, points, screen;   // units' central 99 %; view scaling; view places; canvas places

// -- Data: base64 arrays, and the images in one PNG the browser has decoded ---------------------

function bytes(base64) {
  const text = atob(base64), out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}
const floats = base64 => new Float32Array(bytes(base64).buffer);

function unpack12(packed, n) {   // two signed 12-bit integers in three bytes, as explorer.py packs them
  const q = new Int16Array(n + 1);
  for (let i = 0, j = 0; i < n; i += 2, j += 3) {
    q[i] = (packed[j] | (packed[j + 1] & 15) << 8) << 20 >> 20;
    q[i + 1] = (packed[j + 1] >> 4 | packed[j + 2] << 4) << 20 >> 20;
  }
  return q;
}

const readDecoder = () => data.decoder.map(layer => ({
  rows: layer.rows, cols: layer.cols, weights: unpack12(bytes(layer.weights), layer.rows * layer.cols),
  scales: floats(layer.scales), biases: floats(layer.biases),
}));

function readImages() {   // the sprite's 28x28 tiles, row by row, as bytes (pixel = byte/256)
  const sprite = el('sprite'), canvas = document.createElement('canvas'), columns = sprite.naturalWidth / 28;
  [canvas.width, canvas.height] = [sprite.naturalWidth, sprite.naturalHeight];
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(sprite, 0, 0);
  const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data, out = new Uint8Array(data.count * PIXELS);
  out.forEach((_, k) => {
    const i = Math.floor(k / PIXELS), p = k % PIXELS;
    const x = (i % columns) * 28 + p % 28, y = Math.floor(i / columns) * 28 + Math.floor(p / 28);
    out[k] = rgba[4 * (y * canvas.width + x)];
  });
  return out;
}

const codeOf = i => codes.subarray(i * data.units, (i + 1) * data.units);
const imageOf = i => Array.from(images.subarray(i * PIXELS, (i + 1) * PIXELS), b => b / 256);
const caption = i => (data.legend === 'digit' ? 'digit ' : '') + data.classes[labels[i]];
const format = code => Array.from(code, v => v.toPrecision(3)).join(', ');
const thousands = n => n.toLocaleString('en-US');
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

function quantile(values, p) {   // numpy's default: linear between the two nearest ranks
  const sorted = Float64Array.from(values).sort(), at = p * (sorted.length - 1), i = Math.floor(at);
  return sorted[i] + (at - i) * ((sorted[i + 1] ?? sorted[i]) - sorted[i]);
}

// -- The decoder: dense layers with batch norm folded in, ReLU between, a sigmoid at the end -------

function decode(code) {
  let h = Float64Array.from(code);
  layers.forEach((layer, k) => {
    const out = new Float64Array(layer.rows), last = k === layers.length - 1;
    for (let r = 0; r < layer.rows; r++) {
      let sum = 0;
      for (let c = 0, i = r * layer.cols; c < layer.cols; c++, i++) sum += layer.weights[i] * h[c];
      const v = sum * layer.scales[r] + layer.biases[r];
      out[r] = last ? 1 / (1 + Math.exp(-v)) : Math.max(v, 0);
    }
    h = out;
  });
  return h;
}

function drawImage(canvas, values, width = 28) {   // dark ink on white, as in the figures
  const image = canvas.getContext('2d').createImageData(width, values.length / width);
  values.forEach((v, p) => {
    image.data.fill(255 - Math.round(255 * clamp(v, 0, 1)), 4 * p, 4 * p + 3);
    image.data[4 * p + 3] = 255;
  });
  canvas.getContext('2d').putImageData(image, 0, 0);
}

// -- The scatter: codes (or their first two principal components) turned, zoomed and projected -----

function view(code) {   // a code's place in the view, before scaling (a 1-unit code has one component)
  if (is3D) return Array.from(code);
  const [one, two = 0] = data.pca.axes.map(axis => axis.reduce((s, a, u) => s + a * (code[u] - data.pca.mean[u]), 0));
  return [one, two, 0];
}

function normalizer(views) {   // each view axis's central 99 % to -1..1, so outliers do not squeeze the rest
  const bounds = [0, 1, 2].map(a => CENTRAL.map(p => quantile(views.map(v => v[a]), p)));
  return v => v.map((x, a) => (2 * x - bounds[a][0] - bounds[a][1]) / (bounds[a][1] - bounds[a][0] || 1));
}

function project([a, b, c]) {   // turn about the third axis, tilt, scale: [x, y, depth] on the canvas
  const cy = Math.cos(state.yaw), sy = Math.sin(state.yaw), cp = Math.cos(state.pitch), sp = Math.sin(state.pitch);
  const a1 = cy * a - sy * b, b1 = sy * a + cy * b, scale = (is3D ? 0.27 : 0.35) * SIZE * state.zoom;
  return [SIZE / 2 + scale * a1, SIZE / 2 - scale * (cp * c + sp * b1), sp * c - cp * b1];
}

const AXES = is3D ? ['unit 1', 'unit 2', 'unit 3'] : ['PC 1', 'PC 2'];
const ORIGIN = [-1, -1, is3D ? -1 : 0];   // the corner the axes start from
const along = (a, to) => ORIGIN.map((v, k) => (k === a ? to : v));

function line(ctx, from, to, color) {
  const [x0, y0] = project(from), [x1, y1] = project(to);
  ctx.strokeStyle = color;
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
}

function drawBox(ctx) {   // the edges of the central 99 % box, and the axes darker
  for (let corner = 0; corner < 2 ** AXES.length; corner++) {
    const from = ORIGIN.map((v, a) => (corner >> a & 1 ? 1 : v));
    AXES.forEach((_, a) => from[a] < 0 && line(ctx, from, from.map((v, k) => (k === a ? 1 : v)), '#e4e4e4'));
  }
  AXES.forEach((_, a) => line(ctx, ORIGIN, along(a, 1.15), '#888'));
}

function cross(ctx, [x, y]) {
  ctx.strokeStyle = '#000';
  ctx.beginPath();
  ctx.moveTo(x - 10, y);
  ctx.lineTo(x + 10, y);
  ctx.moveTo(x, y - 10);
  ctx.lineTo(x, y + 10);
  ctx.stroke();
}

function labelAxes(ctx) {   // on a white halo, readable over the points
  Object.assign(ctx, { font: '12px sans-serif', fillStyle: '#333', strokeStyle: '#fff', lineWidth: 3 });
  AXES.forEach((name, a) => {
    const [x, y] = project(along(a, 1.2));
    ctx.strokeText(name, x, y);
    ctx.fillText(name, x, y);
  });
  ctx.lineWidth = 1;
}

function ring(ctx, [x, y], radius, color) {
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.arc(x, y, radius, 0, 2 * Math.PI);
  ctx.stroke();
  ctx.lineWidth = 1;
}

function draw() {
  const canvas = el('scatter'), ctx = canvas.getContext('2d'), ratio = window.devicePixelRatio || 1;
  if (canvas.width !== SIZE * ratio) canvas.width = canvas.height = SIZE * ratio;   // sharp on dense screens
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, SIZE, SIZE);
  drawBox(ctx);
  screen = points.map(project);
  const shown = [...points.keys()].filter(i => !state.hidden.has(labels[i]));
  for (const i of shown.sort((i, j) => screen[i][2] - screen[j][2])) {   // far ones first
    ctx.fillStyle = data.colors[labels[i]];
    ctx.fillRect(screen[i][0] - POINT / 2, screen[i][1] - POINT / 2, POINT, POINT);
  }
  state.picks.forEach(i => ring(ctx, screen[i], 7, '#000'));
  if (state.hover >= 0) ring(ctx, screen[state.hover], 9, '#555');
  cross(ctx, project(normalize(view(state.cursor))));
  labelAxes(ctx);
}

function nearest(event) {   // the shown point within 8 px of the pointer, else -1
  const box = el('scatter').getBoundingClientRect(), x = event.clientX - box.left, y = event.clientY - box.top;
  let best = -1, distance = 64;
  screen.forEach(([px, py], i) => {
    const d = (px - x) ** 2 + (py - y) ** 2;
    if (d < distance && !state.hidden.has(labels[i])) [best, distance] = [i, d];
  });
  return best;
}

// -- Pointer drags: the scatter turns, a code cell changes its value -----------------------------

let drag = null;
function startDrag(event, move, end = () => {}) {
  drag = { x: event.clientX, y: event.clientY, moved: false, move, end };
  event.preventDefault();
}
addEventListener('pointermove', e => {
  if (!drag) return;
  const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
  drag.moved = drag.moved || Math.abs(dx) + Math.abs(dy) > 3;
  if (drag.moved) drag.move(dx, dy);
});
addEventListener('pointerup', e => {
  if (drag) drag.end(drag.moved, e);
  drag = null;
});

function setupScatter() {
  const canvas = el('scatter');
  canvas.addEventListener('pointerdown', e => {
    const { yaw, pitch } = state;
    startDrag(e, (dx, dy) => {
      if (!is3D) return;
      state.yaw = yaw + dx * 0.01;
      state.pitch = clamp(pitch + dy * 0.01, -Math.PI / 2, Math.PI / 2);
      draw();
    }, (moved, up) => moved || pick(nearest(up)));
  });
  canvas.addEventListener('pointermove', e => drag || hover(nearest(e)));
  canvas.addEventListener('pointerleave', () => hover(-1));
  canvas.addEventListener('wheel', e => {
    e.preventDefault();
    state.zoom *= Math.exp(-(e.deltaMode === 1 ? 33 : 1) * e.deltaY * 0.001);   // lines or pixels
    draw();
  }, { passive: false });
  data.classes.forEach((name, k) => {
    const button = document.createElement('button'), swatch = document.createElement('span');
    swatch.style.background = data.colors[k];
    button.append(swatch, name);
    button.addEventListener('click', () => {
      state.hidden.has(k) ? state.hidden.delete(k) : state.hidden.add(k);
      button.classList.toggle('off', state.hidden.has(k));
      draw();
    });
    el('legend').append(button);
  });
  el('hint').textContent = (is3D ? 'Drag to turn the codes, wheel to zoom. ' :
    'The codes\u2019 first two principal components; wheel to zoom. ') +
    'Hover over a point to see its image; click it to pick it and set the cursor (+) to its code. ' +
    `The legend hides and shows ${data.legend === 'digit' ? 'digits' : 'classes'}.`;
}

// -- The panels: the point under the pointer, the cursor, the strip between two picks ------------

let shownPoint = -1;
function hover(i) {
  if (i === state.hover) return;
  state.hover = i;
  showPoint();
  draw();
}

function showPoint() {
  const i = state.hover >= 0 ? state.hover : state.picks.at(-1) ?? -1;
  if (i < 0 || i === shownPoint) return;
  shownPoint = i;
  const image = imageOf(i), output = decode(codeOf(i));
  drawImage(el('input'), image);
  drawImage(el('output'), output);
  const error = image.reduce((sum, v, p) => sum + (v - output[p]) ** 2, 0) / PIXELS;
  el('point').textContent = `${caption(i)}, test image ${thousands(i + 1)} of ${thousands(data.count)}; ` +
    `code (${format(codeOf(i))}); squared error ${error.toFixed(4)} a pixel`;
}

function pick(i) {
  if (i < 0) return;
  state.picks = [...state.picks, i].slice(-2);
  showPoint();
  setCursor(codeOf(i));
  drawStrip();
}

function setupControls() {
  const box = el('controls');
  if (data.side) {   // image codes: a KxK grid of cells, dragged up or down
    const cell = Math.max(18, Math.floor(200 / data.side));
    box.innerHTML = `<div id="cells" style="grid-template-columns: repeat(${data.side}, ${cell}px)"></div>`;
    ranges.forEach((_, u) => {
      const div = document.createElement('div');
      div.style.height = `${cell}px`;
      div.addEventListener('pointerdown', e => {
        const start = state.cursor[u];
        startDrag(e, (dx, dy) => setUnit(u, clamp(start - dy / 100, 0, 1)));
      });
      el('cells').append(div);
    });
  } else {   // vector codes: a slider over each unit's central 99 %
    ranges.forEach(([lo, hi], u) => {
      const label = document.createElement('label');
      label.innerHTML = `unit ${u + 1} <input type="range" min="${lo}" max="${hi}" step="${(hi - lo) / 1000}">` +
        '<output></output>';
      label.querySelector('input').addEventListener('input', e => setUnit(u, Number(e.target.value)));
      box.append(label);
    });
  }
}

function setUnit(u, value) {
  state.cursor[u] = value;
  showCursor();
}

function setCursor(code) {
  state.cursor = Float32Array.from(code);
  showCursor();
}

function showCursor() {
  drawImage(el('decoded'), decode(state.cursor));
  if (data.side) {
    el('cells').childNodes.forEach((div, u) => {
      const v = state.cursor[u];
      div.style.background = `rgb(${[0, 0, 0].fill(255 - Math.round(255 * v))})`;
      div.style.color = v > 0.5 ? '#fff' : '#000';
      div.textContent = data.side <= 8 ? v.toFixed(2) : '';
    });
    el('cursor-text').textContent = 'Drag a cell up or down to change its value (black = 1, white = 0).';
  } else {
    el('controls').querySelectorAll('label').forEach((label, u) => {
      label.querySelector('input').value = state.cursor[u];
      label.querySelector('output').textContent = state.cursor[u].toPrecision(3);
    });
    el('cursor-text').textContent = `code (${format(state.cursor)})`;
  }
  draw();
}

function drawStrip() {
  if (state.picks.length < 2) return;
  const [a, b] = state.picks.map(codeOf), strip = new Float64Array(PIXELS * STRIP_STEPS);
  for (let s = 0; s < STRIP_STEPS; s++) {
    const t = s / (STRIP_STEPS - 1);
    decode(a.map((v, u) => v + t * (b[u] - v))).forEach((v, p) => {
      strip[Math.floor(p / 28) * 28 * STRIP_STEPS + 28 * s + p % 28] = v;
    });
  }
  drawImage(el('strip'), strip, 28 * STRIP_STEPS);
  const [i, j] = state.picks;
  el('strip-text').textContent = `From ${caption(i)} (test image ${thousands(i + 1)}) to ${caption(j)} ` +
    `(test image ${thousands(j + 1)}): ${STRIP_STEPS} codes evenly spaced on the line between theirs.`;
}

function showNumbers() {
  const q = data.quality, trained = data.limit ? `, on ${thousands(data.limit)} training images` : '';
  el('numbers').textContent = `Test MSE ${q.test_mse.toFixed(4)} (PCA with ${data.units} components: ` +
    `${q.pca_test_mse.toFixed(4)}). ${data.knn}-NN ${data.legend} accuracy of the code ` +
    `${q.knn_accuracy.toFixed(3)} (PCA's ${q.pca_knn_accuracy.toFixed(3)}). ${data.dataset}, ${data.epochs} ` +
    `of the ${data.recipe} recipe${trained}; ${thousands(data.count)} ${data.testSet}.`;
}

// -- #demo and #selftest: a scripted interaction through real DOM events, and the checks ---------

function hash(id) {   // FNV-1a of a canvas's pixels: tells whether a drawing changed
  const canvas = el(id), pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let h = 2166136261;
  for (const v of pixels) h = Math.imul(h ^ v, 16777619);
  return (h >>> 0).toString(16);
}

function pointer(target, type, x, y) {
  target.dispatchEvent(new PointerEvent(type, { clientX: x, clientY: y, bubbles: true, cancelable: true }));
}

function dragOn(target, x, y, dx, dy) {
  pointer(target, 'pointerdown', x, y);
  pointer(target, 'pointermove', x + dx, y + dy);
  pointer(target, 'pointerup', x + dx, y + dy);
}

function interact() {
  const record = {}, canvas = el('scatter'), box = canvas.getBoundingClientRect();
  const change = (name, ids, act) => {
    const before = ids.map(hash);
    act();
    record[name] = { before, after: ids.map(hash) };
  };
  const click = i => dragOn(canvas, box.left + screen[i][0], box.top + screen[i][1], 0, 0);
  if (!data.side) {
    change('sliders', ['decoded', 'scatter'], () => el('controls').querySelectorAll('input').forEach(slider => {
      slider.value = 0.75 * Number(slider.min) + 0.25 * Number(slider.max);
      slider.dispatchEvent(new Event('input', { bubbles: true }));
    }));
  }
  const last = data.count - 1, [x, y] = [box.left + screen[last][0], box.top + screen[last][1]];
  change('hover', ['input', 'output'], () => pointer(canvas, 'pointermove', x, y));
  pointer(canvas, 'pointerleave', x, y);
  const wheel = deltaY => canvas.dispatchEvent(new WheelEvent('wheel', { deltaY, cancelable: true }));
  change('zoom', ['scatter'], () => wheel(-200));
  wheel(200);
  const legend = el('legend').children[labels[0]];   // the first image's class: hidden, then shown again
  change('legend', ['scatter'], () => legend.click());
  legend.click();
  const other = Math.max(0, labels.findIndex(label => label !== labels[0]));
  change('pick', ['input', 'output', 'decoded'], () => click(0));
  change('secondPick', ['strip', 'decoded'], () => click(other));
  if (is3D) change('rotate', ['scatter'], () => dragOn(canvas, box.left + 300, box.top + 300, 40, 20));
  if (data.side) {
    const cell = el('cells').firstChild.getBoundingClientRect();
    change('cell', ['decoded'], () => dragOn(el('cells').firstChild, cell.left + 5, cell.top + 5, 0, -40));
  }
  record.picks = state.picks;
  return record;
}

function selfTest(result) {   // decodings of 100 random codes in the test codes' range, timings, images
  let seed = 20;
  const random = () => (seed = (seed * 1664525 + 1013904223) % 4294967296) / 4294967296;
  const tests = Array.from({ length: 100 }, () => Float32Array.from(ranges, ([lo, hi]) => lo + random() * (hi - lo)));
  result.codes = tests.map(code => Array.from(code));
  result.decoded = tests.map(code => Array.from(decode(code), v => Math.round(v * 1e6) / 1e6));
  const times = tests.slice(0, 31).map(code => {
    const start = performance.now();
    decode(code);
    return performance.now() - start;
  });
  result.decodeMs = quantile(times, 0.5);
  result.imageChecksum = images.reduce((sum, byte, k) => sum + byte * (k % 251 + 1), 0);   // read back exactly?
  result.scatter = el('scatter').getBoundingClientRect().toJSON();
}

function report(result) {
  result.errors = pageErrors;
  el('selftest').textContent = JSON.stringify(result);
  el('selftest-summary').textContent = `Self-test: ${pageErrors.length} errors; ready after ` +
    `${Math.round(result.readyMs)} ms; decoding takes ${result.decodeMs?.toFixed(1)} ms a code (median).`;
}

function main() {
  [codes, labels, images, layers] = [floats(data.codes), bytes(data.labels), readImages(), readDecoder()];
  ranges = Array.from({ length: data.units }, (_, u) => {
    const values = Array.from({ length: data.count }, (_, i) => codes[i * data.units + u]);
    return CENTRAL.map(p => quantile(values, p));
  });
  const views = Array.from({ length: data.count }, (_, i) => view(codeOf(i)));
  normalize = normalizer(views);
  points = views.map(normalize);
  showNumbers();
  setupScatter();
  setupControls();
  setCursor(ranges.map(([lo, hi]) => (lo + hi) / 2));
  const result = { readyMs: performance.now() };
  if (location.hash === '#demo' || location.hash === '#selftest') result.interaction = interact();
  if (location.hash === '#selftest') {
    selfTest(result);
    report(result);
  }
}

// Everything runs once the page has loaded (the sprite with it), before headless Chromium's --dump-dom.
addEventListener('load', () => {
  try {
    main();
  } catch (error) {
    pageErrors.push(`the explorer could not start: ${error}`);
    el('numbers').textContent = pageErrors.at(-1);
    if (location.hash === '#selftest') report({});
  }
});

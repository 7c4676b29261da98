// The code explorer's script. explorer.py puts it into the page after the data block it reads;
// plain DOM and canvas, no library. docs/explorer.md describes the page; `window.explorer` is the
// small hook the tests and the benchmark call.
'use strict';

const el = id => document.getElementById(id);
const data = JSON.parse(el('data').textContent);
const PIXELS = 784, STRIP_STEPS = 10, GRID = 7, NEIGHBOURS = 8;
const ZOOM = [0.5, 40];                // the bounds of the zoom, 1 = the whole central box
const CENTRAL = [0.005, 0.995];        // the quantiles the view's box spans, as in the figures
const FLAT_FRAME = { left: 56, right: 10, top: 10, bottom: 38 };   // a 2-D view's ticks live in this frame
const TURN = { yaw: -0.6, pitch: 0.45 }, FLAT = { yaw: 0, pitch: Math.PI / 2 };
const is3D = data.units === 3;         // the units are the axes; else principal components are
const AXES = Math.min(3, data.units);
const GRID_ROWS = AXES > 1 ? GRID : 1;   // a 1-unit code's slice is a line
const state = { ...(is3D ? TURN : FLAT), zoom: 1, pan: [0, 0], flat: !is3D, axes: [0, 1, 2].slice(0, AXES),
                colorBy: 'class', hidden: new Set(), hover: -1, picks: [], cursor: null, cursorFrom: -1 };
let codes, labels, errors, images, layers;   // the test set and the decoder, unpacked
let ranges, bounds, points, screen = new Float64Array(0), labelBoxes = [], errorColors;
let size = 600;                        // the canvas's side in CSS pixels, as the page lays it out

// -- Data: arrays as text, the codes 16 bits a unit, the decoder Rice-coded, the images rANS-coded -

const TEXT_BASE = 0x100, TEXT_RADIX = 0xD800 - 0x100, TWO_32 = 2 ** 32;

function bytes(text) {   // explorer_codec.py's text: the byte count, a comma, 47 bits in 3 digits
  const comma = text.indexOf(','), out = new Uint8Array(Number(text.slice(0, comma)));
  let held = 0, bits = 0, o = 0;
  const push = (value, width) => {   // the next `width` bits, first bit first
    held = held << width | value;
    for (bits += width; bits >= 8 && o < out.length; bits -= 8) out[o++] = held >> (bits - 8) & 255;
    held &= (1 << bits) - 1;
  };
  for (let i = comma + 1; o < out.length; i += 3) {
    const digit = j => text.charCodeAt(i + j) - TEXT_BASE;
    const value = digit(0) + TEXT_RADIX * (digit(1) + TEXT_RADIX * digit(2));   // < 2**47: exact
    const high = Math.floor(value / TWO_32), low = value - high * TWO_32;
    push(high, 15);
    push(low >>> 16, 16);
    push(low & 0xffff, 16);
  }
  return out;
}
const floats = text => new Float32Array(bytes(text).buffer);
const bit = (packed, i) => packed[i >> 3] >> (7 - (i & 7)) & 1;   // NumPy's packbits order: first bit highest

function riceDecode(layer) {   // explorer_codec.py's Rice code: each row's k, the unary parts, the low bits
  const k = bytes(layer.k), unary = bytes(layer.unary), low = bytes(layer.low);
  const q = new Int32Array(layer.rows * layer.cols);
  let u = 0, l = 0;
  for (let r = 0, i = 0; r < layer.rows; r++) {
    for (const end = i + layer.cols; i < end; i++) {
      let zigzag = 0;
      while (bit(unary, u)) { zigzag++; u++; }
      u++;   // the zero that ends the unary part
      for (let b = 0; b < k[r]; b++, l++) zigzag = zigzag * 2 + bit(low, l);
      q[i] = zigzag % 2 ? -(zigzag + 1) / 2 : zigzag / 2;
    }
  }
  return q;
}

const readDecoder = () => data.decoder.map(layer => ({
  rows: layer.rows, cols: layer.cols, weights: riceDecode(layer), steps: floats(layer.steps),
  biases: floats(layer.biases),
}));

function readCodes() {   // explorer_codec.page_codes: a unit's lowest value plus its 16-bit level times its step
  const low = floats(data.codes.low), step = floats(data.codes.step);
  const levels = new Uint16Array(bytes(data.codes.levels).buffer);
  return Float32Array.from(levels, (level, i) => low[i % data.units] + level * step[i % data.units]);
}

const SCALE_BITS = 14, SLOTS = 1 << 14, STATE_LOW = 1 << 16, LEVELS = data.images.levelEdges.length + 1;

function frequencyModel(table, cols) {   // explorer_images.pack_table: frequencies, their starts, each slot's symbol
  const present = bytes(table.present), values = new Uint16Array(bytes(table.values).buffer), rows = table.rows;
  const frequencies = new Int32Array(rows * cols), starts = new Int32Array(rows * cols);
  const symbols = new Uint8Array(rows * SLOTS);
  for (let i = 0, v = 0, start = 0; i < rows * cols; i++) {
    if (i % cols === 0) start = 0;
    if (bit(present, i)) frequencies[i] = values[v++];
    starts[i] = start;
    symbols.fill(i % cols, (i / cols | 0) * SLOTS + start, (i / cols | 0) * SLOTS + start + frequencies[i]);
    start += frequencies[i];
  }
  return { frequencies, starts, symbols, cols };
}

function readImages() {   // explorer_images.py's rANS streams, decoded as decode_images does
  const im = data.images, levelModel = frequencyModel(im.levels, LEVELS), byteModel = frequencyModel(im.bytes, 256);
  const states = new Uint32Array(bytes(im.states).buffer), counts = new Uint32Array(bytes(im.counts).buffer);
  const words = new Uint16Array(bytes(im.words).buffer), out = new Uint8Array(data.count * PIXELS);
  const levels = new Uint8Array(out.length), perStream = im.imagesPerStream * PIXELS;
  let x, at, next = 0;
  const pop = (model, context) => {   // one symbol, and the state filled up again
    const slot = x & (SLOTS - 1), symbol = model.symbols[context * SLOTS + slot], i = context * model.cols + symbol;
    x = model.frequencies[i] * (x >>> SCALE_BITS) + slot - model.starts[i];
    if (x < STATE_LOW) x = x * 65536 + words[at++];
    return symbol;
  };
  states.forEach((state, s) => {
    [x, at, next] = [state, next, next + counts[s]];
    for (let k = s * perStream, end = Math.min(k + perStream, out.length); k < end; k++) {
      const row = Math.floor(k / 28) % 28, col = k % 28;
      const left = col ? levels[k - 1] : 0, up = row ? levels[k - 28] : 0;
      const upLeft = row && col ? levels[k - 29] : 0, upRight = row && col < 27 ? levels[k - 27] : 0;
      const level = pop(levelModel, ((left * LEVELS + up) * LEVELS + upLeft) * LEVELS + upRight);
      if (level) out[k] = pop(byteModel, (level * LEVELS + left) * LEVELS + up);
      levels[k] = level;
    }
  });
  return out;
}

const codeOf = i => codes.subarray(i * data.units, (i + 1) * data.units);
const imageBytes = i => images.subarray(i * PIXELS, (i + 1) * PIXELS);
const imageOf = i => Array.from(imageBytes(i), b => b / 256);
const className = k => (data.legend === 'digit' ? 'digit ' : '') + data.classes[k];
const caption = i => className(labels[i]);
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
    const active = [];   // ReLU leaves many inputs at zero: only the others are multiplied
    h.forEach((v, c) => v !== 0 && active.push(c));
    for (let r = 0; r < layer.rows; r++) {
      let sum = 0;
      const row = r * layer.cols;
      for (const c of active) sum += layer.weights[row + c] * h[c];
      const v = sum * layer.steps[r] + layer.biases[r];
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

// -- The view: three axes (units, or any three principal components), turned, zoomed and panned --

const axisName = k => (is3D ? `unit ${k + 1}` : `PC ${k + 1} (${(100 * data.pca.variance[k]).toFixed(1)} %)`);

function viewCoord(code, k) {   // a code's value on axis k: a unit, or its principal component k
  if (is3D) return code[k];
  const { mean, components } = data.pca;
  return components[k].reduce((s, a, u) => s + a * (code[u] - mean[u]), 0);
}

const toNormal = (value, a) => (2 * value - bounds[a][0] - bounds[a][1]) / (bounds[a][1] - bounds[a][0] || 1);
const fromNormal = (n, a) => bounds[a][0] + (n + 1) / 2 * (bounds[a][1] - bounds[a][0]);
const normalView = code => [0, 1, 2].map(a => (a < AXES ? toNormal(viewCoord(code, state.axes[a]), a) : 0));

function setAxes() {   // each shown axis's central 99 % to -1..1, so outliers do not squeeze the rest
  const values = state.axes.map(k => Array.from({ length: data.count }, (_, i) => viewCoord(codeOf(i), k)));
  bounds = values.map(v => CENTRAL.map(p => quantile(v, p)));
  points = new Float64Array(3 * data.count);
  values.forEach((v, a) => v.forEach((x, i) => { points[3 * i + a] = toNormal(x, a); }));
}

function frame() {   // the plotting area in CSS pixels: the whole canvas, or inside a 2-D view's ticks
  const f = state.flat ? FLAT_FRAME : { left: 0, right: 0, top: 0, bottom: 0 };
  return { x0: f.left, y0: f.top, x1: size - f.right, y1: size - f.bottom };
}

function camera() {
  const f = frame(), side = Math.min(f.x1 - f.x0, f.y1 - f.y0);
  return { x: (f.x0 + f.x1) / 2 + state.pan[0] * size, y: (f.y0 + f.y1) / 2 + state.pan[1] * size,
           scale: (state.flat ? 0.45 : 0.3) * side * state.zoom,
           cy: Math.cos(state.yaw), sy: Math.sin(state.yaw), cp: Math.cos(state.pitch), sp: Math.sin(state.pitch) };
}

function project([a, b, c], cam = camera()) {   // turn about the third axis, tilt: [x, y, depth] on the canvas
  const a1 = cam.cy * a - cam.sy * b, b1 = cam.sy * a + cam.cy * b;
  return [cam.x + cam.scale * a1, cam.y - cam.scale * (cam.cp * c + cam.sp * b1), cam.sp * c - cam.cp * b1];
}

function unproject(x, y, depth, cam = camera()) {   // the view point at canvas (x, y) and this depth
  const a1 = (x - cam.x) / cam.scale, up = (cam.y - y) / cam.scale;
  const c = cam.cp * up + cam.sp * depth, b1 = cam.sp * up - cam.cp * depth;
  return [cam.cy * a1 + cam.sy * b1, -cam.sy * a1 + cam.cy * b1, c];
}

function zoomAt(x, y, zoom) {   // the view point under (x, y) stays there
  const cam = camera(), next = clamp(zoom, ...ZOOM), f = next / state.zoom;
  state.pan = [state.pan[0] + (x - cam.x) * (1 - f) / size, state.pan[1] + (y - cam.y) * (1 - f) / size];
  state.zoom = next;
  draw();
}

function resetView() {
  Object.assign(state, state.flat ? FLAT : TURN, { zoom: 1, pan: [0, 0] });
  draw();
}

// -- Drawing the scatter, its box, ticks and labels ---------------------------------------------

function niceTicks(lo, hi, count) {   // round values between lo and hi, about `count` of them
  const raw = (hi - lo) / count, power = 10 ** Math.floor(Math.log10(raw));
  const step = power * ([1, 2, 5, 10].find(m => m * power >= raw) ?? 10);
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);   // no -0 from rounding
  }
  return ticks;
}
const tickText = v => String(Number(v.toPrecision(4)));

function text(ctx, words, places, always = true) {   // on a white box inside the canvas, at the first
  const width = ctx.measureText(words).width;          // of `places` where it covers no other label
  const boxes = places.map(([x, y, align = 'center']) => {
    const left = clamp(align === 'center' ? x - width / 2 : align === 'right' ? x - width : x, 2, size - width - 2);
    const top = clamp(y - 8, 2, size - 18);
    return { text: words, left: left - 2, top, right: left + width + 2, bottom: top + 16 };
  });
  const free = boxes.find(b => labelBoxes.every(o => b.right < o.left || o.right < b.left ||
                                                     b.bottom < o.top || o.bottom < b.top));
  const box = free ?? (always ? boxes[0] : null);
  if (!box) return;
  ctx.fillStyle = 'rgba(255,255,255,0.9)';
  ctx.fillRect(box.left, box.top, box.right - box.left, 16);
  ctx.fillStyle = '#333';
  ctx.fillText(words, box.left + 2, box.top + 12);
  labelBoxes.push(box);
}

function segment(ctx, [x0, y0], [x1, y1], color) {
  ctx.strokeStyle = color;
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
}

function drawBox(ctx, cam) {   // the edges of the central 99 % box
  for (let corner = 0; corner < 8; corner++) {
    const from = [0, 1, 2].map(a => (corner >> a & 1 ? 1 : -1));
    [0, 1, 2].forEach(a => from[a] < 0 && segment(ctx, project(from, cam),
      project(from.map((v, k) => (k === a ? 1 : v)), cam), '#ddd'));
  }
}

function labelTurned(ctx, cam) {   // ticks and names on each axis's outermost box edge, pointing outwards
  const centre = project([0, 0, 0], cam);
  for (let a = 0; a < AXES; a++) {
    const edges = [[-1, -1], [-1, 1], [1, -1], [1, 1]].map(([s, t]) => {
      const point = n => [0, 1, 2].map(k => (k === a ? n : k === (a + 1) % 3 ? s : t));
      const mid = project(point(0), cam);
      return { point, mid, far: Math.hypot(mid[0] - centre[0], mid[1] - centre[1]) + mid[1] * 1e-3 };
    });
    const edge = edges.reduce((best, e) => (e.far > best.far ? e : best));
    const [ends0, ends1] = [project(edge.point(-1), cam), project(edge.point(1), cam)];
    const length = Math.hypot(ends1[0] - ends0[0], ends1[1] - ends0[1]);
    if (length < 40) continue;   // the axis points at the viewer
    let out = [edge.mid[0] - centre[0], edge.mid[1] - centre[1]];
    const norm = Math.hypot(...out) || 1;
    out = out.map(v => v / norm);
    segment(ctx, ends0, ends1, '#888');
    niceTicks(...bounds[a], Math.max(2, Math.round(length / 90))).forEach(v => {
      const [x, y] = project(edge.point(toNormal(v, a)), cam);
      segment(ctx, [x, y], [x + 5 * out[0], y + 5 * out[1]], '#888');
      const away = 10 + Math.abs(out[0]) * ctx.measureText(tickText(v)).width / 2 + Math.abs(out[1]) * 8;
      text(ctx, tickText(v), [[x + away * out[0], y + away * out[1]]], false);
    });
    const name = axisName(state.axes[a]), away = 30 + Math.abs(out[0]) * ctx.measureText(name).width / 2;
    text(ctx, name, [0, 0.3, -0.3, 0.6, -0.6, 0.9, -0.9].map(t => {   // the middle of the edge, else along it
      const [x, y] = project(edge.point(t), cam);
      return [x + away * out[0], y + away * out[1]];
    }));
  }
}

function labelFlat(ctx, cam) {   // a 2-D view: ticks in the frame, outside the points
  const f = frame(), corner = unproject(f.x0, f.y1, 0, cam), far = unproject(f.x1, f.y0, 0, cam);
  ctx.strokeStyle = '#888';
  ctx.strokeRect(f.x0, f.y0, f.x1 - f.x0, f.y1 - f.y0);
  const axes = [[0, corner[0], far[0]], [1, corner[1], far[1]]].slice(0, AXES);
  axes.forEach(([a, lo, hi]) => niceTicks(fromNormal(lo, a), fromNormal(hi, a), 6).forEach(v => {
    const p = project(a === 0 ? [toNormal(v, 0), 0, 0] : [0, toNormal(v, 1), 0], cam);
    if (a === 0) {
      segment(ctx, [p[0], f.y1], [p[0], f.y1 + 4], '#888');
      text(ctx, tickText(v), [[p[0], f.y1 + 12]], false);
    } else {
      segment(ctx, [f.x0 - 4, p[1]], [f.x0, p[1]], '#888');
      text(ctx, tickText(v), [[f.x0 - 6, p[1], 'right']], false);
    }
  }));
  text(ctx, axisName(state.axes[0]), [[(f.x0 + f.x1) / 2, size - 9]]);
  if (AXES > 1) {
    const name = axisName(state.axes[1]), width = ctx.measureText(name).width;
    ctx.save();
    ctx.translate(10, (f.y0 + f.y1) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillStyle = '#333';
    ctx.fillText(name, -width / 2, 4);
    ctx.restore();
    const middle = (f.y0 + f.y1) / 2;
    labelBoxes.push({ text: name, left: 2, top: middle - width / 2, right: 16, bottom: middle + width / 2 });
  }
}

function ring(ctx, [x, y], radius, color) {
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.arc(x, y, radius, 0, 2 * Math.PI);
  ctx.stroke();
  ctx.lineWidth = 1;
}

function cross(ctx, [x, y]) {   // the code cursor: black on a white halo, visible on any point
  [['#fff', 5], ['#000', 2]].forEach(([color, width]) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.beginPath();
    ctx.moveTo(x - 11, y);
    ctx.lineTo(x + 11, y);
    ctx.moveTo(x, y - 11);
    ctx.lineTo(x, y + 11);
    ctx.stroke();
  });
  ctx.lineWidth = 1;
}

const shownPoint = i => !state.hidden.has(labels[i]);
const colorOf = i => (state.colorBy === 'error' ? errorColors[i] : data.colors[labels[i]]);

function draw() {
  const canvas = el('scatter'), ctx = canvas.getContext('2d'), ratio = window.devicePixelRatio || 1;
  size = canvas.clientWidth || size;
  const pixels = Math.round(size * ratio);
  if (canvas.width !== pixels) canvas.width = canvas.height = pixels;   // sharp on dense screens
  ctx.setTransform(pixels / size, 0, 0, pixels / size, 0, 0);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, size, size);
  const cam = camera(), f = frame(), dot = data.count > 1000 ? clamp(size / 200, 2, 4) : 6;
  ctx.save();
  ctx.beginPath();
  ctx.rect(f.x0, f.y0, f.x1 - f.x0, f.y1 - f.y0);
  ctx.clip();
  if (!state.flat) drawBox(ctx, cam);
  screen = new Float64Array(3 * data.count);
  for (let i = 0; i < data.count; i++) screen.set(project(points.subarray(3 * i, 3 * i + 3), cam), 3 * i);
  const shown = [...Array(data.count).keys()].filter(shownPoint);
  if (!state.flat) shown.sort((i, j) => screen[3 * i + 2] - screen[3 * j + 2]);   // far ones first
  for (const i of shown) {
    ctx.fillStyle = colorOf(i);
    ctx.fillRect(screen[3 * i] - dot / 2, screen[3 * i + 1] - dot / 2, dot, dot);
  }
  state.picks.filter(shownPoint).forEach(i => ring(ctx, screenOf(i), 7, '#000'));
  if (state.hover >= 0) ring(ctx, screenOf(state.hover), 9, '#555');
  cross(ctx, cursorScreen(cam));
  ctx.restore();
  labelBoxes = [];
  ctx.font = '12px system-ui, sans-serif';
  (state.flat ? labelFlat : labelTurned)(ctx, cam);
}

const screenOf = i => [screen[3 * i], screen[3 * i + 1]];
const cursorScreen = (cam = camera()) => project(normalView(state.cursor), cam);

function canvasPoint(event) {   // CSS pixels on the canvas, inside its border
  const canvas = el('scatter'), box = canvas.getBoundingClientRect();
  return [event.clientX - box.left - canvas.clientLeft, event.clientY - box.top - canvas.clientTop];
}

function nearest([x, y], radius) {   // the shown point nearest (x, y) within `radius` px, else -1
  let best = -1, distance = radius * radius;
  for (let i = 0; i < data.count; i++) {
    const d = (screen[3 * i] - x) ** 2 + (screen[3 * i + 1] - y) ** 2;
    if (d < distance && shownPoint(i)) [best, distance] = [i, d];
  }
  return best;
}

// -- Pointers: turn, pan, pinch, place or drag the cursor, pick ---------------------------------

const pointers = new Map();
let gesture = null;

function setupScatter() {
  const canvas = el('scatter');
  canvas.addEventListener('pointerdown', event => {
    if (event.button !== 0) return;   // a right click opens the menu, and picks nothing
    event.preventDefault();
    canvas.focus();
    canvas.setPointerCapture(event.pointerId);
    const p = canvasPoint(event), [cx, cy] = cursorScreen();
    pointers.set(event.pointerId, p);
    if (pointers.size === 2) {
      const [a, b] = pointers.values();
      gesture = { kind: 'pinch', distance: Math.hypot(a[0] - b[0], a[1] - b[1]) || 1, zoom: state.zoom,
                  pan: [...state.pan], middle: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2], moved: true };
      return;
    }
    const kind = Math.hypot(p[0] - cx, p[1] - cy) <= 14 ? 'cursor' : state.flat || event.shiftKey ? 'pan' : 'turn';
    gesture = { kind, start: p, moved: false, yaw: state.yaw, pitch: state.pitch, pan: [...state.pan],
                touch: event.pointerType === 'touch' };
  });
  canvas.addEventListener('pointermove', event => {
    const p = canvasPoint(event);
    if (!pointers.has(event.pointerId)) return hover(nearest(p, 10));
    pointers.set(event.pointerId, p);
    if (gesture.kind === 'pinch') return pinch();
    const dx = p[0] - gesture.start[0], dy = p[1] - gesture.start[1];
    gesture.moved = gesture.moved || Math.abs(dx) + Math.abs(dy) > 4;
    if (!gesture.moved) return;
    if (gesture.kind === 'cursor') return placeCursor(p);
    if (gesture.kind === 'turn') {
      state.yaw = gesture.yaw + dx * 0.01;
      state.pitch = clamp(gesture.pitch + dy * 0.01, -Math.PI / 2, Math.PI / 2);
    } else {
      state.pan = [gesture.pan[0] + dx / size, gesture.pan[1] + dy / size];
    }
    draw();
  });
  const release = event => {
    if (!pointers.delete(event.pointerId)) return;
    if (gesture && !gesture.moved && event.type === 'pointerup') {
      const p = canvasPoint(event), i = nearest(p, gesture.touch ? 16 : 10);
      i >= 0 ? pick(i) : placeCursor(p);
    }
    if (pointers.size === 0) gesture = null;
    else if (gesture?.kind === 'pinch') gesture = { kind: 'pan', start: [...pointers.values()][0], moved: true,
                                                    pan: [...state.pan] };
  };
  canvas.addEventListener('pointerup', release);
  canvas.addEventListener('pointercancel', release);
  canvas.addEventListener('pointerleave', () => pointers.size || hover(-1));
  canvas.addEventListener('dblclick', resetView);
  canvas.addEventListener('wheel', event => {
    event.preventDefault();
    const [x, y] = canvasPoint(event);
    zoomAt(x, y, state.zoom * Math.exp(-(event.deltaMode === 1 ? 33 : 1) * event.deltaY * 0.001));   // lines or pixels
  }, { passive: false });
  canvas.addEventListener('keydown', keyboard);
  new ResizeObserver(() => draw()).observe(canvas);
  el('reset').addEventListener('click', resetView);
}

function pinch() {   // two fingers: the distance between them zooms, their middle pans
  const [a, b] = pointers.values(), g = gesture, middle = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
  const zoom = clamp(g.zoom * Math.hypot(a[0] - b[0], a[1] - b[1]) / g.distance, ...ZOOM), f = zoom / g.zoom;
  state.zoom = zoom;
  state.pan = g.pan;
  const cam = camera();   // where the view point under the fingers' first middle lands, then moved under the middle
  const x = middle[0] - (g.middle[0] - cam.x) * f, y = middle[1] - (g.middle[1] - cam.y) * f;
  state.pan = [g.pan[0] + (x - cam.x) / size, g.pan[1] + (y - cam.y) / size];
  draw();
}

function keyboard(event) {   // arrows move the cursor on the screen's plane; + and - zoom; 0 resets
  const step = (event.shiftKey ? 0.1 : 0.02) * size, [x, y] = cursorScreen();
  const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  if (moves[event.key]) placeCursor([x + moves[event.key][0], y + moves[event.key][1]]);
  else if (event.key === '+' || event.key === '=') zoomAt(size / 2, size / 2, state.zoom * 1.25);
  else if (event.key === '-') zoomAt(size / 2, size / 2, state.zoom / 1.25);
  else if (event.key === '0' || event.key === 'Home') resetView();
  else return;
  event.preventDefault();
}

function placeCursor([x, y]) {   // the code at (x, y) on the plane through the cursor that faces the viewer
  const view = unproject(x, y, cursorScreen()[2]), code = Float64Array.from(state.cursor);
  for (let a = 0; a < AXES; a++) {
    const k = state.axes[a], change = fromNormal(view[a], a) - viewCoord(code, k);
    if (is3D) code[k] += change;
    else data.pca.components[k].forEach((v, u) => { code[u] += change * v; });
  }
  setCursor(code.map((v, u) => clamp(v, ...ranges[u])), -1);
}

// -- The panels: the point under the pointer, the cursor, its neighbours and slice, the strip ----

let shownImage = -1;
function hover(i) {
  if (i === state.hover) return;
  state.hover = i;
  showPoint();
  draw();
}

function showPoint() {
  const i = state.hover >= 0 ? state.hover : state.picks.at(-1) ?? -1;
  if (i < 0 || i === shownImage) return;
  shownImage = i;
  drawImage(el('input'), imageOf(i));
  drawImage(el('output'), decode(codeOf(i)));
  el('input').setAttribute('aria-label', `test image ${thousands(i + 1)}, ${caption(i)}`);
  el('output').setAttribute('aria-label', `its reconstruction`);
  el('point').textContent = `${caption(i)}, test image ${thousands(i + 1)} of ${thousands(data.count)}; ` +
    `code (${format(codeOf(i))}); squared error ${errors[i].toFixed(4)} a pixel`;
}

function pick(i) {
  if (state.picks.at(-1) !== i) state.picks = [...state.picks, i].slice(-2);   // no line from a point to itself
  showPoint();
  setCursor(codeOf(i), i);
  drawStrip();
}

function setupControls() {
  const box = el('controls');
  if (data.side) {   // image codes: a KxK grid of cells, dragged up or down
    const cell = Math.max(28, Math.floor(200 / data.side));
    box.innerHTML = `<div id="cells" role="group" aria-label="code cells" ` +
      `style="grid-template-columns: repeat(${data.side}, ${cell}px)"></div>`;
    ranges.forEach((_, u) => {
      const div = document.createElement('div');
      div.style.height = `${cell}px`;
      div.addEventListener('pointerdown', event => {
        const start = state.cursor[u], y = event.clientY;
        div.setPointerCapture(event.pointerId);
        div.onpointermove = e => setUnit(u, clamp(start - (e.clientY - y) / 100, 0, 1));
        event.preventDefault();
      });
      div.addEventListener('pointerup', () => { div.onpointermove = null; });
      el('cells').append(div);
    });
  } else {   // vector codes: a slider over each unit's whole range in the test set
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
  const code = Float64Array.from(state.cursor);
  code[u] = value;
  setCursor(code, -1);
}

function setCursor(code, from) {
  state.cursor = Float64Array.from(code);
  state.cursorFrom = from;
  const decoded = decode(state.cursor);
  drawImage(el('decoded'), decoded);
  if (data.side) {
    el('cells').childNodes.forEach((div, u) => {
      const v = state.cursor[u];
      div.style.background = `rgb(${[0, 0, 0].fill(255 - Math.round(255 * v))})`;
      div.style.color = v > 0.5 ? '#fff' : '#000';
      div.textContent = data.side <= 4 ? v.toFixed(2) : data.side <= 8 ? v.toFixed(2).replace(/^0/, '') : '';
    });
  } else {
    el('controls').querySelectorAll('label').forEach((label, u) => {
      label.querySelector('input').value = state.cursor[u];
      label.querySelector('output').textContent = state.cursor[u].toPrecision(3);
    });
  }
  const near = showNeighbours();
  const votes = new Map();
  near.forEach(({ index }) => votes.set(labels[index], (votes.get(labels[index]) ?? 0) + 1));
  const [top, count] = [...votes].reduce((best, v) => (v[1] > best[1] ? v : best));
  const words = (data.side ? 'Drag a cell up or down (black = 1, white = 0). The decoding' :
    `Code (${format(state.cursor)}). Its decoding`) + ` is nearest to test images of ${className(top)} ` +
    `(${count} of the ${near.length} nearest).`;
  el('cursor-text').textContent = words;
  el('decoded').setAttribute('aria-label', words);
  scheduleGrid();
  draw();
}

function nearestCodes(code, k, except) {   // the k test codes nearest `code` (Euclidean), nearest first
  const best = [];
  for (let i = 0; i < data.count; i++) {
    if (i === except) continue;
    let d = 0;
    for (let u = 0, j = i * data.units; u < data.units; u++, j++) d += (codes[j] - code[u]) ** 2;
    if (best.length < k || d < best.at(-1).d) {
      best.splice(best.findIndex(b => b.d > d) >>> 0, 0, { index: i, d });   // -1 >>> 0 appends
      best.length = Math.min(best.length, k);
    }
  }
  return best.map(({ index, d }) => ({ index, distance: Math.sqrt(d) }));
}

function showNeighbours() {
  const near = nearestCodes(state.cursor, NEIGHBOURS, state.cursorFrom);
  el('neighbours').childNodes.forEach((button, n) => {
    const { index, distance } = near[n];
    button.dataset.index = index;
    button.dataset.distance = distance;
    drawImage(button.firstChild, imageOf(index));
    button.lastChild.textContent = `${data.classes[labels[index]]} \u00b7 ${distance.toPrecision(3)}`;
    button.setAttribute('aria-label', `test image ${thousands(index + 1)}, ${caption(index)}, ` +
      `distance ${distance.toPrecision(3)}`);
  });
  return near;
}

function setupNeighbours() {
  for (let n = 0; n < Math.min(NEIGHBOURS, data.count - 1); n++) {
    const button = document.createElement('button');
    button.type = 'button';
    button.innerHTML = '<canvas width="28" height="28"></canvas><span></span>';
    button.addEventListener('click', () => pick(Number(button.dataset.index)));
    el('neighbours').append(button);
  }
}

// The grid: the decodings of the plane through the cursor spanned by the first two axes, over the
// view's box, worked out a few cells at a time so the page stays responsive while the cursor moves.
let grid = { key: '', done: 0, codes: [] }, gridWaiters = [];

function gridCodes() {
  const codesOf = [];
  for (let row = 0; row < GRID_ROWS; row++) {
    for (let column = 0; column < GRID; column++) {
      const code = Float64Array.from(state.cursor), target = [column, GRID - 1 - row].slice(0, AXES).map(
        (step, a) => fromNormal(-1 + 2 * step / (GRID - 1), a));
      for (let a = 0; a < Math.min(2, AXES); a++) {
        const k = state.axes[a], change = target[a] - viewCoord(code, k);
        if (is3D) code[k] += change;
        else data.pca.components[k].forEach((v, u) => { code[u] += change * v; });
      }
      codesOf.push(code);
    }
  }
  return codesOf;
}

function scheduleGrid() {
  const codesOf = gridCodes(), key = codesOf.map(c => Array.from(c).join()).join(';');
  const mark = el('grid-mark'), [x, y] = [0, 1].map(a => a < AXES ? (toNormal(viewCoord(state.cursor,
    state.axes[a]), a) + 1) / 2 : 0.5);
  mark.style.left = `${100 * clamp(x, 0, 1)}%`;
  mark.style.top = `${100 * clamp(1 - y, 0, 1)}%`;
  el('grid-text').textContent = `${GRID}x${GRID_ROWS} codes evenly over the box of ${axisName(state.axes[0])}` +
    (AXES > 1 ? ` and ${axisName(state.axes[1])}` : '') + ', the other coordinates at the cursor\u2019s (+).';
  if (key === grid.key) return;
  const restart = grid.done >= grid.codes.length;
  grid = { key, done: 0, codes: codesOf, image: new Float64Array(GRID_ROWS * GRID * PIXELS) };
  if (restart) setTimeout(gridStep, 0);
}

function gridStep() {
  const start = performance.now();
  while (grid.done < grid.codes.length && performance.now() - start < 12) {
    const cell = grid.done++, row = Math.floor(cell / GRID), column = cell % GRID;
    decode(grid.codes[cell]).forEach((v, p) => {
      grid.image[(row * 28 + Math.floor(p / 28)) * 28 * GRID + column * 28 + p % 28] = v;
    });
  }
  drawImage(el('grid'), grid.image, 28 * GRID);
  if (grid.done < grid.codes.length) return setTimeout(gridStep, 0);
  gridWaiters.splice(0).forEach(resolve => resolve());
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
  const [i, j] = state.picks, words = `From ${caption(i)} (test image ${thousands(i + 1)}) to ${caption(j)} ` +
    `(test image ${thousands(j + 1)}): ${STRIP_STEPS} codes evenly spaced on the line between theirs.`;
  el('strip-text').textContent = words;
  el('strip').setAttribute('aria-label', words);
}

// -- The legend, colours, the choice of axes, finding an image ----------------------------------

const RAMP = ['#440154', '#3b528b', '#21918c', '#5ec962', '#fde725'];   // viridis, low to high error

function rampColor(t) {
  const at = clamp(t, 0, 1) * (RAMP.length - 1), k = Math.min(Math.floor(at), RAMP.length - 2), f = at - k;
  const [a, b] = [RAMP[k], RAMP[k + 1]].map(c => [1, 3, 5].map(s => parseInt(c.slice(s, s + 2), 16)));
  return `rgb(${a.map((v, n) => Math.round(v + f * (b[n] - v))).join()})`;
}

function setupLegend() {
  data.classes.forEach((name, k) => {
    const button = document.createElement('button'), swatch = document.createElement('span');
    button.type = 'button';
    button.setAttribute('aria-pressed', 'true');
    button.title = `show or hide ${className(k)}`;
    swatch.style.background = data.colors[k];
    button.append(swatch, name);
    button.addEventListener('click', () => {
      state.hidden.has(k) ? state.hidden.delete(k) : state.hidden.add(k);
      button.setAttribute('aria-pressed', String(!state.hidden.has(k)));
      if (state.hover >= 0 && !shownPoint(state.hover)) state.hover = -1;
      draw();
    });
    el('legend').append(button);
  });
  const logs = Array.from(errors, e => Math.log(Math.max(e, 1e-12)));
  const [lo, hi] = [0.01, 0.99].map(p => quantile(logs, p));
  errorColors = logs.map(v => rampColor((v - lo) / (hi - lo || 1)));
  const ramp = document.createElement('span');
  ramp.id = 'ramp';
  ramp.hidden = true;
  ramp.innerHTML = `squared error a pixel ${Math.exp(lo).toPrecision(2)} <i style="background: linear-gradient(` +
    `to right, ${RAMP.join()})"></i> ${Math.exp(hi).toPrecision(2)}`;
  el('legend').append(ramp);
  el('color-by').addEventListener('change', event => {
    state.colorBy = event.target.value;
    ramp.hidden = state.colorBy !== 'error';
    draw();
  });
}

function setupViewChoice() {   // codes of more than 3 units: any principal components, in 2-D or 3-D
  if (is3D || data.units < 2) return;
  const names = ['across', 'up', 'deep'].slice(0, AXES);
  const options = data.pca.variance.map((_, k) => `<option value="${k}">${axisName(k)}</option>`).join('');
  el('view-choice').innerHTML = (AXES === 3 ? '<label><input type="checkbox" id="turned"> 3-D</label> ' : '') +
    names.map((name, a) => `<label id="axis-${a}-label">${name} <select id="axis-${a}">${options}</select></label>`)
      .join(' ');
  const update = () => {
    state.axes = names.map((_, a) => Number(el(`axis-${a}`).value));
    state.flat = !el('turned')?.checked;
    if (AXES === 3) el('axis-2-label').hidden = state.flat;
    setAxes();
    resetView();
    scheduleGrid();
  };
  names.forEach((_, a) => { el(`axis-${a}`).value = String(a); el(`axis-${a}`).addEventListener('change', update); });
  el('turned')?.addEventListener('change', update);
  if (AXES === 3) el('axis-2-label').hidden = true;
}

function setupFind() {
  el('find-index').max = String(data.count);
  el('find-class').innerHTML = data.classes.map((name, k) => `<option value="${k}">${className(k)}</option>`).join('');
  const byIndex = () => {
    const i = Number(el('find-index').value) - 1;
    if (Number.isInteger(i) && i >= 0 && i < data.count) pick(i);
  };
  el('find-go').addEventListener('click', byIndex);
  el('find-index').addEventListener('keydown', e => e.key === 'Enter' && byIndex());
  el('find-next').addEventListener('click', () => {
    const k = Number(el('find-class').value), from = state.picks.at(-1) ?? -1;
    for (let n = 1; n <= data.count; n++) {
      const i = (from + n) % data.count;
      if (labels[i] === k) return pick(i);
    }
  });
}

function setupHint() {
  const moves = state.flat ? 'drag to pan' : 'drag to turn, shift-drag to pan';
  el('hint').textContent = `Wheel or pinch to zoom at the pointer, ${moves}, double-click or Reset view to ` +
    'reset. Hover over a point to see its image; click it to pick it. Click anywhere else, or drag the +, ' +
    'to move the code cursor; with the plot focused, the arrow keys move it (shift: further), + and - zoom. ' +
    `The legend hides and shows ${data.legend === 'digit' ? 'digits' : 'classes'}.`;
  el('scatter').setAttribute('aria-label', `Scatter of the codes of ${thousands(data.count)} ${data.testSet}`);
}

// -- Start, and the hook the tests and the benchmark call ---------------------------------------

function main() {
  [codes, labels, errors, images, layers] = [readCodes(), bytes(data.labels), floats(data.errors),
    readImages(), readDecoder()];
  ranges = Array.from({ length: data.units }, (_, u) => {
    let lo = Infinity, hi = -Infinity;
    for (let i = u; i < codes.length; i += data.units) [lo, hi] = [Math.min(lo, codes[i]), Math.max(hi, codes[i])];
    return [lo, hi];
  });
  setAxes();
  setupScatter();
  setupLegend();
  setupViewChoice();
  setupControls();
  setupNeighbours();
  setupFind();
  setupHint();
  const canvasGrid = el('grid');
  [canvasGrid.width, canvasGrid.height] = [28 * GRID, 28 * GRID_ROWS];
  setCursor(Array.from({ length: data.units }, (_, u) => (is3D ? (bounds[u][0] + bounds[u][1]) / 2 :
    data.pca.mean[u])), -1);
}

let started;
window.explorer = {
  ready: new Promise((resolve, reject) => { started = { resolve, reject }; }),
  decode: code => Array.from(decode(code)),
  stored: i => ({ code: Array.from(codeOf(i)), image: Array.from(imageBytes(i)) }),
  timeDecode(n) {   // the median time of n decodings of random codes, in ms
    const times = Array.from({ length: n }, () => {
      const code = ranges.map(([lo, hi]) => lo + Math.random() * (hi - lo)), start = performance.now();
      decode(code);
      return performance.now() - start;
    });
    return quantile(times, 0.5);
  },
  state: () => ({ ...state, hidden: [...state.hidden], cursor: Array.from(state.cursor), bounds, ranges, size }),
  point: i => toClient(screenOf(i)),
  cursor: () => toClient(cursorScreen()),
  labels: () => labelBoxes.map(box => ({ ...box, ...toClient([box.left, box.top]) })),
  grid: () => grid.codes.map(code => Array.from(code)),
  settled: () => (grid.done >= grid.codes.length ? Promise.resolve() : new Promise(r => gridWaiters.push(r))),
};

function toClient([x, y]) {   // canvas CSS pixels to the window's
  const canvas = el('scatter'), box = canvas.getBoundingClientRect();
  return { x: box.left + canvas.clientLeft + x, y: box.top + canvas.clientTop + y };
}

addEventListener('load', () => {
  try {
    main();
    started.resolve({ readyMs: performance.now() });
  } catch (error) {
    el('numbers').textContent = `The explorer could not start: ${error}`;
    started.reject(error);
  }
});
